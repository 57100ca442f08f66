//! git's credential helper protocol: `key=value` lines on standard input up to a blank
//! line or the end of input, answered the same way on standard output. Reference: the
//! "INPUT/OUTPUT FORMAT" section of git-credential(1).

use crate::stored::Stored;
use keychain_auth_sdk::Secret;

/// Most bytes of credential input read; git sends a few hundred. Larger than a frame,
/// so that a password too long to store is refused by name, not cut off.
pub const MAX_INPUT: usize = 256 * 1024;

/// One credential description as git sends it. Attributes this helper does not use are
/// accepted and dropped, as git-credential(1) asks of helpers.
#[derive(Debug, Default)]
pub struct Credential {
    /// `https`, `http`, `ssh`, …
    pub protocol: Option<String>,
    /// Host name, with `:port` when not the default.
    pub host: Option<String>,
    /// Repository path; git sends it only with `credential.useHttpPath`.
    pub path: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// Password or token.
    pub password: Option<Secret>,
    /// Expiry of a generated password, seconds since the epoch, as git sent it (stored
    /// beside the password when it is a number: [`crate::stored::parse_expiry`]).
    pub password_expiry_utc: Option<String>,
    /// OAuth refresh token (stored beside the password).
    pub oauth_refresh_token: Option<Secret>,
    /// `WWW-Authenticate` values the server sent, in order.
    pub wwwauth: Vec<String>,
    /// Capabilities git announced.
    pub capability: Vec<String>,
}

/// Credential input that cannot be used. Messages name a line, never echo a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl Credential {
    /// Parses credential input. Reading stops at the first blank line.
    pub fn parse(input: &[u8]) -> Result<Credential, ParseError> {
        if input.len() > MAX_INPUT {
            return Err(ParseError(format!(
                "credential input is {} bytes; at most {MAX_INPUT} are accepted",
                input.len()
            )));
        }
        let text = std::str::from_utf8(input)
            .map_err(|e| ParseError(format!("credential input is not UTF-8 ({e})")))?;
        let mut c = Credential::default();
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                break;
            }
            if line.contains('\0') {
                return Err(ParseError(format!("line {n} contains a NUL byte")));
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ParseError(format!(
                    "line {n} is not key=value (it has no '=')"
                )));
            };
            if key.is_empty() {
                return Err(ParseError(format!("line {n} has an empty key")));
            }
            c.set(key, value)?;
        }
        Ok(c)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), ParseError> {
        let v = || Some(value.to_string());
        match key {
            "protocol" => self.protocol = v(),
            "host" => self.host = v(),
            "path" => self.path = v(),
            "username" => self.username = v(),
            "password" => self.password = Some(Secret::from(value)),
            "password_expiry_utc" => self.password_expiry_utc = v(),
            "oauth_refresh_token" => self.oauth_refresh_token = Some(Secret::from(value)),
            "url" => self.set_url(value)?,
            "wwwauth[]" => push_or_reset(&mut self.wwwauth, value),
            "capability[]" => push_or_reset(&mut self.capability, value),
            // authtype, credential, ephemeral, state[], continue, quit and anything newer:
            // this helper announces no capability, so it has no use for them.
            _ => {}
        }
        Ok(())
    }

    /// `url=` stands for its parts; parts the URL lacks become unset (git-credential(1)).
    fn set_url(&mut self, url: &str) -> Result<(), ParseError> {
        let (protocol, rest) = url
            .split_once("://")
            .ok_or_else(|| ParseError("url has no '://'".into()))?;
        if protocol.is_empty() {
            return Err(ParseError("url has an empty protocol".into()));
        }
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (rest, None),
        };
        let (user, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let user = user.map(|u| u.split_once(':').map_or(u, |(name, _)| name));
        self.protocol = Some(protocol.to_string());
        self.host = Some(host.to_string()).filter(|h| !h.is_empty());
        self.path = path.map(str::to_string).filter(|p| !p.is_empty());
        self.username = user.map(percent_decode).filter(|u| !u.is_empty());
        self.password = None;
        Ok(())
    }

    /// The answer to `get`: the user name, the password and what is stored beside it.
    /// A secret itself, so its copy of the password is wiped when it is dropped.
    pub fn answer(username: &str, stored: &Stored) -> Result<Secret, ParseError> {
        let token = stored.oauth_refresh_token.as_ref().map(Secret::expose);
        for (what, v) in [
            ("user name", Some(username)),
            ("password", Some(stored.password.expose())),
            ("OAuth refresh token", token),
        ] {
            if v.is_some_and(|v| v.contains(['\n', '\0'])) {
                return Err(ParseError(format!(
                    "the stored {what} contains a newline or NUL, which git cannot take"
                )));
            }
        }
        let mut out = format!(
            "username={username}\npassword={}\n",
            stored.password.expose()
        );
        if let Some(t) = stored.password_expiry_utc {
            out.push_str(&format!("password_expiry_utc={t}\n"));
        }
        if let Some(t) = token {
            out.push_str("oauth_refresh_token=");
            out.push_str(t);
            out.push('\n');
        }
        Ok(Secret::new(out))
    }
}

fn push_or_reset(list: &mut Vec<String>, value: &str) {
    if value.is_empty() {
        list.clear();
    } else {
        list.push(value.to_string());
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn everything_git_sends_is_read() {
        let c = Credential::parse(
            b"capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=example.com:8443\n\
              path=team/repo.git\nusername=alice\npassword=s3=cr=t\npassword_expiry_utc=1700000000\n\
              oauth_refresh_token=rt\nwwwauth[]=Basic realm=\"x\"\nwwwauth[]=Bearer\nstate[]=a\n\
              ephemeral=1\nauthtype=Basic\nfuture_attribute=1\n\nprotocol=ignored\n",
        )
        .unwrap();
        assert_eq!(c.protocol.as_deref(), Some("https"));
        assert_eq!(c.host.as_deref(), Some("example.com:8443"));
        assert_eq!(c.path.as_deref(), Some("team/repo.git"));
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_ref().unwrap().expose(), "s3=cr=t");
        assert_eq!(c.password_expiry_utc.as_deref(), Some("1700000000"));
        assert_eq!(c.oauth_refresh_token.as_ref().unwrap().expose(), "rt");
        assert_eq!(c.wwwauth, vec!["Basic realm=\"x\"", "Bearer"]);
        assert_eq!(c.capability, vec!["authtype", "state"]);
    }

    #[test]
    fn an_empty_list_value_resets_the_list_and_crlf_is_accepted() {
        let c = Credential::parse(b"wwwauth[]=a\r\nwwwauth[]=\r\nwwwauth[]=b\r\n").unwrap();
        assert_eq!(c.wwwauth, vec!["b"]);
    }

    #[test]
    fn url_stands_for_its_parts() {
        let c = Credential::parse(b"username=bob\nurl=https://al%40ice:pw@h.example/p/r.git\n")
            .unwrap();
        assert_eq!(c.protocol.as_deref(), Some("https"));
        assert_eq!(c.host.as_deref(), Some("h.example"));
        assert_eq!(c.path.as_deref(), Some("p/r.git"));
        assert_eq!(c.username.as_deref(), Some("al@ice"));
        assert!(c.password.is_none());
        let c = Credential::parse(b"url=https://h.example\n").unwrap();
        assert_eq!(c.username, None);
        assert_eq!(c.path, None);
    }

    #[test]
    fn hostile_input_is_refused_without_echoing_values() {
        for (input, want) in [
            (&b"protocol=https\nhunter2\n"[..], "line 2 is not key=value"),
            (b"=x\n", "line 1 has an empty key"),
            (b"password=a\0b\n", "line 1 contains a NUL byte"),
            (b"password=\xff\xfe\n", "not UTF-8"),
            (b"url=no-scheme\n", "url has no '://'"),
            (b"url=://x\n", "empty protocol"),
        ] {
            let e = Credential::parse(input).unwrap_err();
            assert!(e.0.contains(want), "{input:?}: {e}");
            assert!(!e.0.contains("hunter2"), "{e}");
        }
        let big = vec![b'a'; MAX_INPUT + 1];
        assert!(Credential::parse(&big).unwrap_err().0.contains("at most"));
    }

    #[test]
    fn answers_refuse_values_git_cannot_take() {
        let stored = |pw: &str, expiry, token: Option<&str>| Stored {
            password: Secret::from(pw),
            password_expiry_utc: expiry,
            oauth_refresh_token: token.map(Secret::from),
        };
        let answer = |user, s: &Stored| Credential::answer(user, s).map(|a| a.expose().to_string());
        assert_eq!(
            answer("alice", &stored("pw", None, None)).unwrap(),
            "username=alice\npassword=pw\n"
        );
        assert_eq!(
            answer("", &stored("", None, None)).unwrap(),
            "username=\npassword=\n"
        );
        assert_eq!(
            answer("alice", &stored("pw", Some(9_999_999_999), Some("xyzzy"))).unwrap(),
            "username=alice\npassword=pw\npassword_expiry_utc=9999999999\noauth_refresh_token=xyzzy\n"
        );
        for (user, s) in [
            ("alice", stored("p\nw", None, None)),
            ("a\nb", stored("pw", None, None)),
            ("alice", stored("pw", None, Some("t\nusername=mallory"))),
            ("alice", stored("pw", None, Some("t\0"))),
        ] {
            let e = answer(user, &s).unwrap_err().0;
            assert!(e.contains("newline or NUL"), "{e}");
            assert!(!e.contains("mallory"), "{e}");
        }
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%40b%2F%zz%4"), "a@b/%zz%4");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }
}
