//! Node.js: the options (on the command line or in `NODE_OPTIONS`) known to change
//! nothing, and those that load or run other code.

use super::{deny_vars, refused, script, Env, Runs};

/// node options that load or run other code, or open a way in.
fn node_denied(name: &str) -> Option<&'static str> {
    Some(match name {
        "require" | "r" => "--require loads a module before the script",
        "import" => "--import loads a module before the script",
        "loader" | "experimental-loader" => "--loader runs a module that handles every import",
        "env-file" | "env-file-if-exists" => {
            "--env-file reads variables, NODE_OPTIONS among them, from a file"
        }
        "openssl-config" | "openssl-shared-config" => {
            "--openssl-config reads an OpenSSL configuration that can load code"
        }
        "snapshot-blob" | "build-snapshot" => {
            "--snapshot-blob starts from a snapshot's code instead of the script"
        }
        "experimental-network-imports" => {
            "--experimental-network-imports imports code from the network"
        }
        "experimental-sea-config" | "test-reporter" => "it runs other code (a build or test mode)",
        n if n.starts_with("inspect") || n.starts_with("debug") => {
            "--inspect opens a debugger, through which anyone can run code in it"
        }
        _ => return None,
    })
}

/// node options known to change nothing about which code runs (a value after `=` or in
/// the next argument where marked).
fn node_safe(name: &str) -> Option<bool> {
    // Some(true): takes a value.
    Some(match name {
        "max-old-space-size"
        | "max-semi-space-size"
        | "stack-size"
        | "stack-trace-limit"
        | "title"
        | "dns-result-order"
        | "unhandled-rejections"
        | "diagnostic-dir"
        | "redirect-warnings"
        | "icu-data-dir"
        | "conditions"
        | "C"
        | "input-type"
        | "experimental-default-type"
        | "heapsnapshot-signal"
        | "heapsnapshot-near-heap-limit"
        | "secure-heap"
        | "secure-heap-min"
        | "tls-cipher-list"
        | "tls-keylog"
        | "tls-min-v1.0"
        | "report-dir"
        | "report-directory"
        | "report-filename"
        | "report-signal"
        | "cpu-prof-dir"
        | "cpu-prof-name"
        | "heap-prof-dir"
        | "heap-prof-name"
        | "max-http-header-size"
        | "zero-fill-buffers-size"
        | "watch-path"
        | "disable-warning"
        | "trace-event-categories"
        | "trace-event-file-pattern"
        | "v8-pool-size"
        | "localstorage-file" => true,
        "no-warnings"
        | "no-deprecation"
        | "trace-warnings"
        | "trace-deprecation"
        | "throw-deprecation"
        | "pending-deprecation"
        | "enable-source-maps"
        | "jitless"
        | "expose-gc"
        | "abort-on-uncaught-exception"
        | "preserve-symlinks"
        | "preserve-symlinks-main"
        | "use-openssl-ca"
        | "use-bundled-ca"
        | "cpu-prof"
        | "heap-prof"
        | "prof"
        | "report-on-signal"
        | "report-uncaught-exception"
        | "report-on-fatalerror"
        | "report-compact"
        | "frozen-intrinsics"
        | "disable-proto"
        | "disallow-code-generation-from-strings"
        | "experimental-permission"
        | "permission"
        | "experimental-detect-module"
        | "experimental-require-module"
        | "experimental-strip-types"
        | "experimental-transform-types"
        | "experimental-vm-modules"
        | "experimental-wasm-modules"
        | "watch"
        | "trace-sigint"
        | "trace-exit"
        | "trace-uncaught"
        | "trace-sync-io"
        | "trace-tls"
        | "trace-atomics-wait"
        | "force-fips"
        | "enable-fips"
        | "insecure-http-parser"
        | "no-global-search-paths"
        | "no-experimental-fetch"
        | "no-experimental-global-webcrypto"
        | "experimental-global-webcrypto"
        | "no-addons"
        | "addons"
        | "check"
        | "c"
        | "allow-fs-read"
        | "allow-fs-write"
        | "allow-child-process"
        | "allow-worker"
        | "allow-addons"
        | "allow-wasi"
        | "experimental-websocket"
        | "no-experimental-websocket"
        | "experimental-eventsource"
        | "node-memory-debug"
        | "huge-max-old-generation-size"
        | "interpreted-frames-native-stack"
        | "experimental-print-required-tla" => false,
        _ => return None,
    })
}

/// Judges node options from the command line (`cli`) or from `NODE_OPTIONS`: `Ok` with
/// where the script is (an index into `args`) when all are safe.
fn node_options(args: &[&str], cli: bool) -> Result<Option<usize>, Runs> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            return Ok(cli.then_some(i + 1));
        }
        if a == "-" {
            return Err(Runs::Inline("code from standard input".into()));
        }
        let Some(stripped) = a.strip_prefix('-') else {
            return Ok(cli.then_some(i));
        };
        let long = stripped.strip_prefix('-');
        let (raw, has_value) = match long {
            Some(l) => l.split_once('=').map_or((l, false), |(n, _)| (n, true)),
            None => (stripped, false),
        };
        let full = raw.replace('_', "-");
        let name = if node_safe(&full).is_some() || node_denied(&full).is_some() {
            full.clone()
        } else {
            full.strip_prefix("no-").unwrap_or(&full).to_string()
        };
        match name.as_str() {
            "e" | "eval" | "p" | "print" => {
                return Err(Runs::Inline(format!("code given with {a}")))
            }
            "i" | "interactive" => return Err(Runs::Interactive),
            "run" | "test" => return Err(Runs::Inline(format!("`node {a}`"))),
            "h" | "help" | "v" | "version" | "V8-options" | "v8-options" => {
                return Err(Runs::Interactive)
            }
            _ => {}
        }
        if let Some(why) = node_denied(&name) {
            return Err(refused(why));
        }
        // V8 options given to node (`--max-lazy`, …) pass through; only those in the
        // list are known to load nothing.
        match node_safe(&name) {
            Some(true) if !has_value => i += 2,
            Some(_) => i += 1,
            None => {
                return Err(refused(format!(
                    "it was given {a}, an option keychain-auth does not know to load no code"
                )))
            }
        }
    }
    Ok(None)
}

pub(super) fn node(args: &[&str], env: &Env) -> Runs {
    let at = match node_options(args, true) {
        Ok(Some(at)) => at,
        Ok(None) => return Runs::Interactive,
        Err(r) => return r,
    };
    let Some(path) = args.get(at) else {
        return Runs::Interactive;
    };
    if let Some(opts) = env.get("NODE_OPTIONS").filter(|v| !v.trim().is_empty()) {
        let tokens: Vec<&str> = opts.split_whitespace().collect();
        if let Err(r) = node_options(&tokens, false) {
            return match r {
                Runs::Refused(why) => refused(format!("NODE_OPTIONS in its environment: {why}")),
                _ => refused("NODE_OPTIONS in its environment names code to run"),
            };
        }
    }
    if let Some(r) = deny_vars(
        env,
        &["NODE_PATH", "NODE_COMPILE_CACHE"],
        "makes node load modules or compiled code from elsewhere",
    ) {
        return r;
    }
    script(path)
}
