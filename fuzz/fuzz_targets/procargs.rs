//! Fuzz target: the macOS `KERN_PROCARGS2` parser against a reference parser written
//! here another way (split into strings first, then placed by offset), on arbitrary
//! bytes; and, on buffers laid out here the way XNU writes them from fuzzed strings,
//! that the arguments and environment come back exactly, or the buffer is refused as
//! ambiguous when argv[0] is empty. Must never panic.
#![no_main]

use keychain_auth::peer::procargs::{parse, Unreadable};
use libfuzzer_sys::fuzz_target;

/// The same layout rules as the daemon's parser, reached another way: every
/// NUL-separated string of the body with its offset, then the path, the padding
/// boundary, `argc` strings from it and the rest as the environment.
fn reference(data: &[u8]) -> Option<(Vec<String>, Vec<u8>)> {
    let argc = i32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
    if argc < 1 {
        return None;
    }
    let body = &data[4..];
    let mut strings = Vec::new();
    let mut at = 0;
    for piece in body.split(|&b| b == 0) {
        let terminated = at + piece.len() < body.len();
        strings.push((at, piece, terminated));
        at += piece.len() + 1;
    }
    let &(_, path, terminated) = strings.first()?;
    if !terminated {
        return None;
    }
    let boundary = (path.len() + 1).div_ceil(8) * 8;
    let mut args = Vec::new();
    let mut env_from = None;
    for &(offset, piece, terminated) in &strings[1..] {
        if offset < boundary {
            // Inside the padding: only NULs (empty strings) may be there.
            if !piece.is_empty() {
                return None;
            }
            continue;
        }
        if args.len() == argc as usize {
            env_from = Some(offset);
            break;
        }
        if !terminated {
            return None;
        }
        if args.is_empty() && (offset != boundary || piece.is_empty()) {
            // argv[0] must start right at the boundary and not be empty.
            return None;
        }
        args.push(String::from_utf8_lossy(piece).into_owned());
    }
    if args.len() < argc as usize {
        return None;
    }
    let env = env_from.map_or(Vec::new(), |o| body[o..].to_vec());
    Some((args, env))
}

/// What XNU writes for these strings (NULs removed from them).
fn kernel_layout(path: &[u8], argv: &[Vec<u8>], env: &[Vec<u8>]) -> Vec<u8> {
    let clean = |s: &[u8]| s.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>();
    let path = clean(path);
    let mut buf = (argv.len() as i32).to_ne_bytes().to_vec();
    buf.extend_from_slice(&path);
    buf.push(0);
    while !(buf.len() - 4).is_multiple_of(8) {
        buf.push(0);
    }
    for s in argv.iter().chain(env) {
        buf.extend_from_slice(&clean(s));
        buf.push(0);
    }
    buf
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        parse(data).ok().map(|p| (p.argv, p.env)),
        reference(data),
        "the parser and the reference disagree on {data:?}"
    );

    // The fuzzed bytes as strings separated by 0xff: a path, then arguments up to an
    // empty string, then the environment.
    let mut parts = data.split(|&b| b == 0xff);
    let Some(path) = parts.next() else { return };
    let mut argv = Vec::new();
    for p in parts.by_ref() {
        if p == b"--" {
            break;
        }
        argv.push(p.to_vec());
    }
    let env: Vec<Vec<u8>> = parts.map(<[u8]>::to_vec).collect();
    if argv.is_empty() {
        return;
    }
    let buf = kernel_layout(path, &argv, &env);
    let clean = |s: &Vec<u8>| s.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>();
    match parse(&buf) {
        Ok(p) => {
            let want: Vec<String> = argv
                .iter()
                .map(|a| String::from_utf8_lossy(&clean(a)).into_owned())
                .collect();
            assert_eq!(p.argv, want);
            let mut want_env = Vec::new();
            for e in &env {
                want_env.extend_from_slice(&clean(e));
                want_env.push(0);
            }
            assert_eq!(p.env, want_env);
        }
        Err(Unreadable::Ambiguous) => assert!(clean(&argv[0]).is_empty()),
        Err(e) => panic!("a kernel layout was refused: {e}"),
    }
});
