//! A small client used by the end-to-end tests, built from the SDK. Each copy of this
//! binary (with a byte appended) is a different executable to the daemon. It prints the
//! daemon's answer as one JSON line and exits 0 when an answer arrived, 1 otherwise.
//!
//! Usage: `ka-test-client get NAME [WAIT_MS] | set NAME VALUE | delete NAME | list |
//! whoami | raw JSON`

use keychain_auth_sdk::protocol::{Request, Response};
use keychain_auth_sdk::{Client, ClientError};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let req = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["get", name] => Request::Get {
            name: name.to_string(),
            wait_ms: None,
        },
        ["get", name, ms] => Request::Get {
            name: name.to_string(),
            wait_ms: Some(ms.parse().expect("wait_ms is a number")),
        },
        ["set", name, value] => Request::Set {
            name: name.to_string(),
            value: (*value).into(),
        },
        ["delete", name] => Request::Delete {
            name: name.to_string(),
        },
        ["list"] => Request::List {},
        ["whoami"] => Request::Whoami {},
        ["raw", json] => serde_json::from_str(json).expect("raw request is valid JSON"),
        _ => {
            eprintln!("usage: ka-test-client get NAME [WAIT_MS] | set NAME VALUE | delete NAME | list | whoami | raw JSON");
            std::process::exit(2);
        }
    };
    let mut client = match Client::connect("ka-test-client") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let _ = client.set_timeout(Some(std::time::Duration::from_secs(120)));
    let resp = match client.request(&req) {
        Ok(r) => r,
        Err(ClientError::Daemon(body)) => Response::Error(body),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!(
        "{}",
        serde_json::to_string(&resp).expect("response serializes")
    );
}
