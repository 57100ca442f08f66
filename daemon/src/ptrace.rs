//! The machine's ptrace policy, as `status`, the tray menu and the window report it. On
//! Linux, a process may attach to another process of the same user, or open its
//! `/proc/<pid>/mem` for writing, under the rules of Yama's `kernel.yama.ptrace_scope`
//! (classic rules when Yama is absent). At 0, or without Yama, any process of the user can
//! do so to an approved tool; at 1, a process can still do so to its own descendants, so a
//! program that starts an approved tool as its child can rewrite its code (`TracerPid`
//! stays 0: writing `/proc/<pid>/mem` needs no attach) and make it ask on its behalf; at
//! 2 or 3 only root can. keychain-auth cannot change this; it says where the machine
//! stands and what to do.

use std::io::ErrorKind;

/// Where `kernel.yama.ptrace_scope` is.
pub const PATH: &str = "/proc/sys/kernel/yama/ptrace_scope";

/// The ptrace policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Linux without Yama: classic rules (same uid, dumpable target).
    NoYama,
    /// Yama's `ptrace_scope`.
    Yama(u8),
    /// The file exists but could not be read or understood.
    Unreadable(String),
    /// Not Linux (macOS: `task_for_pid` needs root or the debugger entitlement).
    NotLinux,
}

impl Scope {
    /// Reads the running machine's policy.
    pub fn read() -> Scope {
        if !cfg!(target_os = "linux") {
            return Scope::NotLinux;
        }
        Scope::parse(std::fs::read_to_string(PATH))
    }

    /// The policy from the contents of [`PATH`] (or why it could not be read).
    pub fn parse(contents: std::io::Result<String>) -> Scope {
        match contents {
            Ok(text) => match text.trim().parse::<u8>() {
                Ok(n) => Scope::Yama(n),
                Err(_) => Scope::Unreadable(format!("{PATH} holds {:?}", text.trim())),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => Scope::NoYama,
            Err(e) => Scope::Unreadable(format!("{PATH}: {e}")),
        }
    }

    /// The short form `status` sends: `absent`, `0` to `3`, `unreadable`, `not-linux`.
    pub fn wire(&self) -> String {
        match self {
            Scope::NoYama => "absent".into(),
            Scope::Yama(n) => n.to_string(),
            Scope::Unreadable(_) => "unreadable".into(),
            Scope::NotLinux => "not-linux".into(),
        }
    }

    /// The policy from its short form (as `status` answered it).
    pub fn from_wire(s: &str) -> Scope {
        match s {
            "absent" => Scope::NoYama,
            "not-linux" => Scope::NotLinux,
            other => other
                .parse::<u8>()
                .map(Scope::Yama)
                .unwrap_or_else(|_| Scope::Unreadable(format!("reported as {other:?}"))),
        }
    }

    /// Whether a program of the user that starts an approved tool cannot write its memory.
    pub fn protects_children(&self) -> bool {
        matches!(self, Scope::Yama(n) if *n >= 2) || *self == Scope::NotLinux
    }

    /// A few words for the tray menu when the policy lets a program of the user write an
    /// approved tool's memory; `None` when it does not.
    pub fn warning(&self) -> Option<String> {
        if self.protects_children() {
            return None;
        }
        Some(match self {
            Scope::NoYama => "no Yama: your programs can write approved tools' memory".into(),
            Scope::Yama(1) => "ptrace_scope 1: a parent can write an approved tool's memory".into(),
            Scope::Yama(n) => {
                format!("ptrace_scope {n}: your programs can write approved tools' memory")
            }
            _ => "ptrace policy unknown: see the window".into(),
        })
    }

    /// One line for a person: what the policy means for approved tools, and what to do.
    pub fn describe(&self) -> String {
        const RAISE: &str = "to stop that, set kernel.yama.ptrace_scope=2 (as root: sysctl kernel.yama.ptrace_scope=2, and in /etc/sysctl.d/ to keep it)";
        match self {
            Scope::NoYama => format!(
                "no Yama (classic rules): any program of yours can attach to an approved tool or write its memory and make it ask for you; the kernel has no Yama to raise, so {}",
                "only a kernel with Yama (CONFIG_SECURITY_YAMA) can stop that"
            ),
            Scope::Yama(0) => format!(
                "ptrace_scope 0: any program of yours can attach to an approved tool or write its memory and make it ask for you; {RAISE}"
            ),
            Scope::Yama(1) => format!(
                "ptrace_scope 1: a program that starts an approved tool can write its memory (through /proc/<pid>/mem, unseen) and make it ask for you; {RAISE}"
            ),
            Scope::Yama(2) => {
                "ptrace_scope 2: only root can attach to or write the memory of an approved tool"
                    .into()
            }
            Scope::Yama(n) => format!(
                "ptrace_scope {n}: no process can attach to an approved tool or write its memory"
            ),
            Scope::Unreadable(why) => format!(
                "ptrace policy unknown ({why}): assume a program of yours can write an approved tool's memory"
            ),
            Scope::NotLinux => {
                "not Linux: only root (or a debugger Apple entitled) can get an approved tool's task port"
                    .into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_and_its_absence_are_told_apart() {
        let gone = || Err(std::io::Error::from(ErrorKind::NotFound));
        assert_eq!(Scope::parse(gone()), Scope::NoYama);
        for n in 0..=3u8 {
            assert_eq!(Scope::parse(Ok(format!("{n}\n"))), Scope::Yama(n));
        }
        assert!(matches!(
            Scope::parse(Ok("lots\n".into())),
            Scope::Unreadable(_)
        ));
        assert!(matches!(
            Scope::parse(Err(std::io::Error::from(ErrorKind::PermissionDenied))),
            Scope::Unreadable(_)
        ));
        // Only 2 and 3 keep a parent from writing its child's memory.
        assert!(!Scope::NoYama.protects_children());
        assert!(!Scope::Yama(0).protects_children());
        assert!(!Scope::Yama(1).protects_children());
        assert!(Scope::Yama(2).protects_children());
        assert!(Scope::Yama(3).protects_children());
        assert!(!Scope::Unreadable("x".into()).protects_children());
        // The menu's short form fits a menu entry, and only unsafe policies have one.
        for s in [
            Scope::NoYama,
            Scope::Yama(0),
            Scope::Yama(1),
            Scope::Unreadable("x".into()),
        ] {
            let w = s.warning().expect("unsafe");
            assert!(w.chars().count() <= 80, "{w}");
        }
        assert_eq!(Scope::Yama(2).warning(), None);
        // What is unsafe says what to do about it.
        for s in [Scope::Yama(0), Scope::Yama(1)] {
            assert!(s.describe().contains("ptrace_scope=2"), "{s:?}");
        }
        assert!(Scope::NoYama.describe().contains("no Yama"));
        // The short form round-trips.
        for s in [
            Scope::NoYama,
            Scope::Yama(0),
            Scope::Yama(1),
            Scope::Yama(2),
            Scope::Yama(3),
            Scope::NotLinux,
        ] {
            assert_eq!(Scope::from_wire(&s.wire()), s);
        }
    }
}
