//! Caller chains: who a deputy (the git helper, `keychain-auth get`) is really serving.
//! From the deputy the walk goes up its ancestors, each pinned race-free (a pidfd of the
//! parent, the child's parent confirmed unchanged after it, the same uid, and the parent
//! holding one of the child's standard streams), through the programs that only pass a
//! request on (see [`PassThrough`]) to the **origin**: the first that is not one. An
//! interactive shell is no origin; its terminal session is, named by the program that
//! holds the terminal's master side (a terminal emulator, a tmux or screen server, sshd,
//! or a script that opened a pty). A chain that cannot be followed is [`Broken`]: never
//! served and never queued.
//!
//! The OS reads are the peer's ([`Peer::parent`], [`Peer::terminal_of`],
//! [`Peer::holds_terminal`]); which programs pass through is the daemon's to say
//! ([`Known`]).

use super::{exe_base_name, Link, OutputBinding, ParentSeed, PassThrough, Peer, ShellRuns, Tty};
use crate::digest::HashCache;

/// Most programs walked through between a deputy and its origin.
pub const MAX_LINKS: usize = 32;

/// A chain that cannot be followed to its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// Why, for a person and the audit log.
    pub reason: String,
    /// The chain as far as it was verified, nearest the origin first.
    pub verified: String,
    /// Not broken: a file must be hashed (or the pass-throughs found) first, which a
    /// walk that may not block does not do; walk again where blocking is allowed.
    pub needs_hash: bool,
}

impl Broken {
    /// A chain broken for `reason`, verified as far as `verified`.
    pub fn new(reason: String, verified: String) -> Broken {
        Broken {
            reason,
            verified,
            needs_hash: false,
        }
    }
}

/// Which programs a chain passes through.
pub trait Known {
    /// Why `peer` passes requests on, or `None` when it is an origin.
    fn pass_through(&self, peer: &Peer) -> Option<PassThrough>;

    /// Whether answering [`Known::pass_through`] may not block (nothing left to find
    /// or hash).
    fn ready(&self) -> bool {
        true
    }
}

/// The identity of a terminal session held by the program whose identity is `holder`:
/// `sha256:` of a domain-separated form, so approving a terminal program as the holder
/// of terminal sessions never approves it as a client, nor the other way round.
pub fn terminal_identity_hash(holder: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"keychain-auth terminal session v1\0");
    h.update(holder.as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// How a program of a chain is named in its one-line form.
fn hop_name(peer: &Peer, what: PassThrough) -> String {
    let base = exe_base_name(&peer.path);
    match what {
        PassThrough::InlineShell => format!("{base} -c"),
        PassThrough::TerminalShell => base.to_string(),
        PassThrough::Deputy | PassThrough::Git => base.to_string(),
    }
}

/// How an origin is named: the script it runs, its executable, or the terminal session.
pub fn origin_name(peer: &Peer) -> String {
    let who = match &peer.script {
        Some(s) => format!("{} {}", exe_base_name(&s.interpreter), s.path),
        None => peer.path.clone(),
    };
    match &peer.terminal {
        Some(t) => format!(
            "a terminal session of {who} ({}, session {})",
            t.path, t.session
        ),
        None => who,
    }
}

/// The chain in the line a person reads, origin first: `python3 ~/sync.py → git → git →
/// git-credential-keychain-auth`.
fn line(origin: &str, hops: &[String]) -> String {
    let mut parts = vec![origin.to_string()];
    parts.extend(hops.iter().rev().cloned());
    parts.join(" → ")
}

/// Walks from the parent of a deputy (`seed`, taken from the deputy, whose name is
/// `deputy`) to the origin, which is returned with the chain in [`Peer::chain`] and
/// [`Peer::via`]. For `keychain-auth get`, the first program up the chain that reads the
/// CLI's output is what [`Peer::output`] of the origin says. Without `may_hash`, a file
/// not hashed yet ends the walk with [`Broken::needs_hash`].
pub fn walk(
    seed: ParentSeed,
    deputy: String,
    known: &dyn Known,
    cache: &HashCache,
    may_hash: bool,
) -> Result<Peer, Broken> {
    let mut hops = vec![deputy];
    let mut links: Vec<Link> = Vec::new();
    let mut output: Option<OutputBinding> = None;
    let mut terminal: Option<Tty> = None;
    let mut seed = seed;
    let broken = |reason: String, hops: &[String]| Broken::new(reason, line("?", hops));
    for _ in 0..MAX_LINKS {
        let p = match seed.identify(cache, may_hash) {
            Ok(p) => p,
            Err(super::PeerError::NeedsHash) => {
                return Err(Broken {
                    needs_hash: true,
                    ..broken("a file is not hashed yet".into(), &hops)
                })
            }
            Err(e) => return Err(broken(e.to_string(), &hops)),
        };
        // The output is judged on the first program up the chain that reads it.
        match (&output, &p.output) {
            (None, Some(b)) => output = Some(b.clone()),
            (Some(OutputBinding::Elsewhere(_)), Some(b))
                if !matches!(b, OutputBinding::Elsewhere(_)) =>
            {
                output = Some(b.clone())
            }
            _ => {}
        }
        // Every program of the chain holds one of the streams it gave the one below it
        // (an orphan adopted by a subreaper is held by nothing), except a shell, whose
        // commands redirect them all (`git … <in >out 2>err`): a shell never makes itself
        // a subreaper, and one made so by the program that started it could as well have
        // had its memory written by that program (docs/threat-model.md). The holder of a
        // terminal is tied by the terminal's master side instead.
        let shell = super::script::is_shell(exe_base_name(&p.path));
        if terminal.is_none() && p.child_stream == Some(false) && !shell {
            if matches!(output, Some(OutputBinding::Elsewhere(_))) {
                // `keychain-auth get` whose output this program does not read: refused
                // for that reason, which says more (and is never queued either).
                return Ok(finish(p, links, &hops, output, None));
            }
            return Err(broken(
                format!(
                    "process {} ({}) is the parent of the program below it but holds none of its standard input, output or error (a pipe, socket, terminal or file): it did not start it, or started it with nothing connected to itself (an orphan adopted by a subreaper looks like this)",
                    p.pid, p.path
                ),
                &hops,
            ));
        }
        let what = match &terminal {
            Some(tty) => {
                // Above an interactive shell: more shells of the same terminal, then the
                // program holding it.
                let same = p.shell == Some(ShellRuns::Commands)
                    && p.injection.is_none()
                    && p.terminal_of().ok().flatten().as_ref() == Some(tty);
                if same {
                    PassThrough::TerminalShell
                } else if p
                    .holds_terminal(tty)
                    .map_err(|e| broken(e.to_string(), &hops))?
                {
                    return Ok(finish(p, links, &hops, output, terminal));
                } else {
                    return Err(broken(
                        format!(
                            "the interactive shell on {} was started by process {} ({}), which does not hold that terminal: only a terminal's own program (a terminal emulator, tmux, screen, sshd) makes a terminal session",
                            tty.path, p.pid, p.path
                        ),
                        &hops,
                    ));
                }
            }
            None => match known.pass_through(&p).filter(|_| p.injection.is_none()) {
                Some(w) => w,
                None if p.shell == Some(ShellRuns::Commands) && p.injection.is_none() => {
                    match p.terminal_of() {
                        Ok(Some(tty)) => {
                            terminal = Some(tty);
                            PassThrough::TerminalShell
                        }
                        // Commands from a pipe: an interpreter without a script, which
                        // the policy refuses as such.
                        _ => return Ok(finish(p, links, &hops, output, None)),
                    }
                }
                None => return Ok(finish(p, links, &hops, output, None)),
            },
        };
        seed = p.parent(false).map_err(|e| broken(e.to_string(), &hops))?;
        hops.push(hop_name(&p, what));
        links.push(Link {
            pid: p.pid,
            path: p.path.clone(),
            what,
            handle: p.handle,
        });
    }
    Err(broken(
        format!(
            "more than {MAX_LINKS} programs pass the request on between the deputy and the program that asked: refused rather than followed further"
        ),
        &hops,
    ))
}

/// The origin, with its chain.
fn finish(
    mut origin: Peer,
    links: Vec<Link>,
    hops: &[String],
    output: Option<OutputBinding>,
    terminal: Option<Tty>,
) -> Peer {
    if let Some(tty) = terminal {
        origin.hash = terminal_identity_hash(&origin.hash);
        origin.terminal = Some(tty);
    }
    origin.output = output;
    origin.chain = links;
    origin.via = Some(line(&origin_name(&origin), hops));
    origin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_from_the_origin_down() {
        let hops = vec![
            "git-credential-keychain-auth".to_string(),
            "git".to_string(),
            "sh -c".to_string(),
        ];
        assert_eq!(
            line("python3 /home/a/sync.py", &hops),
            "python3 /home/a/sync.py → sh -c → git → git-credential-keychain-auth"
        );
    }

    #[test]
    fn a_terminal_session_is_never_the_identity_of_its_program() {
        let holder = "sha256:".to_string() + &"ab".repeat(32);
        let t = terminal_identity_hash(&holder);
        assert_ne!(t, holder);
        assert!(t.starts_with("sha256:") && t.len() == 71);
        assert_eq!(t, terminal_identity_hash(&holder));
        assert_ne!(
            t,
            terminal_identity_hash(&("sha256:".to_string() + &"cd".repeat(32)))
        );
    }
}
