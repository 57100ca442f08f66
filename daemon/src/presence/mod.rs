//! Proof of presence: a widening decision (approve, register, upgrade, more scopes or
//! access, lifting a deny, resuming from a pause, turning presence off) is applied only
//! after the person at the machine proved, through the OS, that it is them. The daemon
//! describes the change ([`Change`]) and asks a [`Prover`]: polkit on Linux
//! ([`polkit`]), LocalAuthentication on macOS (`local_auth`). Narrowing needs no proof.
//!
//! Whether proof is needed is [`Setting`] (`presence` in config.json) together with
//! whether a mechanism is installed ([`Prover::mechanism`]); [`Presence`] is that
//! answer. The gate itself, and its audit lines, are in `crate::handlers::proof`.

#[cfg(target_os = "macos")]
pub mod local_auth;
#[cfg(target_os = "linux")]
pub mod polkit;

use crate::store::BoxFuture;
use serde::{Deserialize, Serialize};

/// `presence` in config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// Every widening decision needs proof; refused when no mechanism is reachable.
    Required,
    /// No proof: any program of the user that can run the CLI or press a notification's
    /// button can widen what is approved. Warned about at start, in `status` and in the
    /// tray.
    Off,
}

/// The OS mechanism that proves presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// polkit, with this project's action (`auth_self`).
    Polkit,
    /// macOS LocalAuthentication (Touch ID or the login password).
    LocalAuth,
}

impl Mechanism {
    /// How the audit log names it (`presence: polkit|local-auth`).
    pub fn word(self) -> &'static str {
        match self {
            Mechanism::Polkit => "polkit",
            Mechanism::LocalAuth => "local-auth",
        }
    }
}

/// What the daemon does about presence now, from the setting and the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Proof through this mechanism.
    Required(Mechanism),
    /// Proof is required, but no mechanism is reachable: widening decisions are refused
    /// with this text (what to install).
    Unavailable(String),
    /// No proof; the text says why (set `off`, or no mechanism installed) and what to do.
    Off(String),
}

impl Presence {
    /// From the config's setting (`None`: not set) and what the machine offers.
    pub fn of(setting: Option<Setting>, offered: Result<Mechanism, String>) -> Presence {
        match (setting, offered) {
            (Some(Setting::Off), _) => Presence::Off(
                "presence is off in config.json: any program of yours can approve itself; \
                 turn it on with `keychain-auth presence required`"
                    .into(),
            ),
            (_, Ok(m)) => Presence::Required(m),
            (Some(Setting::Required), Err(why)) => Presence::Unavailable(why),
            (None, Err(why)) => Presence::Off(format!(
                "no proof of presence on this machine ({why}): any program of yours can \
                 approve itself"
            )),
        }
    }

    /// How `status` shows it: `polkit`, `local-auth`, `unavailable: …` or `off: …`.
    pub fn describe(&self) -> String {
        match self {
            Presence::Required(m) => m.word().to_string(),
            Presence::Unavailable(why) => format!("unavailable: {why}"),
            Presence::Off(why) => format!("off: {why}"),
        }
    }

    /// The warning to show, when presence is not being proven.
    pub fn warning(&self) -> Option<String> {
        match self {
            Presence::Required(_) => None,
            Presence::Unavailable(why) => Some(format!(
                "presence proof is required but unavailable, so nothing can be approved: {why}"
            )),
            Presence::Off(why) => Some(why.clone()),
        }
    }
}

/// A widening change, as the person is shown it before proving presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// One line a person reads: the program (and its chain), the secrets, the access,
    /// for how long. Never a secret value.
    pub text: String,
    /// The secret names it is about, when it is a read (audited with a refusal).
    pub names: Vec<String>,
}

impl Change {
    /// A change about no secret in particular.
    pub fn new(text: impl Into<String>) -> Change {
        Change {
            text: text.into(),
            names: Vec::new(),
        }
    }
}

/// Why a proof did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotProven {
    /// The person answered, and authentication failed (a wrong password).
    #[error("authentication failed")]
    Failed,
    /// The person (or their agent) cancelled.
    #[error("cancelled")]
    Cancelled,
    /// No authentication agent could ask the person.
    #[error("no authentication agent could ask you: run the command in a terminal (the CLI starts a text agent there), or use the desktop's authentication agent")]
    NoAgent,
    /// Nobody answered in time.
    #[error("nobody answered within {0} s")]
    Timeout(u64),
    /// The mechanism itself failed (not running, not installed, a bus error).
    #[error("{0}")]
    Broken(String),
}

/// Asks the OS to prove that the person at the machine approves a change.
pub trait Prover: Send + Sync {
    /// The mechanism this machine offers, or why there is none (with what to install).
    /// Cheap: called for every widening decision and every `status`.
    fn mechanism(&self) -> Result<Mechanism, String>;
    /// Asks the person about `change`; `Ok` once they proved it is them. Gives up after
    /// `timeout_s` seconds.
    fn prove<'a>(
        &'a self,
        change: &'a Change,
        timeout_s: u64,
    ) -> BoxFuture<'a, Result<(), NotProven>>;
}

/// A machine with no mechanism (other systems, unit tests).
#[derive(Debug, Clone)]
pub struct NoMechanism(pub String);

impl Prover for NoMechanism {
    fn mechanism(&self) -> Result<Mechanism, String> {
        Err(self.0.clone())
    }

    fn prove<'a>(&'a self, _: &'a Change, _: u64) -> BoxFuture<'a, Result<(), NotProven>> {
        let why = self.0.clone();
        Box::pin(async move { Err(NotProven::Broken(why)) })
    }
}

/// A prover that gives one answer to every question and remembers what it was asked
/// (unit tests).
#[cfg(test)]
#[derive(Debug)]
pub struct Answering {
    /// What it answers.
    pub answer: Result<(), NotProven>,
    /// The change text of every question, in order.
    pub asked: std::sync::Mutex<Vec<String>>,
}

#[cfg(test)]
impl Answering {
    /// A prover answering `answer`.
    pub fn new(answer: Result<(), NotProven>) -> std::sync::Arc<Answering> {
        std::sync::Arc::new(Answering {
            answer,
            asked: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// What it was asked.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
impl Prover for Answering {
    fn mechanism(&self) -> Result<Mechanism, String> {
        Ok(Mechanism::Polkit)
    }

    fn prove<'a>(&'a self, change: &'a Change, _: u64) -> BoxFuture<'a, Result<(), NotProven>> {
        if let Ok(mut a) = self.asked.lock() {
            a.push(change.text.clone());
        }
        let answer = self.answer.clone();
        Box::pin(async move { answer })
    }
}

/// The prover of this OS.
pub fn system() -> std::sync::Arc<dyn Prover> {
    #[cfg(target_os = "linux")]
    return std::sync::Arc::new(polkit::Polkit::new());
    #[cfg(target_os = "macos")]
    return std::sync::Arc::new(local_auth::LocalAuth);
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    return std::sync::Arc::new(NoMechanism(
        "this system has no supported presence mechanism".into(),
    ));
}

/// How long a proof may take when config.json does not say (`presence_timeout_s`).
pub const DEFAULT_TIMEOUT_S: u64 = 120;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_and_the_machine_decide_together() {
        let none = || Err::<Mechanism, _>("polkit's action is not installed".to_string());
        assert_eq!(
            Presence::of(None, Ok(Mechanism::Polkit)),
            Presence::Required(Mechanism::Polkit)
        );
        assert_eq!(
            Presence::of(Some(Setting::Required), Ok(Mechanism::LocalAuth)),
            Presence::Required(Mechanism::LocalAuth)
        );
        assert!(matches!(
            Presence::of(Some(Setting::Required), none()),
            Presence::Unavailable(w) if w.contains("not installed")
        ));
        // Unset, with nothing installed: off, and said so.
        let off = Presence::of(None, none());
        assert!(off.warning().expect("a warning").contains("not installed"));
        // Off wins even where a mechanism exists.
        assert!(matches!(
            Presence::of(Some(Setting::Off), Ok(Mechanism::Polkit)),
            Presence::Off(_)
        ));
        assert_eq!(Presence::Required(Mechanism::Polkit).warning(), None);
    }

    #[test]
    fn the_setting_parses_only_its_two_words() {
        let parse = |s: &str| serde_json::from_str::<Setting>(s);
        assert_eq!(parse("\"required\"").expect("required"), Setting::Required);
        assert_eq!(parse("\"off\"").expect("off"), Setting::Off);
        for bad in ["\"Off\"", "\"\"", "true", "0", "\"optional\"", "null"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
