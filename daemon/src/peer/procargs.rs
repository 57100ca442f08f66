//! The macOS `KERN_PROCARGS2` buffer taken apart, exactly as XNU lays it out: `argc` (a
//! 32-bit int), the exec path and its NUL, NUL padding up to the next multiple of the
//! pointer size counted from the start of the path (`exec_extract_strings` rounds
//! `strlen(path) + 1` up to 8 for a 64-bit process, the only kind macOS 11+ runs), then
//! `argc` NUL-terminated arguments and after them the environment (and the kernel's
//! `apple[]` strings) as NUL-terminated `NAME=value` strings.
//!
//! Only that padding is skipped. A NUL right after it is an empty `argv[0]`, which the
//! layout cannot tell from longer padding: a parser that skips every NUL reads the
//! arguments one string too far (`["", "evil.py", "approved.py"]` becomes
//! `["evil.py", "approved.py", <first variable>]`, and that variable leaves the
//! environment check). Such a buffer is refused as ambiguous, as is anything else that
//! does not have exactly this shape: the caller then has no arguments or environment to
//! judge, and refuses the peer. Pure parsing, so it is compiled and tested on every
//! platform (and fuzzed against a reference parser) although only macOS reads it.

use std::fmt;

/// The pointer size of every process macOS 11 and later runs.
const POINTER: usize = 8;

/// A parsed buffer: the arguments, and the environment as NUL-terminated strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procargs {
    /// `argv`, lossily decoded as on Linux.
    pub argv: Vec<String>,
    /// Everything after the arguments: `NAME=value\0` strings.
    pub env: Vec<u8>,
}

/// Why a buffer gives no arguments and environment that can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Shorter than the 4-byte `argc`.
    NoArgc,
    /// `argc` is below 1: no `argv[0]` (the kernel itself refuses that since macOS 11).
    NoArguments(i32),
    /// The exec path has no terminating NUL.
    PathUnterminated,
    /// A byte of the padding after the exec path is not NUL.
    PaddingNotNul,
    /// A NUL right after the padding: an empty `argv[0]`, or padding longer than the
    /// kernel writes. Either way the arguments cannot be placed.
    Ambiguous,
    /// Fewer NUL-terminated arguments than `argc` says.
    Truncated {
        /// What `argc` said.
        argc: i32,
        /// How many terminated arguments there were.
        found: usize,
    },
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::NoArgc => write!(f, "the argument buffer has no argument count"),
            Unreadable::NoArguments(n) => write!(f, "the argument count is {n}"),
            Unreadable::PathUnterminated => write!(f, "the exec path is not terminated"),
            Unreadable::PaddingNotNul => {
                write!(f, "the padding after the exec path is not all NUL")
            }
            Unreadable::Ambiguous => write!(
                f,
                "its argv[0] is empty, so its arguments cannot be told apart from padding"
            ),
            Unreadable::Truncated { argc, found } => write!(
                f,
                "the argument count is {argc} but only {found} arguments are there"
            ),
        }
    }
}

/// Where the arguments start: 4 bytes of `argc`, then the exec path with its NUL
/// rounded up to [`POINTER`].
fn arguments_start(path_len: usize) -> usize {
    4 + (path_len + 1).div_ceil(POINTER) * POINTER
}

/// Takes a `KERN_PROCARGS2` buffer apart; see the module comment for the layout and
/// what is refused. Never panics.
pub fn parse(buf: &[u8]) -> Result<Procargs, Unreadable> {
    let argc = buf
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(Unreadable::NoArgc)?;
    if argc < 1 {
        return Err(Unreadable::NoArguments(argc));
    }
    let path_len = buf[4..]
        .iter()
        .position(|&b| b == 0)
        .ok_or(Unreadable::PathUnterminated)?;
    let start = arguments_start(path_len);
    let padding = buf.get(4 + path_len..start).unwrap_or(&buf[4 + path_len..]);
    if padding.iter().any(|&b| b != 0) {
        return Err(Unreadable::PaddingNotNul);
    }
    let mut rest = buf.get(start..).unwrap_or(&[]);
    if rest.first() == Some(&0) {
        return Err(Unreadable::Ambiguous);
    }
    let mut argv = Vec::new();
    while argv.len() < argc as usize {
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(Unreadable::Truncated {
                argc,
                found: argv.len(),
            });
        };
        argv.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = &rest[end + 1..];
    }
    Ok(Procargs {
        argv,
        env: rest.to_vec(),
    })
}

/// The buffer the kernel gives for a process with this exec path, argv and environment
/// (each string without NULs): what the tests and the fuzz target check [`parse`]
/// against.
pub fn layout(path: &[u8], argv: &[&[u8]], env: &[&[u8]]) -> Vec<u8> {
    let mut buf = (argv.len() as i32).to_ne_bytes().to_vec();
    buf.extend_from_slice(path);
    buf.resize(arguments_start(path.len()), 0);
    for s in argv.iter().chain(env) {
        buf.extend_from_slice(s);
        buf.push(0);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::{layout, parse, Procargs, Unreadable};

    fn argc(n: i32, rest: &[u8]) -> Vec<u8> {
        let mut buf = n.to_ne_bytes().to_vec();
        buf.extend_from_slice(rest);
        buf
    }

    #[test]
    fn arguments_and_environment_are_split_at_the_kernels_padding() {
        // "/usr/bin/python3" is 16 bytes: its NUL and 7 of padding end at 24.
        let buf = argc(
            2,
            b"/usr/bin/python3\0\0\0\0\0\0\0\0python3\0/tmp/s.py\0HOME=/h\0DYLD_INSERT_LIBRARIES=x\0",
        );
        let Procargs { argv, env } = parse(&buf).expect("parses");
        assert_eq!(argv, vec!["python3", "/tmp/s.py"]);
        assert_eq!(env, b"HOME=/h\0DYLD_INSERT_LIBRARIES=x\0".to_vec());
        assert!(crate::peer::injected_env(&env).is_some());
        // A path whose NUL lands on the boundary has no padding at all.
        let buf = argc(1, b"/bin/ls\0ls\0A=1\0");
        assert_eq!(
            parse(&buf),
            Ok(Procargs {
                argv: vec!["ls".into()],
                env: b"A=1\0".to_vec()
            })
        );
    }

    #[test]
    fn an_empty_argv0_is_ambiguous_not_shifted() {
        // The attack: Python runs evil.py while a skip-every-NUL parser would name
        // approved.py and lose DYLD_INSERT_LIBRARIES from the environment.
        let buf = layout(
            b"/usr/bin/python3",
            &[b"", b"evil.py", b"/Users/me/approved.py"],
            &[b"DYLD_INSERT_LIBRARIES=/tmp/x.dylib", b"HOME=/Users/me"],
        );
        assert_eq!(parse(&buf), Err(Unreadable::Ambiguous));
        // The same with a path that needs no padding.
        let buf = layout(b"/bin/ls", &[b"", b"x"], &[b"A=1"]);
        assert_eq!(parse(&buf), Err(Unreadable::Ambiguous));
        // Padding longer than the kernel writes is refused the same way.
        let buf = argc(1, b"/bin/ls\0\0\0\0\0\0\0\0\0ls\0");
        assert_eq!(parse(&buf), Err(Unreadable::Ambiguous));
    }

    #[test]
    fn empty_arguments_after_the_first_are_kept_in_place() {
        let buf = layout(b"/usr/bin/env", &[b"env", b"", b"x"], &[b"A=1", b""]);
        let p = parse(&buf).expect("parses");
        assert_eq!(p.argv, vec!["env", "", "x"]);
        assert_eq!(p.env, b"A=1\0\0".to_vec());
    }

    #[test]
    fn every_layout_parses_back_to_what_it_was_made_of() {
        for path in [
            &b"/a"[..],
            b"/1234567",
            b"/12345678",
            b"/usr/local/bin/tool",
        ] {
            for argv in [&[&b"a"[..]][..], &[b"a", b"b"], &[b"x", b"", b"/s.py"]] {
                let buf = layout(path, argv, &[b"K=v", b"PATH=/bin"]);
                let p = parse(&buf).expect("parses");
                let want: Vec<String> = argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                assert_eq!(p.argv, want, "{path:?}");
                assert_eq!(p.env, b"K=v\0PATH=/bin\0".to_vec());
            }
        }
    }

    #[test]
    fn malformed_buffers_are_refused_with_the_reason() {
        assert_eq!(parse(b""), Err(Unreadable::NoArgc));
        assert_eq!(parse(b"\x01\0"), Err(Unreadable::NoArgc));
        assert_eq!(parse(&argc(0, b"/x\0")), Err(Unreadable::NoArguments(0)));
        assert_eq!(
            parse(&argc(-1, b"/x\0a\0")),
            Err(Unreadable::NoArguments(-1))
        );
        assert_eq!(parse(&argc(1, b"/x")), Err(Unreadable::PathUnterminated));
        // A non-NUL byte where the kernel pads.
        assert_eq!(
            parse(&argc(1, b"/x\0\0ab\0\0\0")),
            Err(Unreadable::PaddingNotNul)
        );
        // argc far larger than the arguments present.
        assert_eq!(
            parse(&argc(i32::MAX, b"/x\0\0\0\0\0\0a\0b")),
            Err(Unreadable::Truncated {
                argc: i32::MAX,
                found: 1
            })
        );
        // Cut off inside the padding, or right after it.
        assert_eq!(
            parse(&argc(1, b"/x\0\0")),
            Err(Unreadable::Truncated { argc: 1, found: 0 })
        );
        assert_eq!(
            parse(&argc(1, b"/x\0\0\0\0\0\0")),
            Err(Unreadable::Truncated { argc: 1, found: 0 })
        );
        for e in [Unreadable::Ambiguous, Unreadable::PaddingNotNul] {
            assert!(!e.to_string().is_empty());
        }
    }
}
