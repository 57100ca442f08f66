//! Decodes every byte-level example in docs/protocol.md with this crate's own types, so
//! the document and the code cannot drift apart: each ```frame request``` or
//! ```frame response``` block must be a correct frame whose payload parses, re-encodes to
//! the same JSON, and equals the ```json``` block that follows it.

use keychain_auth_sdk::frame::{self, check_len};
use keychain_auth_sdk::protocol::{Request, Response};
use serde_json::Value;

struct Example {
    kind: String,
    bytes: Vec<u8>,
    json: Value,
    line: usize,
}

fn examples(doc: &str) -> Vec<Example> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(kind) = lines[i].trim().strip_prefix("```frame ") else {
            i += 1;
            continue;
        };
        let start = i + 1;
        let mut hex = String::new();
        i += 1;
        while !lines[i].trim().starts_with("```") {
            hex.push_str(lines[i]);
            hex.push(' ');
            i += 1;
        }
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|b| {
                u8::from_str_radix(b, 16)
                    .unwrap_or_else(|_| panic!("line {start}: bad hex byte {b:?}"))
            })
            .collect();
        i += 1;
        while lines[i].trim().is_empty() {
            i += 1;
        }
        assert_eq!(
            lines[i].trim(),
            "```json",
            "line {}: a ```json block must follow the frame",
            i + 1
        );
        i += 1;
        let mut json = String::new();
        while !lines[i].trim().starts_with("```") {
            json.push_str(lines[i]);
            json.push('\n');
            i += 1;
        }
        out.push(Example {
            kind: kind.trim().to_string(),
            bytes,
            json: serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("line {start}: json block: {e}")),
            line: start,
        });
        i += 1;
    }
    out
}

#[test]
fn every_documented_frame_decodes_to_its_json() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md exists");
    let examples = examples(&doc);
    assert!(
        examples.len() >= 10,
        "protocol.md has {} frame examples",
        examples.len()
    );
    let (mut requests, mut responses) = (0, 0);
    for ex in examples {
        let at = format!("docs/protocol.md line {}", ex.line);
        let header: [u8; 4] = ex.bytes[..4].try_into().expect("4-byte header");
        let len = check_len(header).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(
            len,
            ex.bytes.len() - 4,
            "{at}: length prefix matches the payload"
        );
        let payload = &ex.bytes[4..];
        let raw: Value = serde_json::from_slice(payload).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(raw, ex.json, "{at}: frame payload equals the json block");
        let reencoded = match ex.kind.as_str() {
            "request" => {
                requests += 1;
                let r: Request = frame::decode(payload).unwrap_or_else(|e| panic!("{at}: {e}"));
                serde_json::to_value(&r).expect("serializes")
            }
            "response" => {
                responses += 1;
                let r: Response = frame::decode(payload).unwrap_or_else(|e| panic!("{at}: {e}"));
                serde_json::to_value(&r).expect("serializes")
            }
            other => panic!("{at}: unknown example kind {other:?}"),
        };
        assert_eq!(
            reencoded, ex.json,
            "{at}: the SDK's types round-trip the example"
        );
    }
    assert!(requests > 0 && responses > 0);
}
