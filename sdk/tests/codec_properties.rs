//! Property tests of the framing and message codec: every request and response the SDK
//! can build survives encode → decode unchanged, and no byte string makes the decoder
//! panic (it returns an error instead).

use keychain_auth_sdk::frame::{self, read_payload, MAX_FRAME};
use keychain_auth_sdk::protocol::{Access, ErrorBody, ErrorCode, Request, Response};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~é\\u{0}-\\u{1f}\"\\\\/]{0,40}").expect("regex")
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            proptest::collection::vec(text(), 0..3),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(protocol, client, scopes, rw)| Request::Hello {
                protocol,
                client,
                scopes,
                access: rw.map(|rw| if rw { Access::ReadWrite } else { Access::Read }),
            }),
        (text(), proptest::option::of(any::<u64>()))
            .prop_map(|(name, wait_ms)| Request::Get { name, wait_ms }),
        (text(), text()).prop_map(|(name, v)| Request::Set {
            name,
            value: v.into()
        }),
        text().prop_map(|name| Request::Delete { name }),
        proptest::option::of(any::<u64>()).prop_map(|offset| Request::List { offset }),
        Just(Request::Whoami {}),
        (
            text(),
            proptest::collection::vec(text(), 0..4),
            any::<bool>(),
            proptest::option::of(text())
        )
            .prop_map(|(hash, scopes, rw, label)| Request::Approve {
                hash,
                scopes,
                access: Some(if rw { Access::ReadWrite } else { Access::Read }),
                label,
                unbound_get: rw.then_some(true),
                only_through: rw.then_some(keychain_auth_sdk::protocol::Deputy::Git),
                lasts: rw.then_some(keychain_auth_sdk::protocol::Lasts::Seconds(3600)),
                follow: None,
                as_new: false,
                add_scopes: if rw { scopes_added() } else { Vec::new() },
                remove_scopes: if rw { Vec::new() } else { vec!["git/*".into()] },
            }),
        text().prop_map(|hash| Request::Undeny { hash }),
        Just(Request::ListDenied { offset: Some(3) }),
        text().prop_map(|presence| Request::SetPresence { presence }),
        text().prop_map(|tool| Request::Revoke { tool }),
        Just(Request::Status {}),
    ]
}

/// Scopes an approve adds, with a glob and a name that needs escaping.
fn scopes_added() -> Vec<String> {
    vec!["api/*".into(), "a \\* b".into()]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<u32>(), text()).prop_map(|(protocol, server)| Response::Hello { protocol, server }),
        (text(), text()).prop_map(|(name, v)| Response::Secret {
            name,
            value: v.into()
        }),
        (
            proptest::collection::vec(text(), 0..5),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(names, next)| Response::Names { names, next }),
        Just(Response::Ok),
        (
            text(),
            proptest::option::of(text()),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(message, hash, pending)| Response::Error(ErrorBody {
                code: ErrorCode::NotApproved,
                message,
                hash,
                pending,
            })),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(req in request()) {
        let bytes = frame::encode(&req).expect("small requests encode");
        prop_assert_eq!(u32::from_be_bytes(bytes[..4].try_into().expect("header")) as usize, bytes.len() - 4);
        let back: Request = frame::read_frame(&mut &bytes[..]).expect("decodes");
        prop_assert_eq!(back, req);
    }

    #[test]
    fn responses_round_trip(resp in response()) {
        let bytes = frame::encode(&resp).expect("small responses encode");
        let back: Response = frame::read_frame(&mut &bytes[..]).expect("decodes");
        prop_assert_eq!(back, resp);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = frame::decode::<Request>(&bytes);
        let _ = frame::decode::<Response>(&bytes);
        if let Ok(p) = read_payload(&mut &bytes[..]) {
            prop_assert!(!p.is_empty() && p.len() <= MAX_FRAME);
        }
    }
}
