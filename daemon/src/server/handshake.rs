//! The first request of a connection: `hello`, with the protocol version the client
//! speaks and the scopes and access it asks for (kept with the peer; what approving it
//! grants by default).

use crate::handlers::error;
use crate::peer::Peer;
use crate::state::server_name;
use keychain_auth_sdk::protocol::{ErrorCode, Request, Response, PROTOCOL_VERSION};

/// The answer to a connection's first request, and whether the conversation goes on.
pub(super) fn answer(peer: &Peer, req: Request) -> (Response, bool) {
    match req {
        Request::Hello {
            protocol,
            scopes,
            access,
            ..
        } if protocol == PROTOCOL_VERSION => match check_wants(scopes, access) {
            Ok(wants) => {
                let _ = peer.wants.set(wants);
                (
                    Response::Hello {
                        protocol: PROTOCOL_VERSION,
                        server: server_name(),
                    },
                    true,
                )
            }
            Err(e) => (error(ErrorCode::BadRequest, e), false),
        },
        Request::Hello { protocol, .. } => (
            error(
                ErrorCode::UnsupportedProtocol,
                format!(
                    "this daemon ({}) speaks protocol {PROTOCOL_VERSION}, the client asked for {protocol}; update the older of the two",
                    server_name()
                ),
            ),
            false,
        ),
        other => (
            error(
                ErrorCode::BadRequest,
                format!(
                    "the first request must be hello, not {}",
                    other.kind()
                ),
            ),
            false,
        ),
    }
}

/// Checks the scopes and access a `hello` asks for.
fn check_wants(
    scopes: Vec<String>,
    access: Option<keychain_auth_sdk::protocol::Access>,
) -> Result<crate::peer::Wants, String> {
    if scopes.len() > keychain_auth_sdk::protocol::MAX_REQUESTED_SCOPES {
        return Err(format!(
            "hello asks for {} scopes; at most {} may be asked for",
            scopes.len(),
            keychain_auth_sdk::protocol::MAX_REQUESTED_SCOPES
        ));
    }
    for s in &scopes {
        crate::scope::validate(s).map_err(|e| format!("hello asks for scope {s:?}: {e}"))?;
    }
    Ok(crate::peer::Wants { scopes, access })
}
