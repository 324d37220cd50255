//! The `logging` import: what a guest logs goes to the host's log, tagged with the plugin id,
//! bounded (records per call, bytes per record) and escaped, so a plugin can neither flood the
//! log nor forge lines in it.

use std::sync::Arc;

use super::bindings::tool::assistants::plugin::logging;
use super::bindings::v0_2;

/// Log records a guest may write per call, and the size of one.
const MAX_LOG_RECORDS: u32 = 1000;
pub(super) const MAX_LOG_BYTES: usize = 4096;

/// One call's logging capability.
pub(crate) struct GuestLog {
    plugin_id: Arc<str>,
    left: u32,
}

impl GuestLog {
    pub fn new(plugin_id: Arc<str>) -> GuestLog {
        GuestLog {
            plugin_id,
            left: MAX_LOG_RECORDS,
        }
    }
}

impl logging::Host for GuestLog {
    fn log(&mut self, level: logging::Level, message: String) {
        if self.left == 0 {
            return;
        }
        self.left -= 1;
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = &*self.plugin_id;
        // Escaped, so a plugin cannot forge log lines with newlines or terminal control codes.
        match level {
            logging::Level::Trace => tracing::trace!(plugin, "{}", message.escape_debug()),
            logging::Level::Debug => tracing::debug!(plugin, "{}", message.escape_debug()),
            logging::Level::Info => tracing::info!(plugin, "{}", message.escape_debug()),
            logging::Level::Warn => tracing::warn!(plugin, "{}", message.escape_debug()),
            logging::Level::Error => tracing::error!(plugin, "{}", message.escape_debug()),
        }
    }
}

/// Contract v0.2.0's `logging`: the same, under its versioned name.
impl v0_2::logging::Host for GuestLog {
    fn log(&mut self, level: v0_2::logging::Level, message: String) {
        logging::Host::log(self, level.into(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logging::Host as _;

    #[test]
    fn a_guest_gets_a_bounded_number_of_records() {
        let mut log = GuestLog::new("p".into());
        for _ in 0..MAX_LOG_RECORDS + 5 {
            log.log(logging::Level::Trace, "x".repeat(MAX_LOG_BYTES * 2));
        }
        assert_eq!(log.left, 0);
    }
}
