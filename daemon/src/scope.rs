//! Scope patterns: globs over secret names. `*` matches any run of characters, `/`
//! included (so `git/*` covers `git/https/example.com/alice`); `?` matches one character;
//! every other character matches itself. There are no classes or escapes. Matching is
//! iterative, linear in practice and never exponential, whatever the pattern.

/// Whether `name` matches the glob `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Position of the last '*' seen in the pattern, and the name position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == n[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether any of `scopes` matches `name`.
pub fn any_matches(scopes: &[String], name: &str) -> bool {
    scopes.iter().any(|s| matches(s, name))
}

/// Checks a scope pattern: 1 to 1024 bytes, no control characters.
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn validation() {
        assert!(validate("git/*").is_ok());
        assert!(validate("").is_err());
        assert!(validate("a\nb").is_err());
        assert!(validate(&"x".repeat(2000)).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::matches;
    use proptest::prelude::*;

    /// The obvious recursive definition, exponential but fine for short inputs.
    fn reference(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some(_), None) => false,
            (Some('?'), Some(_)) => reference(&p[1..], &n[1..]),
            (Some(c), Some(d)) => c == d && reference(&p[1..], &n[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(p in "[ab/*?é]{0,8}", n in "[ab/é]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let nc: Vec<char> = n.chars().collect();
            prop_assert_eq!(matches(&p, &n), reference(&pc, &nc), "pattern {:?} name {:?}", p, n);
        }

        #[test]
        fn a_literal_pattern_matches_only_itself(n in "[a-z/]{0,12}", m in "[a-z/]{0,12}") {
            prop_assert_eq!(matches(&n, &m), n == m);
        }
    }
}
