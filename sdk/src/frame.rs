//! Framing of protocol v1: a 4-byte big-endian payload length, then the payload, one UTF-8
//! JSON object of 1 to 65,536 bytes. Blocking readers and writers for `std::io`, plus the
//! checks the daemon's async reader shares. What goes inside a frame is in
//! [`crate::protocol`].

use serde::{de::DeserializeOwned, Serialize};
use std::io::{self, Read, Write};

/// Largest payload a frame may carry, in bytes (64 KiB).
pub const MAX_FRAME: usize = 64 * 1024;

/// Why a frame could not be read or decoded.
#[derive(Debug)]
pub enum FrameError {
    /// The length prefix announced more than [`MAX_FRAME`] bytes.
    TooLarge(u32),
    /// The length prefix was zero.
    Empty,
    /// The payload was not UTF-8.
    NotUtf8,
    /// The payload was not a JSON object of the expected shape.
    Json(serde_json::Error),
    /// The stream ended cleanly before a frame started.
    Closed,
    /// An I/O error, including a stream that ended in the middle of a frame.
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge(n) => {
                write!(
                    f,
                    "frame of {n} bytes is larger than the {MAX_FRAME}-byte limit"
                )
            }
            FrameError::Empty => f.write_str("frame of zero bytes"),
            FrameError::NotUtf8 => f.write_str("frame is not valid UTF-8"),
            FrameError::Json(e) => write!(f, "frame is not a valid message: {e}"),
            FrameError::Closed => f.write_str("connection closed"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Checks a length prefix and returns the payload length it announces.
pub fn check_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let n = u32::from_be_bytes(header);
    if n == 0 {
        return Err(FrameError::Empty);
    }
    if n as usize > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    Ok(n as usize)
}

/// Decodes a payload: UTF-8 first, then JSON into `T`.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let text = std::str::from_utf8(payload).map_err(|_| FrameError::NotUtf8)?;
    serde_json::from_str(text).map_err(FrameError::Json)
}

/// Encodes a message as a complete frame (length prefix included).
///
/// Fails with [`FrameError::TooLarge`] when the JSON exceeds [`MAX_FRAME`].
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, msg).map_err(FrameError::Json)?;
    let n = buf.len() - 4;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n.min(u32::MAX as usize) as u32));
    }
    buf[..4].copy_from_slice(&(n as u32).to_be_bytes());
    Ok(buf)
}

/// Reads one frame's payload from a blocking reader.
pub fn read_payload<R: Read>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let n = check_len(header)?;
    let mut payload = vec![0u8; n];
    r.read_exact(&mut payload)?;
    Ok(payload)
}

/// Reads and decodes one frame.
pub fn read_frame<T: DeserializeOwned, R: Read>(r: &mut R) -> Result<T, FrameError> {
    let payload = read_payload(r)?;
    let msg = decode(&payload);
    crate::secret::wipe(&mut { payload });
    msg
}

/// Encodes and writes one frame, then flushes.
pub fn write_frame<T: Serialize, W: Write>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let mut buf = encode(msg)?;
    let res = w.write_all(&buf).and_then(|_| w.flush());
    crate::secret::wipe(&mut buf);
    res.map_err(FrameError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Request;

    #[test]
    fn round_trip() {
        let req = Request::Get {
            name: "git/x".into(),
            wait_ms: None,
        };
        let bytes = encode(&req).expect("encodes");
        assert_eq!(&bytes[..4], &((bytes.len() - 4) as u32).to_be_bytes());
        let back: Request = read_frame(&mut &bytes[..]).expect("decodes");
        assert_eq!(back, req);
    }

    #[test]
    fn limits_are_enforced() {
        assert!(matches!(check_len([0, 0, 0, 0]), Err(FrameError::Empty)));
        assert!(matches!(check_len([0, 1, 0, 0]), Ok(65536)));
        assert!(matches!(
            check_len([0, 1, 0, 1]),
            Err(FrameError::TooLarge(65537))
        ));
        assert!(matches!(
            check_len([0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::TooLarge(u32::MAX))
        ));
    }

    #[test]
    fn hostile_payloads_are_errors() {
        assert!(matches!(
            decode::<Request>(b"\xff\xfe"),
            Err(FrameError::NotUtf8)
        ));
        assert!(matches!(
            decode::<Request>(b"not json"),
            Err(FrameError::Json(_))
        ));
        let deep = "[".repeat(10_000);
        assert!(matches!(
            decode::<Request>(deep.as_bytes()),
            Err(FrameError::Json(_))
        ));
        // a frame cut short
        let mut bytes = encode(&Request::List { offset: None }).expect("encodes");
        bytes.truncate(bytes.len() - 1);
        assert!(matches!(
            read_payload(&mut &bytes[..]),
            Err(FrameError::Io(_))
        ));
        assert!(matches!(
            read_payload(&mut &b""[..]),
            Err(FrameError::Closed)
        ));
        assert!(matches!(
            read_payload(&mut &b"\0\0"[..]),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn oversized_messages_are_not_encoded() {
        let req = Request::Set {
            name: "a".into(),
            value: "x".repeat(MAX_FRAME).into(),
        };
        assert!(matches!(encode(&req), Err(FrameError::TooLarge(_))));
    }
}
