//! config.json: settings and the approved tools, and pending.json: the unknown binaries.
//! Loading validates everything (versions, hashes, scopes, unknown fields); a file that
//! fails is reported by path and never overwritten. Saving is atomic and durable.
//! The decisions made from these files live in [`crate::policy`].

use crate::atomic::write_atomic;
use keychain_auth_sdk::protocol::{validate_hash, PendingEntry, Tool};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the config.json and pending.json formats.
pub const FILE_VERSION: u32 = 1;

/// Default namespace: the Secret Service `service` attribute and keyutils prefix.
pub const DEFAULT_NAMESPACE: &str = "keychain-auth";

/// Default bound on pending.json entries.
pub const DEFAULT_PENDING_LIMIT: usize = 256;

/// Most scopes one tool may have.
pub const MAX_SCOPES: usize = 64;

/// Most bytes all of one tool's scopes may take together.
pub const MAX_SCOPE_BYTES: usize = 16 * 1024;

/// Which secret store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreChoice {
    /// Secret Service when the session bus has one, else keyutils.
    #[default]
    Auto,
    /// Secret Service over D-Bus (Linux).
    SecretService,
    /// Kernel keyutils (Linux; lost at reboot).
    Keyutils,
    /// Apple Keychain Services (macOS).
    Keychain,
}

impl std::str::FromStr for StoreChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            format!("unknown store {s:?}: use auto, secret-service, keyutils or keychain")
        })
    }
}

/// A recorded deny rule (a wire type: a file's unknown fields are refused by
/// [`parse_strict`] all the same).
pub use keychain_auth_sdk::protocol::DenyRule;

/// Most names `protected` may hold.
pub const MAX_PROTECTED: usize = 1024;

/// The contents of config.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// File format version; must be 1.
    pub version: u32,
    /// Namespace of secrets in the store.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Store selection.
    #[serde(default)]
    pub store: StoreChoice,
    /// Most entries pending.json keeps (oldest evicted).
    #[serde(default = "default_pending_limit")]
    pub pending_limit: usize,
    /// Approved tools.
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// Deny rules.
    #[serde(default)]
    pub denied: Vec<DenyRule>,
    /// How long a value read from the store may be served again from memory, in
    /// milliseconds; 0 (the default) reads the store every time. Read at start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_cache_ms: u64,
    /// Size in bytes at which audit.log is rotated (read at start).
    #[serde(
        default = "default_audit_max_bytes",
        skip_serializing_if = "is_default_audit_max_bytes"
    )]
    pub audit_max_bytes: u64,
    /// Rotated audit files kept; older ones are removed, and the chain records it.
    #[serde(
        default = "default_audit_keep",
        skip_serializing_if = "is_default_audit_keep"
    )]
    pub audit_keep: usize,
    /// Proof of presence for widening decisions (`required` or `off`); absent: required
    /// wherever the OS offers a mechanism (see [`crate::presence`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<crate::presence::Setting>,
    /// How long a proof of presence may wait for the person, in seconds (5 to 600;
    /// absent: [`crate::presence::DEFAULT_TIMEOUT_S`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_timeout_s: Option<u64>,
    /// Secret names marked `confirm: always` (`keychain-auth protect NAME`): each read,
    /// by any approved program, needs a fresh proof of presence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn default_audit_max_bytes() -> u64 {
    crate::audit::DEFAULT_MAX_BYTES
}

fn is_default_audit_max_bytes(n: &u64) -> bool {
    *n == crate::audit::DEFAULT_MAX_BYTES
}

fn default_audit_keep() -> usize {
    crate::audit::DEFAULT_KEEP
}

fn is_default_audit_keep(n: &usize) -> bool {
    *n == crate::audit::DEFAULT_KEEP
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.into()
}

fn default_pending_limit() -> usize {
    DEFAULT_PENDING_LIMIT
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: FILE_VERSION,
            namespace: default_namespace(),
            store: StoreChoice::Auto,
            pending_limit: DEFAULT_PENDING_LIMIT,
            tools: Vec::new(),
            denied: Vec::new(),
            value_cache_ms: 0,
            audit_max_bytes: crate::audit::DEFAULT_MAX_BYTES,
            audit_keep: crate::audit::DEFAULT_KEEP,
            presence: None,
            presence_timeout_s: None,
            protected: Vec::new(),
        }
    }
}

/// The contents of pending.json.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingFile {
    /// File format version; must be 1.
    pub version: u32,
    /// Entries, oldest first.
    pub pending: Vec<PendingEntry>,
}

/// A file the daemon reads could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The contents are invalid. The file is left as it is.
    #[error("{path} is damaged and was left untouched: {reason}. Fix or move the file aside, then start keychain-auth again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Reads and parses a file; `None` when it does not exist. A parse failure is reported
/// as [`FileError::Corrupt`] naming the file, which is not touched.
fn load_with<T>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<Option<T>, FileError> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(None);
    };
    parse(&bytes)
        .map(Some)
        .map_err(|reason| FileError::Corrupt {
            path: path.to_path_buf(),
            reason,
        })
}

/// Writes a value as pretty JSON, atomically (and durably when asked).
fn save_json<T: Serialize>(value: &T, path: &Path, durable: bool) -> Result<(), FileError> {
    let write_err = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| write_err(std::io::Error::other(e)))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, durable).map_err(write_err)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses a file's JSON strictly: every field, at every depth, must be one this version
/// knows. The wire types nested in the files (tools, pending entries) accept fields they
/// do not know, so that a client reads a newer daemon's replies; a file, whose unknown
/// fields would be lost on the next save, is refused instead.
fn parse_strict<T: serde::de::DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, String> {
    let parsed: T = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let read: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let kept = serde_json::to_value(&parsed).map_err(|e| e.to_string())?;
    match unknown_field(&read, &kept, "") {
        Some(why) => Err(why),
        None => Ok(parsed),
    }
}

/// The first key of `read` (a file's JSON) that `kept` (what was parsed from it, written
/// back) lacks, said for a person. A key left out only because it holds the value a
/// field is not written with (`false`, `0`, `""`, `[]`, `{}`, `null`) is known.
fn unknown_field(read: &serde_json::Value, kept: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (read, kept) {
        (Value::Object(r), Value::Object(k)) => r.iter().find_map(|(key, v)| {
            let here = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match k.get(key) {
                Some(kv) => unknown_field(v, kv, &here),
                None if is_unwritten(v) => None,
                None if at.is_empty() => Some(format!("unknown field `{key}`")),
                None => Some(format!("unknown field `{key}` in {at}")),
            }
        }),
        (Value::Array(r), Value::Array(k)) => r
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (v, kv))| unknown_field(v, kv, &format!("{at}[{i}]"))),
        _ => None,
    }
}

fn is_unwritten(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

impl Config {
    /// Parses and validates config.json contents.
    pub fn parse(bytes: &[u8]) -> Result<Config, String> {
        let cfg: Config = parse_strict(bytes)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field that JSON parsing alone does not.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != FILE_VERSION {
            return Err(format!(
                "version {} is not supported (this keychain-auth reads version {FILE_VERSION})",
                self.version
            ));
        }
        if self.namespace.is_empty()
            || self.namespace.len() > 128
            || self.namespace.chars().any(|c| c.is_control() || c == ':')
        {
            return Err(format!("namespace {:?} is not valid", self.namespace));
        }
        if self.pending_limit == 0 || self.pending_limit > 100_000 {
            return Err(format!(
                "pending_limit {} must be between 1 and 100000",
                self.pending_limit
            ));
        }
        if self.value_cache_ms > crate::store::cache::MAX_TTL.as_millis() as u64 {
            return Err(format!(
                "value_cache_ms {} must be at most {}",
                self.value_cache_ms,
                crate::store::cache::MAX_TTL.as_millis()
            ));
        }
        if !(4096..=1 << 30).contains(&self.audit_max_bytes) {
            return Err(format!(
                "audit_max_bytes {} must be between 4096 and 1073741824",
                self.audit_max_bytes
            ));
        }
        if !(1..=crate::audit::MAX_ROTATED).contains(&self.audit_keep) {
            return Err(format!(
                "audit_keep {} must be between 1 and {}",
                self.audit_keep,
                crate::audit::MAX_ROTATED
            ));
        }
        if self.protected.len() > MAX_PROTECTED {
            return Err(format!("at most {MAX_PROTECTED} protected names"));
        }
        for (i, n) in self.protected.iter().enumerate() {
            keychain_auth_sdk::protocol::validate_name(n)
                .map_err(|e| format!("protected[{i}]: {e}"))?;
        }
        if let Some(t) = self.presence_timeout_s {
            if !(5..=600).contains(&t) {
                return Err(format!("presence_timeout_s {t} must be between 5 and 600"));
            }
        }
        for (i, t) in self.tools.iter().enumerate() {
            validate_hash(&t.hash).map_err(|e| format!("tools[{i}]: {e}"))?;
            if let Some(at) = &t.expires_at {
                // Compared as strings with the clock's time: it must be written as the
                // clock writes it (RFC 3339 UTC, whole seconds).
                let canonical = humantime::parse_rfc3339(at)
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string());
                if canonical.as_deref() != Ok(at.as_str()) {
                    return Err(format!(
                        "tools[{i}]: expires_at {at:?} is not a time like 2026-12-01T10:00:00Z"
                    ));
                }
            }
            // Bounded so that any one tool fits in a protocol frame with room to spare.
            let scope_bytes: usize = t.scopes.iter().map(String::len).sum();
            if t.scopes.len() > MAX_SCOPES || scope_bytes > MAX_SCOPE_BYTES {
                return Err(format!(
                    "tools[{i}]: at most {MAX_SCOPES} scopes of {MAX_SCOPE_BYTES} bytes in all"
                ));
            }
            if t.label.len() > 256 || t.path.len() > 4096 {
                return Err(format!("tools[{i}]: label or path is too long"));
            }
            for s in &t.scopes {
                crate::scope::validate(s).map_err(|e| format!("tools[{i}]: {e}"))?;
            }
            if self.tools[..i].iter().any(|o| o.hash == t.hash) {
                return Err(format!("tools[{i}]: hash {} is listed twice", t.hash));
            }
        }
        for (i, d) in self.denied.iter().enumerate() {
            validate_hash(&d.hash).map_err(|e| format!("denied[{i}]: {e}"))?;
        }
        Ok(())
    }

    /// Loads config.json; `None` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Config>, FileError> {
        load_with(path, Config::parse)
    }

    /// Saves config.json atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        save_json(self, path, true)
    }

    /// The approved tool with this hash.
    pub fn tool(&self, hash: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.hash == hash)
    }

    /// The deny rule of this hash.
    pub fn deny_rule(&self, hash: &str) -> Option<&DenyRule> {
        self.denied.iter().find(|d| d.hash == hash)
    }

    /// Whether this hash has a deny rule.
    pub fn is_denied(&self, hash: &str) -> bool {
        self.denied.iter().any(|d| d.hash == hash)
    }

    /// Whether every read of `name` needs proof of presence.
    pub fn is_protected(&self, name: &str) -> bool {
        self.protected.iter().any(|n| n == name)
    }
}

impl PendingFile {
    /// Parses and validates pending.json contents.
    pub fn parse(bytes: &[u8]) -> Result<PendingFile, String> {
        let f: PendingFile = parse_strict(bytes)?;
        if f.version != FILE_VERSION {
            return Err(format!("version {} is not supported", f.version));
        }
        for (i, p) in f.pending.iter().enumerate() {
            validate_hash(&p.hash).map_err(|e| format!("pending[{i}]: {e}"))?;
        }
        Ok(f)
    }

    /// Loads pending.json; empty when it does not exist.
    pub fn load(path: &Path) -> Result<PendingFile, FileError> {
        Ok(load_with(path, PendingFile::parse)?.unwrap_or(PendingFile {
            version: FILE_VERSION,
            pending: Vec::new(),
        }))
    }

    /// Saves pending.json atomically (not fsynced: it holds nothing a client was promised).
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        save_json(self, path, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(br#"{"version":1}"#).expect("parses");
        assert_eq!(c, Config::default());
        assert_eq!(c.value_cache_ms, 0, "no value cache unless asked for");
        let c = Config::parse(br#"{"version":1,"value_cache_ms":60000}"#).expect("parses");
        assert_eq!(c.value_cache_ms, 60_000);
    }

    #[test]
    fn hostile_configs_are_refused() {
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"[]",
            br#"{"version":2}"#,
            br#"{"version":1,"tols":[]}"#,
            br#"{"version":1,"store":"cloud"}"#,
            br#"{"version":1,"namespace":""}"#,
            br#"{"version":1,"pending_limit":0}"#,
            br#"{"version":1,"value_cache_ms":60001}"#,
            br#"{"version":1,"value_cache_ms":-1}"#,
            br#"{"version":1,"value_cache_ms":"1000"}"#,
            br#"{"version":1,"tools":[{"hash":"md5:x"}]}"#,
            b"\xff\xfe",
        ] {
            assert!(
                Config::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let h = format!("sha256:{}", "a".repeat(64));
        let tool = format!(
            r#"{{"hash":"{h}","label":"t","path":"/t","scopes":["a\u0000"],"access":"read","approved_at":"x","approved_via":"cli"}}"#
        );
        assert!(Config::parse(format!(r#"{{"version":1,"tools":[{tool}]}}"#).as_bytes()).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("\"s{i}\"")).collect();
        let too_many = tool.replace(r#"["a\u0000"]"#, &format!("[{}]", many.join(",")));
        assert!(
            Config::parse(format!(r#"{{"version":1,"tools":[{too_many}]}}"#).as_bytes()).is_err(),
            "65 scopes are refused"
        );
        let tool = tool.replace(r"a\u0000", "a/*");
        assert!(Config::parse(format!(r#"{{"version":1,"tools":[{tool}]}}"#).as_bytes()).is_ok());
        for bad in [
            "tomorrow",
            "2026-12-01T10:00:00.5Z",
            "2026-12-01 10:00:00Z",
            "",
            "2026-13-01T10:00:00Z",
        ] {
            let timed = tool.replace(
                r#""approved_via":"cli""#,
                &format!(r#""approved_via":"cli","expires_at":"{bad}""#),
            );
            assert!(
                Config::parse(format!(r#"{{"version":1,"tools":[{timed}]}}"#).as_bytes()).is_err(),
                "expires_at {bad:?}"
            );
        }
        let timed = tool.replace(
            r#""approved_via":"cli""#,
            r#""approved_via":"cli","expires_at":"2026-12-01T10:00:00Z","until_logout":true"#,
        );
        assert!(Config::parse(format!(r#"{{"version":1,"tools":[{timed}]}}"#).as_bytes()).is_ok());
        for bad in [
            r#""presence":"maybe""#,
            r#""presence":true"#,
            r#""presence_timeout_s":4"#,
            r#""presence_timeout_s":601"#,
        ] {
            let c = format!("{{\"version\":1,{bad}}}");
            assert!(Config::parse(c.as_bytes()).is_err(), "{c}");
        }
        assert!(
            Config::parse(format!(r#"{{"version":1,"tools":[{tool},{tool}]}}"#).as_bytes())
                .is_err()
        );
    }

    #[test]
    fn a_field_unknown_at_any_depth_of_a_file_is_refused_and_named() {
        let h = format!("sha256:{}", "a".repeat(64));
        let tool = format!(
            r#"{{"hash":"{h}","label":"t","path":"/t","scopes":["a/*"],"access":"read","approved_at":"x","approved_via":"cli","libraries":[{{"path":"/l","hash":"{h}"}}]}}"#
        );
        let ok = format!(r#"{{"version":1,"tools":[{tool}]}}"#);
        assert!(Config::parse(ok.as_bytes()).is_ok());
        // Fields left out of the file when they hold their default are known ones.
        let defaults = tool.replace(
            r#""approved_via":"cli""#,
            r#""approved_via":"cli","unbound_get":false,"expires_at":null"#,
        );
        assert!(
            Config::parse(format!(r#"{{"version":1,"tools":[{defaults}]}}"#).as_bytes()).is_ok()
        );
        for (bad, named) in [
            (
                tool.replace(r#""label":"t""#, r#""label":"t","colour":"red""#),
                "unknown field `colour` in tools[0]",
            ),
            (
                tool.replace(r#""path":"/l""#, r#""path":"/l","size":3"#),
                "unknown field `size` in tools[0].libraries[0]",
            ),
        ] {
            let e = Config::parse(format!(r#"{{"version":1,"tools":[{bad}]}}"#).as_bytes())
                .expect_err("refused");
            assert_eq!(e, named);
        }
        let pending = format!(
            r#"{{"version":1,"pending":[{{"hash":"{h}","path":"/p","first_seen":"x","last_seen":"x","attempts":1,"names":[],"interpreter":false,"new":1}}]}}"#
        );
        let e = PendingFile::parse(pending.as_bytes()).expect_err("refused");
        assert_eq!(e, "unknown field `new` in pending[0]");
        // The same tool in a daemon's reply (the wire) parses: a newer daemon's field
        // does not break an older client.
        let wire: Tool =
            serde_json::from_str(&tool.replace(r#""label":"t""#, r#""label":"t","colour":"red""#))
                .expect("the wire accepts fields it does not know");
        assert_eq!(wire.label, "t");
    }

    #[test]
    fn corrupt_file_is_named_and_untouched() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("config.json");
        std::fs::write(&p, b"{ broken").expect("write");
        let e = Config::load(&p).expect_err("corrupt");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert_eq!(std::fs::read(&p).expect("read"), b"{ broken");
        assert!(Config::load(&t.path().join("absent"))
            .expect("ok")
            .is_none());
    }

    #[test]
    fn pending_file_round_trip_and_corruption() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("pending.json");
        let f = PendingFile::load(&p).expect("empty");
        assert!(f.pending.is_empty());
        f.save(&p).expect("save");
        assert_eq!(PendingFile::load(&p).expect("load"), f);
        std::fs::write(&p, br#"{"version":1,"pending":[{"hash":"x"}]}"#).expect("write");
        assert!(PendingFile::load(&p).is_err());
    }
}
