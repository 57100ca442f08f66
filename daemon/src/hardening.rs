//! Process hardening for the daemon: no core dumps, not dumpable (so other same-user
//! processes cannot ptrace it or read its memory through /proc on Linux), and a file
//! descriptor limit high enough for many idle clients.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Applies every hardening step; returns what could not be applied, for a warning.
pub fn harden_process() -> Vec<String> {
    let mut failures = Vec::new();
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        failures.push(format!("disabling core dumps: {}", std::io::Error::from(e)));
    }
    #[cfg(target_os = "linux")]
    {
        if let Err(e) = nix::sys::prctl::set_dumpable(false) {
            failures.push(format!("PR_SET_DUMPABLE: {}", std::io::Error::from(e)));
        }
    }
    raise_fd_limit();
    failures
}

fn raise_fd_limit() {
    if let Ok((cur, max)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if cur < max {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, max.min(65_536), max);
        }
    }
}
