//! Scope patterns: globs over secret names. `*` matches any run of characters, `/`
//! included (so `git/*` covers `git/https/example.com/alice`); `?` matches one character;
//! `\` makes the character after it literal (`demo/\*` is the one name `demo/*`); every
//! other character matches itself. There are no classes. A secret name becomes a scope
//! only through [`literal`], so a name is never taken for a pattern. Matching is
//! iterative, linear in practice and never exponential, whatever the pattern.

/// One unit of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A character that must match itself.
    Char(char),
    /// `?`: any one character.
    One,
    /// `*`: any run of characters.
    Any,
}

/// A pattern as tokens. A trailing lone `\` (which [`validate`] refuses) is taken
/// literally.
fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Token::Any,
            '?' => Token::One,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    out
}

/// Whether `name` matches the glob `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p = tokens(pattern);
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Position of the last '*' seen in the pattern, and the name position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(Token::One) => {
                pi += 1;
                ni += 1;
            }
            Some(Token::Char(c)) if *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            Some(Token::Any) => {
                star = Some((pi, ni));
                pi += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    while p.get(pi) == Some(&Token::Any) {
        pi += 1;
    }
    pi == p.len()
}

/// The pattern that matches exactly `name` and nothing else: `*`, `?` and `\` escaped.
/// Every scope made from a secret name (what a tool asked for, a name ticked in the
/// tray) goes through this.
pub fn literal(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `pattern` matches one name only (it has no unescaped `*` or `?`).
pub fn is_literal(pattern: &str) -> bool {
    tokens(pattern).iter().all(|t| matches!(t, Token::Char(_)))
}

/// The one name a literal pattern matches (its escapes undone); `None` for a glob.
pub fn literal_name(pattern: &str) -> Option<String> {
    tokens(pattern)
        .into_iter()
        .map(|t| match t {
            Token::Char(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Whether every name `pattern` matches is matched by one of `scopes`, as far as can be
/// told cheaply: the pattern is one of them, or it names one name they match. A glob
/// that is not among them counts as not covered (it may reach further).
pub fn covered(scopes: &[String], pattern: &str) -> bool {
    scopes.iter().any(|s| s == pattern)
        || literal_name(pattern).is_some_and(|name| any_matches(scopes, &name))
}

/// Whether any of `scopes` matches `name`.
pub fn any_matches(scopes: &[String], name: &str) -> bool {
    scopes.iter().any(|s| matches(s, name))
}

/// Checks a scope pattern: 1 to 1024 bytes, no control characters, no lone `\` at the
/// end.
pub fn validate(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("scope pattern is empty".into());
    }
    if pattern.len() > keychain_auth_sdk::protocol::MAX_NAME_LEN {
        return Err(format!(
            "scope pattern is {} bytes; the limit is 1024",
            pattern.len()
        ));
    }
    if pattern.chars().any(char::is_control) {
        return Err("scope pattern contains a control character".into());
    }
    let escapes = pattern.len() - pattern.trim_end_matches('\\').len();
    if escapes % 2 == 1 {
        return Err(format!(
            "scope pattern {pattern:?} ends with a lone \\ (write \\\\ for a backslash)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_covered_only_when_it_reaches_no_further() {
        let had = vec!["api/*".to_string(), "git/h?st".to_string()];
        assert!(covered(&had, "api/*"));
        assert!(covered(&had, "api/prod"));
        assert!(covered(&had, "git/host"));
        assert!(!covered(&had, "api"));
        assert!(!covered(&had, "ap*"), "a wider glob");
        assert!(
            !covered(&had, "api/p*"),
            "a narrower glob is not worked out: asked for"
        );
        assert!(!covered(&had, "*"));
        // An escaped star names the one name `api/*`, which `api/*` matches.
        assert!(covered(&["api/*".to_string()], "api/\\*"));
        assert!(!covered(&["api/x".to_string()], "api/\\*"));
        assert_eq!(literal_name("a\\*b"), Some("a*b".into()));
        assert_eq!(literal_name("a*"), None);
    }

    #[test]
    fn literal_and_wildcards() {
        assert!(matches("api-token", "api-token"));
        assert!(!matches("api-token", "api-token2"));
        assert!(matches("git/*", "git/https/example.com/alice"));
        assert!(!matches("git/*", "gitx/a"));
        assert!(!matches("git/*", "aws/key"));
        assert!(matches("*", "anything/at/all"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*/token", "x/y/token"));
        assert!(matches("a*b*c", "a--b--c"));
        assert!(!matches("a*b*c", "a--b--"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(matches("héllo*", "héllo wörld"));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let name = "a".repeat(1024);
        let pattern = format!("{}b", "*a".repeat(500));
        let t = std::time::Instant::now();
        assert!(!matches(&pattern, &name));
        // Not a timing assertion: a backtracking matcher would not return at all.
        let _ = t.elapsed();
    }

    #[test]
    fn escapes_make_wildcards_literal() {
        assert!(matches("demo/\\*", "demo/*"));
        assert!(!matches("demo/\\*", "demo/token"));
        assert!(matches("a\\?b", "a?b"));
        assert!(!matches("a\\?b", "axb"));
        assert!(matches("a\\\\b", "a\\b"));
        assert!(matches("x/\\**", "x/*anything"));
        for name in ["demo/*", "a?b", "back\\slash", "plain/name", "*", "\\*?"] {
            let lit = literal(name);
            assert!(matches(&lit, name), "{lit}");
            assert!(is_literal(&lit), "{lit}");
            assert!(validate(&lit).is_ok(), "{lit}");
        }
        assert_eq!(literal("demo/*"), "demo/\\*");
        assert!(!matches(&literal("demo/*"), "demo/other"));
        assert!(!is_literal("git/*") && !is_literal("a?") && is_literal("git/x"));
    }

    #[test]
    fn validation() {
        assert!(validate("a\\").is_err());
        assert!(validate("a\\\\").is_ok());
        assert!(validate("a\\*").is_ok());
        assert!(validate("git/*").is_ok());
        assert!(validate("").is_err());
        assert!(validate("a\nb").is_err());
        assert!(validate(&"x".repeat(2000)).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::{literal, matches};
    use proptest::prelude::*;

    /// The obvious recursive definition, exponential but fine for short inputs.
    fn reference(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some('\\'), _) if p.len() > 1 => {
                n.first() == Some(&p[1]) && reference(&p[2..], &n[1..])
            }
            (Some(_), None) => false,
            (Some('?'), Some(_)) => reference(&p[1..], &n[1..]),
            (Some(c), Some(d)) => c == d && reference(&p[1..], &n[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(p in "[ab/*?é\\\\]{0,8}", n in "[ab/é*?\\\\]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let nc: Vec<char> = n.chars().collect();
            prop_assert_eq!(matches(&p, &n), reference(&pc, &nc), "pattern {:?} name {:?}", p, n);
        }

        #[test]
        fn a_literal_pattern_matches_only_itself(n in "[a-z/]{0,12}", m in "[a-z/]{0,12}") {
            prop_assert_eq!(matches(&n, &m), n == m);
        }

        #[test]
        fn a_name_made_literal_matches_only_that_name(n in "[a/*?\\\\]{0,10}", m in "[a/*?\\\\]{0,10}") {
            prop_assert_eq!(matches(&literal(&n), &m), n == m);
        }
    }
}
