//! A polkit text agent for one widening command run in a terminal. The daemon proves
//! presence with its own process as polkit's subject; polkit asks the agent registered
//! for that subject. So before it sends the request, the CLI starts `pkttyagent
//! --process <daemon pid>,<start time>` on its controlling terminal and waits until the
//! agent is registered; the agent asks for the user's password in this terminal, and
//! is stopped when the answer arrives. Without a terminal nothing is started: the
//! desktop's agent, if the daemon runs in a desktop session, asks instead, else the
//! change is refused.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running text agent; stopped when dropped.
#[derive(Debug)]
pub struct TtyAgent {
    child: Child,
}

/// Where Debian and others install it.
const CANDIDATES: [&str; 2] = ["/usr/bin/pkttyagent", "/bin/pkttyagent"];

/// Whether this process has a controlling terminal to ask on.
fn has_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

impl TtyAgent {
    /// Starts an agent for the daemon process `pid` when there is a terminal to ask on;
    /// `None` when there is none. Errors name what is missing.
    pub fn start(pid: u32) -> Result<Option<TtyAgent>> {
        if !has_terminal() {
            return Ok(None);
        }
        let Some(program) = CANDIDATES
            .iter()
            .map(std::path::Path::new)
            .find(|p| p.is_file())
        else {
            bail!("proof of presence needs polkit's text agent, pkttyagent, to ask for your password here (Debian: apt-get install polkitd)");
        };
        let subject = match std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| start_time(&s))
        {
            Some(start) => format!("{pid},{start}"),
            None => pid.to_string(),
        };
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
        let write_fd = write.as_raw_fd();
        let mut cmd = Command::new(program);
        // It asks on the controlling terminal itself; it must not hold this command's
        // standard streams (a `$(keychain-auth get …)` would wait for it).
        cmd.args(["--process", &subject, "--notify-fd", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe calls (dup2).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::dup2(write_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        drop(write);
        // The agent closes the descriptor once it is registered; it exits (closing it
        // too) when it cannot register, right after saying why.
        let mut notified = std::fs::File::from(read);
        let mut byte = [0u8; 1];
        let _ = notified.read(&mut byte);
        std::thread::sleep(Duration::from_millis(50));
        if let Some(status) = child.try_wait()? {
            let mut why = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut why);
            }
            bail!(
                "polkit's text agent could not start ({status}): {}",
                why.trim()
            );
        }
        // Its errors from here on go nowhere: the daemon's answer says what happened.
        Ok(Some(TtyAgent { child }))
    }
}

/// Field 22 of `/proc/<pid>/stat`.
fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Drop for TtyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid of the process listening on the other end of `stream`.
pub fn daemon_pid(stream: &impl std::os::fd::AsFd) -> Result<u32> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| anyhow!("reading the daemon's credentials: {e}"))?;
    u32::try_from(cred.pid()).map_err(|_| anyhow!("the daemon has no pid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_field_22_even_after_a_name_with_spaces_and_parens() {
        let stat =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time("4242 (x) S 1"), None);
        assert_eq!(start_time("garbage"), None);
    }
}
