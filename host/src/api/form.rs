//! `multipart/form-data` read in bounded memory, whatever shape the client sends.
//!
//! axum's `Multipart` hands out `text()`/`bytes()` that buffer a whole part, and its parser
//! (multer) buffers a part's headers until their blank line, however long. A 1 GiB `purpose`
//! field or a part whose headers never end would then sit in memory. [`Form`] is the one way
//! the API reads a form: text fields are capped ([`MAX_TEXT_BYTES`]), parts are counted
//! ([`MAX_PARTS`]), ignored parts are drained within a byte budget ([`MAX_IGNORED_BYTES`]),
//! and a meter on the raw body bounds what the parser holds that no part has handed out yet
//! (headers, boundaries, a pending chunk: [`MAX_UNREAD_BYTES`]). File parts stream through
//! [`Part::into_stream`], so memory stays flat for any upload.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use futures::{Stream, TryStreamExt};

use crate::error::{ApiError, ApiResult, ErrorKind};

/// The largest text field (e.g. `purpose`) read into memory.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Parts per form: every known form has at most three.
pub const MAX_PARTS: usize = 16;
/// Bytes of unknown parts drained and ignored (like unknown JSON keys) before the form is refused.
pub const MAX_IGNORED_BYTES: usize = 1024 * 1024;
/// Bytes the parser may hold beyond what parts have handed out: one chunk of the connection
/// (hyper reads at most ~400 KiB at once) plus the part headers and boundaries of at most
/// [`MAX_PARTS`] parts fit easily; an endless header does not.
pub const MAX_UNREAD_BYTES: u64 = 1024 * 1024;
/// What is read and discarded after an error, so the client sees our answer (see [`Form::drain`]).
const DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// Counts the body's bytes as they arrive and as parts hand them out.
#[derive(Default)]
struct Meter {
    received: AtomicU64,
    delivered: AtomicU64,
    /// While draining after an error: how far the body may be read (0: not draining). The
    /// parser then skips the rest of the current part itself, unmetered by `delivered`.
    drain_until: AtomicU64,
}

impl Meter {
    fn unread(&self) -> u64 {
        let received = self.received.load(Ordering::Relaxed);
        received.saturating_sub(self.delivered.load(Ordering::Relaxed))
    }
}

/// The request body as the parser reads it: counted, and one chunk per poll. (multer polls
/// its body in a loop until it is pending, buffering whatever is ready; yielding after each
/// chunk makes it parse, and hand out, one chunk at a time.)
struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
    yielded: bool,
}

impl<S> Stream for Metered<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.yielded {
            self.yielded = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.yielded = true;
                let received = self
                    .meter
                    .received
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed)
                    + chunk.len() as u64;
                let drain_until = self.meter.drain_until.load(Ordering::Relaxed);
                if drain_until > 0 {
                    if received > drain_until {
                        return Poll::Ready(Some(Err("drained enough".into())));
                    }
                } else if self.meter.unread() > MAX_UNREAD_BYTES {
                    return Poll::Ready(Some(Err(format!(
                        "part headers or framing exceed {MAX_UNREAD_BYTES} bytes"
                    ))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.to_string()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A multipart form being read; the extractor answers a non-multipart body with a 400.
pub struct Form {
    parser: multer::Multipart<'static>,
    meter: Arc<Meter>,
    parts: usize,
    ignored: usize,
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let boundary = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Expected a multipart/form-data body with a boundary in its Content-Type.",
                )
            })?;
        let meter = Arc::new(Meter::default());
        let body = Metered {
            inner: req.into_body().into_data_stream(),
            meter: Arc::clone(&meter),
            yielded: false,
        };
        Ok(Form {
            parser: multer::Multipart::new(body, boundary),
            meter,
            parts: 0,
            ignored: 0,
        })
    }
}

impl Form {
    /// The next part, or `None` at the end of the form.
    pub async fn next_part(&mut self) -> ApiResult<Option<Part>> {
        let Some(field) = self.parser.next_field().await.map_err(form_error)? else {
            return Ok(None);
        };
        self.parts += 1;
        if self.parts > MAX_PARTS {
            return Err(ApiError::bad_request(format!(
                "Invalid multipart body: more than {MAX_PARTS} parts."
            )));
        }
        Ok(Some(Part {
            field,
            meter: Arc::clone(&self.meter),
        }))
    }

    /// Reads and discards an unknown part, within the form's budget for ignored bytes.
    pub async fn ignore(&mut self, mut part: Part) -> ApiResult<()> {
        while let Some(chunk) = part.chunk().await? {
            self.ignored += chunk.len();
            if self.ignored > MAX_IGNORED_BYTES {
                part.discard().await;
                return Err(ApiError::bad_request(format!(
                    "Invalid multipart body: unknown parts exceed {MAX_IGNORED_BYTES} bytes."
                )));
            }
        }
        Ok(())
    }

    /// Reads and discards what is left of the body (up to 8 MiB) before an error response.
    /// Answering while the client is still sending makes the server close the connection under
    /// it, and SDKs then report a connection error instead of the error we sent.
    pub async fn drain(&mut self) {
        let received = self.meter.received.load(Ordering::Relaxed);
        self.meter
            .drain_until
            .store(received + DRAIN_BYTES as u64, Ordering::Relaxed);
        // The body stream itself ends the drain past `drain_until`.
        while let Ok(Some(mut part)) = self.parser.next_field().await {
            while let Ok(Some(_)) = part.chunk().await {}
        }
    }
}

/// One part of a [`Form`].
pub struct Part {
    field: multer::Field<'static>,
    meter: Arc<Meter>,
}

impl Part {
    pub fn name(&self) -> Option<&str> {
        self.field.name()
    }

    pub fn file_name(&self) -> Option<&str> {
        self.field.file_name()
    }

    async fn chunk(&mut self) -> ApiResult<Option<Bytes>> {
        let chunk = self.field.chunk().await.map_err(form_error)?;
        if let Some(c) = &chunk {
            self.meter
                .delivered
                .fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        Ok(chunk)
    }

    /// Reads what is left of the part (at most [`DRAIN_BYTES`]) and drops it, through the
    /// meter: the parser would otherwise skip it unmetered when the next part is asked for.
    async fn discard(&mut self) {
        let mut left = DRAIN_BYTES;
        while let Ok(Some(chunk)) = self.chunk().await {
            if chunk.len() >= left {
                return;
            }
            left -= chunk.len();
        }
    }

    /// The part as UTF-8 text of at most [`MAX_TEXT_BYTES`]; `param` names it in errors.
    pub async fn text(mut self, param: &str) -> ApiResult<String> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if bytes.len() + chunk.len() > MAX_TEXT_BYTES {
                self.discard().await;
                return Err(ApiError::invalid(
                    param,
                    format!("Invalid '{param}': the field is longer than {MAX_TEXT_BYTES} bytes."),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        String::from_utf8(bytes)
            .map_err(|_| ApiError::invalid(param, format!("Invalid '{param}': not UTF-8 text.")))
    }

    /// The whole part in memory, refused (413) beyond `limit` bytes; `param` names it in
    /// errors. For what must be whole to be used at all (a plugin component to compile).
    pub async fn bytes(mut self, param: &str, limit: u64) -> ApiResult<Vec<u8>> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                self.discard().await;
                return Err(ApiError::new(
                    ErrorKind::PayloadTooLarge,
                    format!("Invalid '{param}': larger than {limit} bytes."),
                )
                .with_param(param));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// The part's bytes as they arrive, for streaming into the blob store.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static {
        let meter = self.meter;
        self.field
            .inspect_ok(move |c| {
                meter.delivered.fetch_add(c.len() as u64, Ordering::Relaxed);
            })
            .map_err(|e| body_text(&e))
    }
}

fn body_text(e: &multer::Error) -> String {
    match e {
        // The source is our meter's message or the connection's error: say what it was.
        multer::Error::StreamReadFailed(source) => source.to_string(),
        other => other.to_string(),
    }
}

fn form_error(e: multer::Error) -> ApiError {
    ApiError::bad_request(format!("Invalid multipart body: {}.", body_text(&e)))
}
