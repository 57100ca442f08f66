//! The value kept under a credential's name: the password, and beside it what git asks a
//! helper to keep with it (`password_expiry_utc`, `oauth_refresh_token`).
//!
//! Two forms, told apart by the first byte:
//! - the password alone, exactly as git sent it: what every earlier version of this
//!   helper wrote and what `keychain-auth set` stores. Written whenever there is nothing
//!   else to keep and the password is not empty, so such values stay readable by anyone.
//! - a record: a newline, then `key=value` lines in git's own credential format, each
//!   ending in a newline: `password=` (always), `password_expiry_utc=` and
//!   `oauth_refresh_token=` when git sent them. A password git sends never holds a
//!   newline, so no plain password starts with one. Keys a later version may add are
//!   skipped when read.

use crate::credential::Credential;
use keychain_auth_sdk::Secret;

/// What one credential keeps.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// The password (may be empty: git stores one for some single-sign-on hosts).
    pub password: Secret,
    /// When the password expires, seconds since the epoch.
    pub password_expiry_utc: Option<u64>,
    /// The OAuth refresh token that renews the password.
    pub oauth_refresh_token: Option<Secret>,
}

/// A stored value this helper cannot read, or a field it cannot write. Messages name
/// the problem, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredError(pub String);

impl std::fmt::Display for StoredError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoredError {}

/// Most digits of an expiry git sends (a `u64` has 20).
const MAX_EXPIRY_DIGITS: usize = 20;

/// Reads `password_expiry_utc` as git writes it: decimal seconds since the epoch. Anything
/// else (signs, spaces, exponents, too large) is `None`, which git itself reads as "does
/// not expire".
pub fn parse_expiry(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_EXPIRY_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Stored {
    /// What to keep of a credential git asks to store: its password (required, empty
    /// allowed), its expiry when that is a number (git reads anything else as "never",
    /// so nothing is lost), and its refresh token when not empty.
    pub fn from_git(c: &Credential) -> Result<Stored, StoredError> {
        let password = c
            .password
            .clone()
            .ok_or_else(|| StoredError("git sent no password to store".into()))?;
        Ok(Stored {
            password,
            password_expiry_utc: c.password_expiry_utc.as_deref().and_then(parse_expiry),
            oauth_refresh_token: c.oauth_refresh_token.clone().filter(|t| !t.is_empty()),
        })
    }

    /// The value to store: the password alone when there is nothing beside it, else a
    /// record. Refuses a field git could not have sent (a newline or NUL in it).
    pub fn encode(&self) -> Result<Secret, StoredError> {
        let token = self.oauth_refresh_token.as_ref().filter(|t| !t.is_empty());
        for (what, v) in [
            ("password", Some(&self.password)),
            ("OAuth refresh token", token),
        ] {
            if v.is_some_and(|v| v.expose().contains(['\n', '\0'])) {
                return Err(StoredError(format!(
                    "the {what} contains a newline or NUL, which cannot be stored"
                )));
            }
        }
        let plain =
            self.password_expiry_utc.is_none() && token.is_none() && !self.password.is_empty();
        if plain {
            return Ok(self.password.clone());
        }
        let mut record = format!("\npassword={}\n", self.password.expose());
        if let Some(t) = self.password_expiry_utc {
            record.push_str(&format!("password_expiry_utc={t}\n"));
        }
        if let Some(t) = token {
            record.push_str("oauth_refresh_token=");
            record.push_str(t.expose());
            record.push('\n');
        }
        Ok(Secret::new(record))
    }

    /// Reads a stored value of either form.
    pub fn decode(value: &Secret) -> Result<Stored, StoredError> {
        let Some(body) = value.expose().strip_prefix('\n') else {
            return Ok(Stored {
                password: value.clone(),
                ..Stored::default()
            });
        };
        let damaged = |why: &str| StoredError(format!("the stored value is damaged ({why})"));
        let Some(body) = body.strip_suffix('\n') else {
            return Err(damaged("its last line is not complete"));
        };
        let mut password = None;
        let mut out = Stored::default();
        for (i, line) in body.split('\n').enumerate() {
            let n = i + 2;
            let Some((key, v)) = line.split_once('=') else {
                return Err(damaged(&format!("line {n} is not key=value")));
            };
            let seen = match key {
                "password" => password.replace(Secret::from(v)).is_some(),
                "password_expiry_utc" => out
                    .password_expiry_utc
                    .replace(parse_expiry(v).ok_or_else(|| {
                        damaged(&format!("line {n} holds an expiry that is not a number"))
                    })?)
                    .is_some(),
                "oauth_refresh_token" => out.oauth_refresh_token.replace(Secret::from(v)).is_some(),
                // Kept by a later version of this helper: not ours to answer.
                _ => false,
            };
            if seen {
                return Err(damaged(&format!("line {n} repeats {key}")));
            }
        }
        out.password = password.ok_or_else(|| damaged("it has no password"))?;
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stored(pw: &str, expiry: Option<u64>, token: Option<&str>) -> Stored {
        Stored {
            password: Secret::from(pw),
            password_expiry_utc: expiry,
            oauth_refresh_token: token.map(Secret::from),
        }
    }

    #[test]
    fn a_password_alone_is_stored_as_it_is_and_plain_values_read_back() {
        let s = stored("s3=cr\rt", None, None);
        assert_eq!(s.encode().unwrap().expose(), "s3=cr\rt");
        // Values stored before records existed, or with `keychain-auth set`.
        for plain in ["hunter2", "password=x", "a\nb", " "] {
            let d = Stored::decode(&Secret::from(plain)).unwrap();
            assert_eq!(d.password.expose(), plain);
            assert_eq!(d.password_expiry_utc, None);
            assert_eq!(d.oauth_refresh_token, None);
        }
    }

    #[test]
    fn expiry_refresh_token_and_empty_passwords_round_trip_as_records() {
        for s in [
            stored("pw", Some(9_999_999_999), Some("xyzzy")),
            stored("pw", Some(0), None),
            stored("", None, None),
            stored("", None, Some("t=with=equals")),
            stored("p=w", None, Some(&"r".repeat(40 * 1024))),
        ] {
            let v = s.encode().unwrap();
            assert!(v.expose().starts_with('\n'), "a record");
            assert_eq!(Stored::decode(&v).unwrap(), s);
        }
        assert_eq!(
            stored("pw", Some(1_700_000_000), Some("rt"))
                .encode()
                .unwrap()
                .expose(),
            "\npassword=pw\npassword_expiry_utc=1700000000\noauth_refresh_token=rt\n"
        );
        // An empty refresh token is no token: nothing to keep beside the password.
        assert_eq!(
            stored("pw", None, Some("")).encode().unwrap().expose(),
            "pw"
        );
    }

    #[test]
    fn fields_git_could_not_send_are_refused_without_echoing_them() {
        for s in [
            stored("hunter\n2", None, None),
            stored("hunter\0two", None, Some("t")),
            stored("pw", None, Some("hunter\n2")),
            stored("pw", None, Some("hunter\0two")),
        ] {
            let e = s.encode().unwrap_err().0;
            assert!(e.contains("newline or NUL"), "{e}");
            assert!(!e.contains("hunter"), "{e}");
        }
    }

    #[test]
    fn expiries_are_decimal_seconds_or_nothing() {
        assert_eq!(parse_expiry("9999999999"), Some(9_999_999_999));
        assert_eq!(parse_expiry("0"), Some(0));
        assert_eq!(parse_expiry("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1e9",
            "0x10",
            "12abc",
            "18446744073709551616",
            "000000000000000000001",
            "１２",
        ] {
            assert_eq!(parse_expiry(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn damaged_records_are_errors_that_never_echo_a_value() {
        for (value, want) in [
            ("\npassword=hunter2", "not complete"),
            (
                "\npassword=hunter2\ngarbage-hunter2\n",
                "line 3 is not key=value",
            ),
            ("\n\n", "line 2 is not key=value"),
            ("\noauth_refresh_token=hunter2\n", "no password"),
            ("\npassword=a\npassword=hunter2\n", "repeats password"),
            (
                "\npassword=hunter2\npassword_expiry_utc=soon\n",
                "not a number",
            ),
            (
                "\npassword=p\noauth_refresh_token=a\noauth_refresh_token=hunter2\n",
                "repeats oauth_refresh_token",
            ),
            ("\n", "not complete"),
        ] {
            let e = Stored::decode(&Secret::from(value)).unwrap_err().0;
            assert!(e.contains(want), "{value:?}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn keys_a_later_version_adds_are_skipped() {
        let d = Stored::decode(&Secret::from("\nfuture=1\npassword=pw\nfuture=2\n")).unwrap();
        assert_eq!(d, stored("pw", None, None));
    }

    fn from_git(input: &str) -> Result<Stored, StoredError> {
        Stored::from_git(&Credential::parse(input.as_bytes()).unwrap())
    }

    #[test]
    fn what_git_sends_to_store_is_kept_and_what_it_cannot_mean_is_dropped() {
        let s = from_git(
            "protocol=https\nhost=h\nusername=u\npassword=pw\npassword_expiry_utc=9999999999\n\
             oauth_refresh_token=xyzzy\n",
        )
        .unwrap();
        assert_eq!(s, stored("pw", Some(9_999_999_999), Some("xyzzy")));
        // An expiry that is not a number is dropped, the password kept.
        for expiry in ["tomorrow", "-5", "1e10", "", "99999999999999999999999"] {
            let s = from_git(&format!(
                "protocol=https\nhost=h\nusername=u\npassword=pw\npassword_expiry_utc={expiry}\n"
            ))
            .unwrap();
            assert_eq!(s, stored("pw", None, None), "{expiry:?}");
            assert_eq!(s.encode().unwrap().expose(), "pw");
        }
        // The last value of a key git repeats wins, as in git; an empty token is none.
        let s = from_git("password=a\npassword=\noauth_refresh_token=t\noauth_refresh_token=\n")
            .unwrap();
        assert_eq!(s, stored("", None, None));
        // A line break ends a value: what follows is another attribute, never part of it.
        let s =
            from_git("password=pw\noauth_refresh_token=abc\npassword_expiry_utc=7\r\n").unwrap();
        assert_eq!(s, stored("pw", Some(7), Some("abc")));
        // A huge refresh token is kept whole (the daemon's frame limit bounds it).
        let big = "t".repeat(200 * 1024);
        let s = from_git(&format!("password=pw\noauth_refresh_token={big}\n")).unwrap();
        let v = s.encode().unwrap();
        assert_eq!(
            Stored::decode(&v)
                .unwrap()
                .oauth_refresh_token
                .unwrap()
                .expose(),
            big
        );
        let e = from_git("protocol=https\nhost=h\nusername=u\n").unwrap_err();
        assert!(e.0.contains("no password"), "{e}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = format!("{:?}", stored("hunter2", Some(5), Some("refresh-me")));
        assert!(!s.contains("hunter2") && !s.contains("refresh-me"), "{s}");
    }
}
