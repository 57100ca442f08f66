//! `git-credential-keychain-auth [--wait SECONDS] get|store|erase`: git runs it with
//! `credential.helper=keychain-auth`, writes a credential description on its standard
//! input and reads the answer to `get` from its standard output. A failure exits with
//! the CLI's status for it (`keychain_auth_sdk::exit`: 2 usage, 3 daemon not running, 4
//! not approved, 5 denied, 6 out of scope, 1 anything else); a credential that is not
//! stored is no failure (`get` answers nothing, exit 0), as git asks of a helper.

use git_credential_keychain_auth::actions::{self, Options, NAME};
use git_credential_keychain_auth::credential::{Credential, MAX_INPUT};
use keychain_auth_sdk::exit;
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: git-credential-keychain-auth [--wait SECONDS] get|store|erase
  git runs this helper when its config says credential.helper=keychain-auth.
  --wait SECONDS  when the helper is not approved yet, let `get` wait that long for
                  the user to approve it instead of failing at once";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, action) = match parse_args(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{NAME}: {e}\n{USAGE}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut input)
    {
        eprintln!("{NAME}: reading the credential from standard input: {e}");
        return ExitCode::from(exit::FAILURE);
    }
    let parsed = Credential::parse(&input);
    keychain_auth_sdk::secret::wipe(&mut input);
    let result = parsed
        .map_err(actions::Failure::from)
        .and_then(|c| actions::run(&action, &c, opts, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            ExitCode::from(e.status)
        }
    }
}

fn parse_args(args: &[String]) -> Result<(Options, String), String> {
    let mut opts = Options::default();
    let mut action = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--wait" => {
                let v = it.next().ok_or("--wait needs a number of seconds")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--wait takes whole seconds, not {v:?}"))?;
                opts.wait = Some(Duration::from_secs(secs));
            }
            "-h" | "--help" => return Err("help".into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if action.is_none() => action = Some(s.to_string()),
            s => return Err(format!("unexpected argument {s:?}")),
        }
    }
    let action = action.ok_or("no action given")?;
    Ok((opts, action))
}
