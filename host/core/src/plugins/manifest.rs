//! Plugin manifests (`NAME.toml` beside `NAME.wasm`) and the operator's grants.
//!
//! A manifest says what a plugin is and what it asks for: network hosts, config keys (some
//! secret), limits. The operator's server config grants permissions per plugin id. What a
//! plugin gets is the intersection, and a plugin that asks for more than it was granted does
//! not load: the error names every missing grant, so the operator can decide.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kinds of plugin and the world each must implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Tool,
    RetrievalTool,
    Strategy,
    /// Turns uploaded documents into text for vector stores.
    Parser,
}

impl Kind {
    /// The WIT world a component of this kind implements, at contract `version`.
    pub fn world(self, version: WitVersion) -> String {
        let name = match self {
            Kind::Tool => "tool-plugin",
            Kind::RetrievalTool => "retrieval-tool-plugin",
            Kind::Strategy => "strategy-plugin",
            Kind::Parser => "parser-plugin",
        };
        format!("assistants:plugin/{name}@{}", version.as_str())
    }
}

/// The released versions of the plugin contract (`wit/vX.Y.Z`), every one of which the host
/// loads: a component names its version in its manifest's `world`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitVersion {
    V0_1,
    V0_2,
}

impl WitVersion {
    /// Every version the host loads, oldest first.
    pub const ALL: [WitVersion; 2] = [WitVersion::V0_1, WitVersion::V0_2];
    /// The version new plugins are built against (the guest SDK's).
    pub const LATEST: WitVersion = WitVersion::V0_2;

    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
            WitVersion::V0_2 => "0.2.0",
        }
    }
}

/// Per-call limits a plugin asks for (or an operator grants, or caps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall time of one call, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear memory of one call, in MiB.
    pub memory_mib: Option<u64>,
    /// Size of the arguments passed in, in KiB.
    pub max_args_kib: Option<u64>,
    /// Size of the result returned, in KiB.
    pub max_result_kib: Option<u64>,
    /// Concurrent outgoing HTTP requests of the plugin (all its calls together).
    pub http_concurrency: Option<u32>,
    /// Size of one HTTP response body, in KiB.
    pub http_max_response_kib: Option<u64>,
}

/// A config key the plugin reads (through `config.get`) or, when `secret`, has the host inject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigKey {
    pub key: String,
    #[serde(default)]
    pub description: String,
    /// Secret values never enter guest memory; see `inject`.
    #[serde(default)]
    pub secret: bool,
    /// For secrets: the HTTP header the host sets on the plugin's outgoing requests to the
    /// secret's hosts, e.g. `Authorization` with `value_prefix = "Bearer "`.
    pub inject_header: Option<String>,
    /// For injected secrets: the hosts (patterns as in `network.hosts`) the secret may be sent
    /// to, when the operator's grant does not say (`secret_hosts`). Each must be granted.
    #[serde(default)]
    pub inject_hosts: Vec<String>,
    #[serde(default)]
    pub value_prefix: String,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Hosts (`api.example.com`, `*.example.com`, optionally with `:port`) the plugin may call,
    /// or `"*"` for "whichever hosts the operator grants" (plugins whose API is operator-chosen).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// With `"*"`: the plugin is useless without network, so it loads only once the operator
    /// grants at least one host (instead of loading and failing every call).
    #[serde(default)]
    pub require_grant: bool,
}

/// The manifest as shipped by the plugin author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique id; assistants enable it with `{"type": "<id>"}`. `a-z 0-9 _ -`, ≤ 64.
    pub id: String,
    pub version: String,
    pub kind: Kind,
    /// `kind`'s world at one of the contract versions the host loads ([`WitVersion`]); stated
    /// so a mismatch is caught before instantiation.
    pub world: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub config: Vec<ConfigKey>,
    #[serde(default)]
    pub limits: Limits,
}

impl Manifest {
    /// The contract version the manifest's `world` names, if it is `kind`'s world at a version
    /// the host loads.
    pub fn version(&self) -> Option<WitVersion> {
        WitVersion::ALL
            .into_iter()
            .find(|v| self.world == self.kind.world(*v))
    }

    /// The hosts a plugin may call under `grant`: what it asked for (all granted, or it would
    /// not load), or the grant's hosts when it asked for `"*"`.
    pub(crate) fn allowed_hosts(&self, grant: &Grant) -> Vec<String> {
        let hosts = if self.network.hosts.iter().any(|h| h == "*") {
            &grant.hosts
        } else {
            &self.network.hosts
        };
        hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
    }

    pub fn parse(text: &str) -> anyhow::Result<Manifest> {
        let m: Manifest = toml::from_str(text)?;
        let valid_id = !m.id.is_empty()
            && m.id.len() <= 64
            && m.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        anyhow::ensure!(
            valid_id,
            "manifest id '{}' must be 1-64 characters of a-z, 0-9, _ and -",
            m.id
        );
        anyhow::ensure!(
            !["function", "code_interpreter"].contains(&m.id.as_str()),
            "manifest id '{}' is reserved for a built-in tool type",
            m.id
        );
        anyhow::ensure!(
            m.version().is_some(),
            "manifest world '{}' does not match kind {:?} (expected one of {})",
            m.world,
            m.kind,
            WitVersion::ALL
                .map(|v| format!("'{}'", m.kind.world(v)))
                .join(", ")
        );
        // Explicit hosts are always granted or the plugin does not load, so `require_grant`
        // means something only with "*"; without it, it would say nothing or never load.
        anyhow::ensure!(
            !m.network.require_grant || m.network.hosts.iter().any(|h| h == "*"),
            "network.require_grant applies to hosts = [\"*\"] (whichever hosts the operator grants); with the hosts listed it has no effect: remove it"
        );
        for c in &m.config {
            anyhow::ensure!(
                c.inject_header.is_none() || c.secret,
                "config key '{}' injects a header but is not secret",
                c.key
            );
        }
        Ok(m)
    }
}

/// What the operator allows one plugin (server config `[plugins.grants.ID]`). Its `Debug`
/// shows config keys but not their values, which may be secrets.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Hosts the plugin may reach; each requested host must be listed here.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Allow requests to private, loopback and link-local addresses (off by default: SSRF).
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Values of the plugin's config keys, secrets included (they stay host-side).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Per injected secret, the hosts it is sent to (overrides the manifest's `inject_hosts`):
    /// `secret_hosts.api_key = ["api.weather.example"]`. Each must be one of `hosts`.
    #[serde(default)]
    pub secret_hosts: BTreeMap<String, Vec<String>>,
    /// Limits granted, each within the operator caps; default: the caps.
    #[serde(default)]
    pub limits: Limits,
    /// The projects (ids or names) that may use the plugin; unset: every project. Plugins
    /// holding operator secrets are often meant for some teams only.
    #[serde(default)]
    pub projects: Option<Vec<String>>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("hosts", &self.hosts)
            .field("allow_private_addresses", &self.allow_private_addresses)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("secret_hosts", &self.secret_hosts)
            .field("limits", &self.limits)
            .field("projects", &self.projects)
            .finish()
    }
}

/// A full set of limit values. As [`Caps`]: the upper bounds no grant can exceed, and the
/// defaults a plugin gets when it asks for nothing (operators set them under `[plugins.caps]`;
/// unset ones keep their default). As [`Effective`]: the limits one plugin's calls run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSet {
    pub timeout_ms: u64,
    pub memory_mib: u64,
    pub max_args_kib: u64,
    pub max_result_kib: u64,
    pub http_concurrency: u32,
    pub http_max_response_kib: u64,
}

pub type Caps = LimitSet;
pub(crate) type Effective = LimitSet;

impl Default for LimitSet {
    fn default() -> Self {
        LimitSet {
            timeout_ms: 30_000,
            memory_mib: 256,
            max_args_kib: 1024,
            max_result_kib: 1024,
            http_concurrency: 4,
            http_max_response_kib: 10 * 1024,
        }
    }
}

/// A grant that gives `manifest` everything it asks for, with placeholder config values: what
/// `assistants plugins check` validates a component with when no operator config is given.
pub fn sample_grant(manifest: &Manifest) -> Grant {
    let wildcard = manifest.network.hosts.iter().any(|h| h == "*");
    let mut hosts: Vec<String> = manifest
        .network
        .hosts
        .iter()
        .filter(|h| *h != "*")
        .cloned()
        .collect();
    if wildcard {
        hosts.push("api.example.com".into());
    }
    let mut grant = Grant {
        hosts: hosts.clone(),
        ..Grant::default()
    };
    for c in &manifest.config {
        grant.config.insert(c.key.clone(), format!("<{}>", c.key));
        if c.inject_header.is_some() && c.inject_hosts.is_empty() {
            grant.secret_hosts.insert(c.key.clone(), hosts.clone());
        }
    }
    grant
}

/// What an operator must grant `manifest`, one line each, for `assistants plugins check`.
pub fn requirements(manifest: &Manifest) -> Vec<String> {
    let id = &manifest.id;
    let mut out = Vec::new();
    for h in &manifest.network.hosts {
        out.push(if h == "*" {
            format!(
                "network: hosts the operator chooses (plugins.grants.{id}.hosts){}",
                if manifest.network.require_grant {
                    ", at least one"
                } else {
                    ""
                }
            )
        } else {
            format!("network: host '{h}' (plugins.grants.{id}.hosts)")
        });
    }
    for c in &manifest.config {
        let kind = match (c.secret, c.required) {
            (true, true) => "required secret",
            (true, false) => "optional secret",
            (false, true) => "required config",
            (false, false) => "optional config",
        };
        let mut line = format!("{kind} '{}' (plugins.grants.{id}.config.{})", c.key, c.key);
        if let Some(header) = &c.inject_header {
            let hosts = if c.inject_hosts.is_empty() {
                format!("the hosts in plugins.grants.{id}.secret_hosts.{}", c.key)
            } else {
                c.inject_hosts.join(", ")
            };
            line.push_str(&format!(", sent as the {header} header to {hosts}"));
        }
        if !c.description.is_empty() {
            line.push_str(&format!(": {}", c.description));
        }
        out.push(line);
    }
    let l = &manifest.limits;
    for (name, v) in [
        ("timeout_ms", l.timeout_ms),
        ("memory_mib", l.memory_mib),
        ("max_args_kib", l.max_args_kib),
        ("max_result_kib", l.max_result_kib),
        ("http_concurrency", l.http_concurrency.map(u64::from)),
        ("http_max_response_kib", l.http_max_response_kib),
    ] {
        if let Some(v) = v {
            out.push(format!(
                "limit {name} = {v} (within plugins.caps and plugins.grants.{id}.limits)"
            ));
        }
    }
    out
}

/// The hosts a secret config key is sent to: the grant's `secret_hosts` for it, else the
/// manifest's `inject_hosts`; lower-case.
pub fn secret_hosts(grant: &Grant, key: &ConfigKey) -> Vec<String> {
    grant
        .secret_hosts
        .get(&key.key)
        .unwrap_or(&key.inject_hosts)
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect()
}

/// Intersects what the plugin asks for with what it was granted, within the caps; the error
/// lists every request that exceeds its grant.
pub fn effective(
    manifest: &Manifest,
    grant: &Grant,
    caps: &Caps,
) -> Result<(Effective, Vec<String>), Vec<String>> {
    let mut missing = Vec::new();
    // A grant names hosts: "*" would match none (patterns are `host` or `*.domain`), so it is
    // refused rather than left to fail every request.
    for host in grant
        .hosts
        .iter()
        .filter(|h| h.trim() == "*" || h.trim().is_empty())
    {
        missing.push(format!(
            "a host by name, not '{host}' (plugins.grants.{}.hosts takes `api.example.com`, `*.example.com` or `host:port`)",
            manifest.id
        ));
    }
    for host in manifest.network.hosts.iter().filter(|h| *h != "*") {
        if !grant.hosts.iter().any(|g| g.eq_ignore_ascii_case(host)) {
            missing.push(format!(
                "network host '{host}' (add it to plugins.grants.{}.hosts)",
                manifest.id
            ));
        }
    }
    if manifest.network.require_grant && manifest.allowed_hosts(grant).is_empty() {
        missing.push(format!(
            "at least one network host (add it to plugins.grants.{}.hosts)",
            manifest.id
        ));
    }
    for c in manifest.config.iter().filter(|c| c.required) {
        if !grant.config.contains_key(&c.key) {
            missing.push(format!(
                "required config key '{}' (set plugins.grants.{}.config.{})",
                c.key, manifest.id, c.key
            ));
        }
    }
    // A secret goes only where it is bound: to hosts named for it, each of them granted.
    let allowed = manifest.allowed_hosts(grant);
    for c in manifest.config.iter().filter(|c| c.inject_header.is_some()) {
        let Some(value) = grant.config.get(&c.key) else {
            continue;
        };
        // Every occurrence of a secret is masked in what the plugin reads back; one this
        // short would be masked in ordinary text too, so it is not accepted.
        if value.len() < super::secrets::MIN_MASKED {
            missing.push(format!(
                "a longer value for secret '{}' ({} bytes; at least {}, or answers could not be masked)",
                c.key,
                value.len(),
                super::secrets::MIN_MASKED
            ));
        }
        let hosts = secret_hosts(grant, c);
        if hosts.is_empty() {
            missing.push(format!(
                "hosts for secret '{}' (set plugins.grants.{}.secret_hosts.{} = [\"api.example.com\"])",
                c.key, manifest.id, c.key
            ));
        }
        for h in hosts.iter().filter(|h| !allowed.contains(h)) {
            missing.push(format!(
                "secret '{}' is bound to '{h}', which is not a granted host (add it to plugins.grants.{}.hosts)",
                c.key, manifest.id
            ));
        }
    }
    let mut pick = |name: &str, asked: Option<u64>, granted: Option<u64>, cap: u64| -> u64 {
        let allowed = granted.unwrap_or(cap).min(cap);
        match asked {
            Some(a) if a > allowed => {
                missing.push(format!("{name} = {a} (granted {allowed})"));
                allowed
            }
            Some(a) => a,
            None => allowed,
        }
    };
    let (m, g) = (&manifest.limits, &grant.limits);
    let e = Effective {
        timeout_ms: pick(
            "limits.timeout_ms",
            m.timeout_ms,
            g.timeout_ms,
            caps.timeout_ms,
        ),
        memory_mib: pick(
            "limits.memory_mib",
            m.memory_mib,
            g.memory_mib,
            caps.memory_mib,
        ),
        max_args_kib: pick(
            "limits.max_args_kib",
            m.max_args_kib,
            g.max_args_kib,
            caps.max_args_kib,
        ),
        max_result_kib: pick(
            "limits.max_result_kib",
            m.max_result_kib,
            g.max_result_kib,
            caps.max_result_kib,
        ),
        http_concurrency: pick(
            "limits.http_concurrency",
            m.http_concurrency.map(u64::from),
            g.http_concurrency.map(u64::from),
            caps.http_concurrency as u64,
        ) as u32,
        http_max_response_kib: pick(
            "limits.http_max_response_kib",
            m.http_max_response_kib,
            g.http_max_response_kib,
            caps.http_max_response_kib,
        ),
    };
    if !missing.is_empty() {
        return Err(missing);
    }
    // Only declared keys pass; an operator typo is reported, not silently ignored.
    let unknown: Vec<String> = grant
        .config
        .keys()
        .filter(|k| !manifest.config.iter().any(|c| &c.key == *k))
        .map(|k| {
            format!("config key '{k}' is granted but not declared by the plugin; it is ignored")
        })
        .collect();
    Ok((e, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
        id = "weather"
        version = "1.0.0"
        kind = "tool"
        world = "assistants:plugin/tool-plugin@0.1.0"
        [network]
        hosts = ["api.weather.test"]
        [[config]]
        key = "api_key"
        secret = true
        inject_header = "Authorization"
        value_prefix = "Bearer "
        inject_hosts = ["api.weather.test"]
        required = true
        [limits]
        timeout_ms = 5000
        memory_mib = 64
    "#;

    #[test]
    fn a_plugin_gets_the_intersection_or_a_list_of_missing_grants() {
        let m = Manifest::parse(MANIFEST).unwrap();
        let caps = Caps::default();
        let err = effective(&m, &Grant::default(), &caps).unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(err[0].contains("api.weather.test") && err[1].contains("api_key"));
        let mut grant = Grant {
            hosts: vec!["api.weather.test".into()],
            ..Default::default()
        };
        grant.config.insert("api_key".into(), "s3cret".into());
        grant.limits.timeout_ms = Some(1000);
        let err = effective(&m, &grant, &caps).unwrap_err();
        assert_eq!(
            err,
            vec!["limits.timeout_ms = 5000 (granted 1000)".to_string()]
        );
        grant.limits.timeout_ms = None;
        // The operator may rebind the secret, only to a granted host.
        grant
            .secret_hosts
            .insert("api_key".into(), vec!["evil.test".into()]);
        let err = effective(&m, &grant, &caps).unwrap_err();
        assert!(
            err[0].contains("'evil.test', which is not a granted host"),
            "{err:?}"
        );
        grant.secret_hosts.clear();
        // "*" in a grant would match no host: refused by name, not left to fail every request.
        grant.hosts.push("*".into());
        let err = effective(&m, &grant, &caps).unwrap_err();
        assert!(err[0].contains("a host by name, not '*'"), "{err:?}");
        grant.hosts.pop();
        let (e, warnings) = effective(&m, &grant, &caps).unwrap();
        assert_eq!(
            (e.timeout_ms, e.memory_mib, e.max_result_kib),
            (5000, 64, 1024)
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn manifests_are_checked() {
        let listed = MANIFEST.replace("[[config]]", "require_grant = true\n        [[config]]");
        let e = Manifest::parse(&listed).unwrap_err().to_string();
        assert!(
            e.contains("require_grant applies to hosts = [\"*\"]"),
            "{e}"
        );
        let wildcard = listed.replace(
            "hosts = [\"api.weather.test\"]\n        require_grant",
            "hosts = [\"*\"]\n        require_grant",
        );
        assert!(Manifest::parse(&wildcard).is_ok(), "{wildcard}");
        assert!(Manifest::parse(&MANIFEST.replace("tool-plugin", "strategy-plugin")).is_err());
        assert!(Manifest::parse(&MANIFEST.replace("\"weather\"", "\"Bad Id\"")).is_err());
        assert!(Manifest::parse(&MANIFEST.replace("\"weather\"", "\"function\"")).is_err());
        assert!(Manifest::parse(&format!("{MANIFEST}\nsurprise = 1")).is_err());
    }
}
