//! Proof of presence on Linux: polkit. The daemon asks the polkit authority on the
//! system bus whether its own process (a `unix-process` subject: pid, start time, uid)
//! may perform this project's action, [`ACTION`], whose every default is `auth_self`
//! (never `_keep`): polkit has the person's authentication agent ask for their own
//! password (or fingerprint), checks it itself (PAM, as root), and answers. Nothing is
//! remembered, so each decision is proven afresh.
//!
//! The agent is the desktop's (the tray app runs in the graphical session) or the text
//! agent the CLI starts for the daemon's process in the CLI's terminal (`pkttyagent
//! --process`, [`crate::cli`]). The change is shown in the agent's prompt: polkit lets
//! only an action's owners pass details, so [`action_file`] names the users who may
//! (`keychain-auth presence install` writes it as root); when the daemon's user is not
//! one, the prompt shows the action's fixed message and the CLI shows the change.

use super::{BoxFuture, Change, Mechanism, NotProven, Prover};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use zbus::zvariant::Value;

/// The polkit action of every widening decision.
pub const ACTION: &str = "dev.keychain-auth.approve";

/// Where polkit reads actions from (root's alone).
pub const ACTIONS_DIR: &str = "/usr/share/polkit-1/actions";

/// The action's file.
pub fn action_path() -> PathBuf {
    Path::new(ACTIONS_DIR).join(format!("{ACTION}.policy"))
}

/// The prompt's text when the change cannot be passed (the daemon's user is not one of
/// the action's owners).
const FIXED_MESSAGE: &str =
    "keychain-auth: allow a program more access to your secrets (the terminal or notification that asked shows which)";

/// The action file: `auth_self` everywhere, owned (may pass the change to show) by
/// `owners` (user names).
pub fn action_file(owners: &[String]) -> String {
    let owner = if owners.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = owners.iter().map(|u| format!("unix-user:{u}")).collect();
        format!(
            "\n    <annotate key=\"org.freedesktop.policykit.owner\">{}</annotate>",
            ids.join(" ")
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE policyconfig PUBLIC "-//freedesktop//DTD PolicyKit Policy Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/PolicyKit/1/policyconfig.dtd">
<!-- Installed by `keychain-auth presence install`. Every widening decision of the
     keychain-auth daemon (approve, register, upgrade, more scopes or access, lifting a
     deny or a pause) is proven with the user's own password: auth_self, never kept. -->
<policyconfig>
  <vendor>keychain-auth</vendor>
  <action id="{ACTION}">
    <description>Allow a program more access to secrets kept by keychain-auth</description>
    <message>{FIXED_MESSAGE}</message>
    <defaults>
      <allow_any>auth_self</allow_any>
      <allow_inactive>auth_self</allow_inactive>
      <allow_active>auth_self</allow_active>
    </defaults>{owner}
  </action>
</policyconfig>
"#
    )
}

/// The owners an action file names.
fn owners_in(file: &str) -> Vec<String> {
    file.split(|c: char| c.is_whitespace() || c == '<' || c == '>')
        .filter_map(|w| w.strip_prefix("unix-user:"))
        .filter(|u| valid_user_name(u))
        .map(str::to_string)
        .collect()
}

/// Whether a user name can go into the action file as is.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('-')
}

/// `keychain-auth presence install`: writes the action file (root only). The users named
/// (default: the one who ran sudo) become its owners, whose daemons may show the change
/// in the prompt.
pub fn install(mut users: Vec<String>) -> anyhow::Result<String> {
    use anyhow::{bail, Context};
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "installing polkit's action needs root: sudo {} presence install --user $USER",
            std::env::current_exe()?.display()
        );
    }
    if users.is_empty() {
        if let Ok(u) = std::env::var("SUDO_USER") {
            users.push(u);
        }
    }
    if users.is_empty() {
        bail!("name the users whose keychain-auth may use it: presence install --user NAME");
    }
    for u in &users {
        if !valid_user_name(u) {
            bail!("{u:?} is not a user name");
        }
        if nix::unistd::User::from_name(u).ok().flatten().is_none() {
            bail!("no user is named {u:?}");
        }
    }
    let path = action_path();
    // Owners named by an earlier install stay.
    for u in owners_in(&std::fs::read_to_string(&path).unwrap_or_default()) {
        if !users.contains(&u) {
            users.push(u);
        }
    }
    std::fs::create_dir_all(ACTIONS_DIR).with_context(|| format!("creating {}", ACTIONS_DIR))?;
    // Readable by polkitd (which runs as its own user) from the moment it appears.
    let tmp = path.with_extension("policy.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        f.write_all(action_file(&users).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    Ok(format!(
        "installed {} for {}; polkitd reads it at once",
        path.display(),
        users.join(", ")
    ))
}

/// What to tell a person who sets keychain-auth up, when the action is missing.
pub fn setup_hint() -> Option<String> {
    if action_path().exists() {
        return None;
    }
    Some(format!(
        "proof of presence is not set up, so any program of yours can approve itself; set it up once, as root: apt-get install polkitd && {} presence install --user {}",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "keychain-auth".into()),
        std::env::var("USER").unwrap_or_else(|_| "$USER".into())
    ))
}

/// polkit, through the system bus.
#[derive(Debug, Default)]
pub struct Polkit {
    calls: AtomicU64,
}

impl Polkit {
    /// The system's polkit.
    pub fn new() -> Polkit {
        Polkit::default()
    }
}

/// What polkit answered, as this project reads it.
fn outcome(
    authorized: bool,
    challenge: bool,
    details: &HashMap<String, String>,
) -> Result<(), NotProven> {
    if authorized {
        Ok(())
    } else if details.get("polkit.dismissed").is_some_and(|v| v == "true") {
        Err(NotProven::Cancelled)
    } else if challenge {
        // Authentication was needed and no agent took the challenge.
        Err(NotProven::NoAgent)
    } else {
        Err(NotProven::Failed)
    }
}

/// The daemon's own process as a polkit subject.
fn own_subject() -> Result<(&'static str, HashMap<&'static str, Value<'static>>), NotProven> {
    let start = crate::peer::linux::own_start_time()
        .map_err(|e| NotProven::Broken(format!("cannot read this process's start time: {e}")))?;
    let mut d = HashMap::new();
    d.insert("pid", Value::U32(std::process::id()));
    d.insert("start-time", Value::U64(start));
    // SAFETY: getuid has no preconditions.
    d.insert("uid", Value::I32(unsafe { libc::getuid() } as i32));
    Ok(("unix-process", d))
}

type Reply = (bool, bool, HashMap<String, String>);

impl Polkit {
    async fn check(&self, change: &Change, timeout_s: u64) -> Result<(), NotProven> {
        let broken = |e: zbus::Error| {
            NotProven::Broken(format!(
                "polkit cannot be reached on the system bus ({e}); is polkitd running? (Debian: apt-get install polkitd)"
            ))
        };
        let conn = zbus::Connection::system().await.map_err(broken)?;
        let authority = zbus::Proxy::new(
            &conn,
            "org.freedesktop.PolicyKit1",
            "/org/freedesktop/PolicyKit1/Authority",
            "org.freedesktop.PolicyKit1.Authority",
        )
        .await
        .map_err(broken)?;
        let cancel = format!(
            "keychain-auth-{}-{}",
            std::process::id(),
            self.calls.fetch_add(1, Ordering::Relaxed)
        );
        let ask = |with_change: bool| {
            let authority = &authority;
            let cancel = cancel.clone();
            async move {
                let mut details: HashMap<&str, &str> = HashMap::new();
                if with_change {
                    details.insert("polkit.message", &change.text);
                    details.insert("change", &change.text);
                }
                // Flag 1: AllowUserInteraction.
                let r: zbus::Result<Reply> = authority
                    .call(
                        "CheckAuthorization",
                        &(own_subject()?, ACTION, details, 1u32, cancel.as_str()),
                    )
                    .await;
                Ok::<_, NotProven>(r)
            }
        };
        let asked = async {
            match ask(true).await? {
                Err(zbus::Error::MethodError(_, Some(msg), _))
                    if msg.contains("can pass details") || msg.contains("trusted callers") =>
                {
                    tracing::warn!(
                        "this user is not an owner of polkit's {ACTION} action, so the prompt cannot show the change; reinstall it with `sudo keychain-auth presence install --user $USER`"
                    );
                    ask(false).await?
                }
                other => other,
            }
            .map_err(|e| match e {
                zbus::Error::MethodError(name, msg, _) => NotProven::Broken(format!(
                    "polkit refused the check: {name}: {}",
                    msg.unwrap_or_default()
                )),
                e => broken(e),
            })
        };
        match tokio::time::timeout(Duration::from_secs(timeout_s), asked).await {
            Ok(Ok((authorized, challenge, details))) => outcome(authorized, challenge, &details),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let _: zbus::Result<()> = authority
                    .call("CancelCheckAuthorization", &(cancel.as_str(),))
                    .await;
                Err(NotProven::Timeout(timeout_s))
            }
        }
    }
}

impl Prover for Polkit {
    fn mechanism(&self) -> Result<Mechanism, String> {
        match std::fs::symlink_metadata(action_path()) {
            Ok(m) if m.is_file() => Ok(Mechanism::Polkit),
            Ok(_) => Err(format!("{} is not a regular file", action_path().display())),
            Err(_) => Err(format!(
                "polkit's {ACTION} action is not installed; install it with `sudo keychain-auth presence install --user $USER` (and polkitd: apt-get install polkitd)"
            )),
        }
    }

    fn prove<'a>(
        &'a self,
        change: &'a Change,
        timeout_s: u64,
    ) -> BoxFuture<'a, Result<(), NotProven>> {
        Box::pin(self.check(change, timeout_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polkit_answers_are_read_the_way_they_are_meant() {
        let none = HashMap::new();
        assert_eq!(outcome(true, false, &none), Ok(()));
        assert_eq!(outcome(false, true, &none), Err(NotProven::NoAgent));
        assert_eq!(outcome(false, false, &none), Err(NotProven::Failed));
        let dismissed = HashMap::from([("polkit.dismissed".to_string(), "true".to_string())]);
        assert_eq!(outcome(false, false, &dismissed), Err(NotProven::Cancelled));
        assert_eq!(outcome(false, true, &dismissed), Err(NotProven::Cancelled));
        // Authorized wins over anything in the details.
        assert_eq!(outcome(true, true, &dismissed), Ok(()));
    }

    #[test]
    fn the_action_proves_with_the_users_own_password_and_never_keeps_it() {
        let f = action_file(&["alice".into(), "bob".into()]);
        assert_eq!(f.matches("<allow_any>auth_self</allow_any>").count(), 1);
        assert_eq!(f.matches(">auth_self<").count(), 3);
        assert!(!f.contains("_keep"));
        assert!(f.contains(&format!("<action id=\"{ACTION}\">")));
        assert!(f.contains(">unix-user:alice unix-user:bob</annotate>"));
        assert!(!action_file(&[]).contains("policykit.owner"));
        assert_eq!(owners_in(&f), vec!["alice", "bob"]);
        assert!(owners_in(&action_file(&[])).is_empty());
        assert!(owners_in("garbage unix-user:a/b unix-user: ").is_empty());
    }

    #[test]
    fn only_plain_user_names_enter_the_action_file() {
        for ok in ["alice", "ka-e2e_1", "a.b"] {
            assert!(valid_user_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a b",
            "a<b",
            "a\"b",
            "unix-user:root",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(!valid_user_name(bad), "{bad}");
        }
    }
}
