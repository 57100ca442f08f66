//! Decisions: given what the kernel told us about a peer, what it asks, and the config,
//! answer allow or why not. Pure functions, unit-tested without sockets; the server does
//! the I/O around them (queueing pending binaries, reading the store, writing the audit).

use crate::config::Config;
use crate::scope;
use keychain_auth_sdk::protocol::{Access, Tool};

/// Facts about a peer that decisions use.
#[derive(Debug, Clone, Copy)]
pub struct PeerFacts<'a> {
    /// `sha256:<hex>` of its executable.
    pub hash: &'a str,
    /// Its executable is a script interpreter and no script identity applies.
    pub interpreter: bool,
    /// Why no script identity applies (inline code, an interactive shell, …).
    pub no_script: Option<&'a str>,
    /// Why it looks injected or tampered with (LD_PRELOAD, tracer, …), if it does.
    pub injection: Option<&'a str>,
    /// It is the keychain-auth CLI (or the hosting app).
    pub admin: bool,
    /// For a request through `keychain-auth get`: the caller holds the CLI's output only
    /// through this descriptor, which is not close-on-exec, so it may have been kept
    /// across an exec (see `peer::OutputBinding::Inheritable`).
    pub unbound: Option<i32>,
    /// Executable files it maps that its user can change (besides its own executable).
    pub libraries: &'a [keychain_auth_sdk::protocol::PinnedFile],
    /// The deputy the request came through, if any.
    pub through: Option<keychain_auth_sdk::protocol::Deputy>,
}

/// What a peer asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Read a secret.
    Get(&'a str),
    /// Write a secret.
    Set(&'a str),
    /// Delete a secret.
    Delete(&'a str),
    /// List names in scope.
    List,
    /// An admin request.
    Admin,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Unknown binary: queue it and refuse for now.
    NotApproved,
    /// Refused by a deny rule or a security check; the reason is for the audit log and
    /// the client.
    Denied(String),
    /// An approved tool that now maps files its user can change that its approval does
    /// not pin (their paths): not served until approved again with them.
    UnapprovedLibraries(Vec<String>),
    /// The name is outside the tool's scopes.
    OutOfScope,
    /// The caller may never make this request.
    Forbidden(String),
}

/// The rule every approval and every refusal of an interpreter states.
pub const WHOLE_INTERPRETER: &str = "An interpreter is never approved as a whole (every command run in it could then read the secret).";

/// Whether an approval of `path` may be made: not when it would approve a bare
/// interpreter (`path` is one, or identification `flagged` it as one, and it is not
/// approved as the script it runs). `Err` is the refusal, for a person.
pub fn approvable(path: &str, runs_script: bool, flagged: bool) -> Result<(), String> {
    if !runs_script && (flagged || crate::peer::is_interpreter(path)) {
        return Err(format!(
            "{path} is a script interpreter. {WHOLE_INTERPRETER} Approve the script it runs instead"
        ));
    }
    Ok(())
}

/// Decides one request.
pub fn decide(peer: PeerFacts<'_>, op: Op<'_>, config: &Config, now_rfc3339: &str) -> Decision {
    if let Some(why) = peer.injection {
        return Decision::Denied(format!("the process looks tampered with: {why}"));
    }
    if peer.admin {
        return match op {
            Op::Get(_) => Decision::Forbidden(
                "keychain-auth does not read secrets for itself; ask from the tool that needs the secret".into(),
            ),
            _ => Decision::Allow,
        };
    }
    if op == Op::Admin {
        return Decision::Forbidden(
            "admin requests are accepted only from the keychain-auth CLI of the running daemon"
                .into(),
        );
    }
    if config.is_denied(peer.hash) {
        return Decision::Denied("this binary was denied by the user".into());
    }
    if peer.interpreter {
        let why = peer
            .no_script
            .map(|w| format!(" and {w}"))
            .unwrap_or_default();
        return Decision::Denied(format!(
            "this executable is a script interpreter{why}. {WHOLE_INTERPRETER} Run the code from a script file: a script is identified (and approved) as interpreter + script path + script hash"
        ));
    }
    let Some(tool) = config.tool(peer.hash) else {
        return Decision::NotApproved;
    };
    if is_expired(tool, now_rfc3339) {
        return Decision::NotApproved;
    }
    let unpinned: Vec<String> = peer
        .libraries
        .iter()
        .filter(|l| !tool.libraries.iter().any(|t| t.hash == l.hash))
        .map(|l| l.path.clone())
        .collect();
    if !unpinned.is_empty() {
        return Decision::UnapprovedLibraries(unpinned);
    }
    if let Some(only) = tool.only_through {
        if peer.through != Some(only) {
            let came = match peer.through {
                Some(d) => format!("through {d}"),
                None => "directly".to_string(),
            };
            return Decision::Denied(format!(
                "{} is approved only through {only}, and this request came {came}",
                tool.label
            ));
        }
    }
    if let Some(fd) = peer.unbound.filter(|_| !tool.unbound_get) {
        return Decision::Denied(format!(
            "it holds the output of keychain-auth get in descriptor {fd}, which is not close-on-exec (as a shell's $(…) is): the daemon cannot tell it from a program that started keychain-auth get and then replaced itself with it (exec). Approve it with keychain-auth approve {} --allow-unbound-get to let keychain-auth get serve it anyway (docs/threat-model.md says what that allows)",
            peer.hash
        ));
    }
    match op {
        Op::Get(name) => in_scope(tool, name),
        Op::Set(name) | Op::Delete(name) => match in_scope(tool, name) {
            Decision::Allow if tool.access != Access::ReadWrite => Decision::Forbidden(format!(
                "{} has read access only; approve it with --access read-write to let it write",
                tool.label
            )),
            d => d,
        },
        Op::List => Decision::Allow,
        Op::Admin => Decision::Forbidden("admin requests need the keychain-auth CLI".into()),
    }
}

fn in_scope(tool: &Tool, name: &str) -> Decision {
    if scope::any_matches(&tool.scopes, name) {
        Decision::Allow
    } else {
        Decision::OutOfScope
    }
}

fn is_expired(tool: &Tool, now_rfc3339: &str) -> bool {
    tool.expires_at
        .as_deref()
        .is_some_and(|exp| exp <= now_rfc3339)
}

/// The names among `all` that `tool` may see.
pub fn visible_names(tool: &Tool, all: Vec<String>) -> Vec<String> {
    all.into_iter()
        .filter(|n| scope::any_matches(&tool.scopes, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DenyRule;

    const H: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const NOW: &str = "2026-11-27T00:00:00Z";

    fn tool(access: Access) -> Tool {
        Tool {
            approved_at: NOW.into(),
            ..crate::fixtures::tool(H, "git-helper", "/bin/git-helper", &["git/*"], access)
        }
    }

    fn cfg(tools: Vec<Tool>) -> Config {
        Config {
            tools,
            ..Config::default()
        }
    }

    fn peer(hash: &str) -> PeerFacts<'_> {
        PeerFacts {
            hash,
            interpreter: false,
            no_script: None,
            injection: None,
            admin: false,
            unbound: None,
            libraries: &[],
            through: None,
        }
    }

    #[test]
    fn unknown_binary_is_not_approved() {
        let c = cfg(vec![tool(Access::Read)]);
        assert_eq!(
            decide(peer(OTHER), Op::Get("git/x"), &c, NOW),
            Decision::NotApproved
        );
        assert_eq!(
            decide(peer(OTHER), Op::List, &c, NOW),
            Decision::NotApproved
        );
    }

    #[test]
    fn approved_tool_sees_only_its_scopes() {
        let c = cfg(vec![tool(Access::Read)]);
        assert_eq!(
            decide(peer(H), Op::Get("git/a/b"), &c, NOW),
            Decision::Allow
        );
        assert_eq!(
            decide(peer(H), Op::Get("aws/key"), &c, NOW),
            Decision::OutOfScope
        );
        let names = vec!["git/a".to_string(), "aws/key".to_string()];
        assert_eq!(visible_names(&c.tools[0], names), vec!["git/a"]);
    }

    #[test]
    fn an_approval_only_through_a_deputy_serves_nothing_else() {
        use keychain_auth_sdk::protocol::Deputy;
        let c = cfg(vec![Tool {
            only_through: Some(Deputy::Git),
            ..tool(Access::Read)
        }]);
        let via = |d: Option<Deputy>| PeerFacts {
            through: d,
            ..peer(H)
        };
        assert_eq!(
            decide(via(Some(Deputy::Git)), Op::Get("git/x"), &c, NOW),
            Decision::Allow
        );
        for other in [None, Some(Deputy::Get)] {
            match decide(via(other), Op::Get("git/x"), &c, NOW) {
                Decision::Denied(why) => assert!(why.contains("only through git"), "{why}"),
                d => panic!("{other:?}: {d:?}"),
            }
        }
        // Without the restriction, every way in is served.
        let open = cfg(vec![tool(Access::Read)]);
        for d in [None, Some(Deputy::Get), Some(Deputy::Git)] {
            assert_eq!(
                decide(via(d), Op::Get("git/x"), &open, NOW),
                Decision::Allow
            );
        }
    }

    #[test]
    fn writes_need_read_write() {
        let c = cfg(vec![tool(Access::Read)]);
        assert!(matches!(
            decide(peer(H), Op::Set("git/a"), &c, NOW),
            Decision::Forbidden(_)
        ));
        assert!(matches!(
            decide(peer(H), Op::Delete("git/a"), &c, NOW),
            Decision::Forbidden(_)
        ));
        let c = cfg(vec![tool(Access::ReadWrite)]);
        assert_eq!(decide(peer(H), Op::Set("git/a"), &c, NOW), Decision::Allow);
        assert_eq!(
            decide(peer(H), Op::Set("aws/a"), &c, NOW),
            Decision::OutOfScope
        );
    }

    #[test]
    fn deny_rules_win_over_approvals() {
        let mut c = cfg(vec![tool(Access::Read)]);
        c.denied.push(DenyRule {
            hash: H.into(),
            path: "/x".into(),
            at: NOW.into(),
            script: None,
        });
        assert!(matches!(
            decide(peer(H), Op::Get("git/a"), &c, NOW),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn injection_and_interpreters_are_denied() {
        let c = cfg(vec![tool(Access::Read)]);
        let mut p = peer(H);
        p.injection = Some("LD_PRELOAD is set");
        assert!(matches!(
            decide(p, Op::Get("git/a"), &c, NOW),
            Decision::Denied(_)
        ));
        p.admin = true;
        assert!(matches!(decide(p, Op::Admin, &c, NOW), Decision::Denied(_)));
        let mut p = peer(OTHER);
        p.interpreter = true;
        assert!(matches!(
            decide(p, Op::Get("git/a"), &c, NOW),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn admin_requests_only_from_admin_and_admin_never_reads() {
        let c = cfg(vec![tool(Access::ReadWrite)]);
        assert!(matches!(
            decide(peer(H), Op::Admin, &c, NOW),
            Decision::Forbidden(_)
        ));
        let mut p = peer(OTHER);
        p.admin = true;
        assert_eq!(decide(p, Op::Admin, &c, NOW), Decision::Allow);
        assert_eq!(decide(p, Op::Set("anything"), &c, NOW), Decision::Allow);
        assert!(matches!(
            decide(p, Op::Get("git/a"), &c, NOW),
            Decision::Forbidden(_)
        ));
    }

    #[test]
    fn an_unbound_caller_of_get_is_served_only_when_its_approval_allows_it() {
        let mut c = cfg(vec![tool(Access::Read)]);
        let mut p = peer(H);
        p.unbound = Some(3);
        assert!(matches!(
            decide(p, Op::Get("git/a"), &c, NOW),
            Decision::Denied(why) if why.contains("allow-unbound-get")
        ));
        c.tools[0].unbound_get = true;
        assert_eq!(decide(p, Op::Get("git/a"), &c, NOW), Decision::Allow);
        assert_eq!(
            decide(p, Op::Get("aws/a"), &c, NOW),
            Decision::OutOfScope,
            "scopes still hold"
        );
        p.hash = OTHER;
        assert_eq!(decide(p, Op::Get("git/a"), &c, NOW), Decision::NotApproved);
    }

    #[test]
    fn libraries_the_user_can_change_must_be_pinned_by_the_approval() {
        use keychain_auth_sdk::protocol::PinnedFile;
        let lib = |h: &str| PinnedFile {
            path: format!("/home/u/lib/{h}.so"),
            hash: h.into(),
        };
        let mut c = cfg(vec![tool(Access::Read)]);
        let seen = [lib("sha256:aa")];
        let mut p = peer(H);
        p.libraries = &seen;
        assert_eq!(
            decide(p, Op::Get("git/a"), &c, NOW),
            Decision::UnapprovedLibraries(vec!["/home/u/lib/sha256:aa.so".into()])
        );
        c.tools[0].libraries = vec![lib("sha256:aa"), lib("sha256:bb")];
        assert_eq!(decide(p, Op::Get("git/a"), &c, NOW), Decision::Allow);
        let other = [lib("sha256:cc")];
        p.libraries = &other;
        assert!(matches!(
            decide(p, Op::Get("git/a"), &c, NOW),
            Decision::UnapprovedLibraries(_)
        ));
        p.hash = OTHER;
        assert_eq!(decide(p, Op::Get("git/a"), &c, NOW), Decision::NotApproved);
    }

    #[test]
    fn expired_approvals_lapse() {
        let mut t = tool(Access::Read);
        t.expires_at = Some("2026-01-01T00:00:00Z".into());
        let c = cfg(vec![t]);
        assert_eq!(
            decide(peer(H), Op::Get("git/a"), &c, NOW),
            Decision::NotApproved
        );
    }
}
