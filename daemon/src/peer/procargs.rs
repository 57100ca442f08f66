//! The macOS `KERN_PROCARGS2` buffer taken apart: `argc`, the exec path, NUL padding,
//! `argc` arguments, then the environment as `NAME=value` strings. Pure parsing, so it is
//! compiled and tested on every platform (and fuzzed) although only macOS reads it.

/// The arguments and the NUL-separated environment of a `KERN_PROCARGS2` buffer. A
/// malformed or truncated buffer gives what could be read, never a panic.
pub fn parse(buf: &[u8]) -> (Vec<String>, Vec<u8>) {
    let Some(argc) = buf
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return (Vec::new(), Vec::new());
    };
    let mut rest = &buf[4..];
    // The exec path, then NUL padding.
    let path_end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    rest = &rest[path_end..];
    let start = rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
    rest = &rest[start..];
    let mut argv = Vec::new();
    for _ in 0..argc.max(0) {
        if rest.is_empty() {
            break;
        }
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        argv.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = rest.get(end + 1..).unwrap_or(&[]);
    }
    (argv, rest.to_vec())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn arguments_and_environment_are_split() {
        let mut buf = 2i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(
            b"/usr/bin/python3\0\0\0\0python3\0/tmp/s.py\0HOME=/h\0DYLD_INSERT_LIBRARIES=x\0",
        );
        let (argv, env) = parse(&buf);
        assert_eq!(argv, vec!["python3", "/tmp/s.py"]);
        assert_eq!(env, b"HOME=/h\0DYLD_INSERT_LIBRARIES=x\0".to_vec());
        assert!(crate::peer::injected_env(&env).is_some());
    }

    #[test]
    fn malformed_buffers_give_what_could_be_read() {
        assert_eq!(parse(b""), (Vec::new(), Vec::new()));
        assert_eq!(parse(b"\x05\0\0\0"), (Vec::new(), Vec::new()));
        // argc far larger than the arguments present: stops at the end.
        let mut buf = i32::MAX.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/x\0a\0b");
        assert_eq!(parse(&buf).0, vec!["a", "b"]);
        // A negative argc reads no argument.
        let mut buf = (-1i32).to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/x\0a\0");
        assert!(parse(&buf).0.is_empty());
    }
}
