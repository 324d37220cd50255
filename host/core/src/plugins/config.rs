//! The `config` import: the non-secret values the operator set for a plugin in its grant
//! (secrets never reach the guest; the outgoing-HTTP policy injects them, see `egress`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::bindings::tool::assistants::plugin::config;
use super::bindings::v0_2;

/// One call's view of its plugin's configuration.
pub(crate) struct GuestConfig {
    values: Arc<BTreeMap<String, String>>,
}

impl GuestConfig {
    pub fn new(values: Arc<BTreeMap<String, String>>) -> GuestConfig {
        GuestConfig { values }
    }
}

impl config::Host for GuestConfig {
    fn get(&mut self, key: String) -> Option<String> {
        self.values.get(&key).cloned()
    }
}

/// Contract v0.2.0's `config`: the same, under its versioned name.
impl v0_2::config::Host for GuestConfig {
    fn get(&mut self, key: String) -> Option<String> {
        config::Host::get(self, key)
    }
}
