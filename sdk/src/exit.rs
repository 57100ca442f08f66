//! The exit statuses the `keychain-auth` command line and `git-credential-keychain-auth`
//! share, so a script can tell a refusal from a daemon that is down. README.md has the
//! table; docs/git.md says what git does with them.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | any other error (the message on standard error says what and what to do) |
//! | 2 | usage: unknown command, option or argument |
//! | 3 | the daemon is not running (nothing answers on its socket) |
//! | 4 | `not_approved`: the program is not approved yet (it is pending) |
//! | 5 | `denied`: the program is denied, or the request was refused for its safety |
//! | 6 | `out_of_scope`: the name is outside the program's scopes |
//! | 7 | `not_found`: no such secret, tool or pending binary |

use crate::client::ClientError;
use crate::protocol::ErrorCode;

/// Done.
pub const OK: u8 = 0;
/// Any other error.
pub const FAILURE: u8 = 1;
/// A usage error (clap's status for one).
pub const USAGE: u8 = 2;
/// The daemon is not running.
pub const NOT_RUNNING: u8 = 3;
/// `not_approved`.
pub const NOT_APPROVED: u8 = 4;
/// `denied`.
pub const DENIED: u8 = 5;
/// `out_of_scope`.
pub const OUT_OF_SCOPE: u8 = 6;
/// `not_found`.
pub const NOT_FOUND: u8 = 7;

/// The status for a refusal code; [`FAILURE`] for the codes without their own.
pub fn for_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::NotApproved => NOT_APPROVED,
        ErrorCode::Denied => DENIED,
        ErrorCode::OutOfScope => OUT_OF_SCOPE,
        ErrorCode::NotFound => NOT_FOUND,
        _ => FAILURE,
    }
}

/// The status for a client error.
pub fn for_error(e: &ClientError) -> u8 {
    match e {
        ClientError::NotRunning { .. } => NOT_RUNNING,
        ClientError::Daemon(body) => for_code(body.code),
        _ => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorBody;

    fn refused(code: ErrorCode) -> ClientError {
        ClientError::Daemon(ErrorBody {
            code,
            message: "no".into(),
            hash: None,
            pending: None,
        })
    }

    #[test]
    fn each_refusal_has_its_status_and_the_rest_fail_with_one() {
        assert_eq!(for_error(&refused(ErrorCode::NotApproved)), 4);
        assert_eq!(for_error(&refused(ErrorCode::Denied)), 5);
        assert_eq!(for_error(&refused(ErrorCode::OutOfScope)), 6);
        assert_eq!(for_error(&refused(ErrorCode::NotFound)), 7);
        for other in [
            ErrorCode::BadRequest,
            ErrorCode::Forbidden,
            ErrorCode::StoreUnavailable,
            ErrorCode::Unknown,
        ] {
            assert_eq!(for_error(&refused(other)), FAILURE, "{other}");
        }
        let down = ClientError::NotRunning {
            socket: "/nowhere/agent.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(for_error(&down), NOT_RUNNING);
        assert_eq!(for_error(&ClientError::Untrusted("x".into())), FAILURE);
    }
}
