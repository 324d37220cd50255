//! Secrets kept out of logs and `Debug` output.

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for logs and `Debug`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}
