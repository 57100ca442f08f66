//! Time, injected so tests can pin it. Times are written as RFC 3339 UTC with seconds,
//! which sort in time order as strings.

use std::time::SystemTime;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;

    /// Now as RFC 3339 UTC, e.g. `2026-11-27T00:00:00Z`.
    fn rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.now()).to_string()
    }
}

/// A clock that stands still until moved (unit tests).
#[cfg(test)]
#[derive(Debug)]
pub struct ManualClock(pub std::sync::Mutex<SystemTime>);

#[cfg(test)]
impl ManualClock {
    /// Moves it on by `d`.
    pub fn advance(&self, d: std::time::Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += d;
        }
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.0.lock().map(|t| *t).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
