//! One connection: the peer identified (a known executable at once, a new one hashed
//! off the runtime's threads), its requests read frame by frame through one buffer
//! (every read checked to come from the peer that connected), each answered by
//! [`Daemon::handle_with`] and written back, with idle, frame and write timeouts.

use super::handshake;
use super::{ConnSlot, Conns, FRAME_TIMEOUT, HELLO_TIMEOUT, IDLE_TIMEOUT, WRITE_TIMEOUT};
use crate::audit::holding_reads;
use crate::audit::{Decision, Entry, Event};
use crate::handlers::{access_entry, error, Daemon, Gone};
use crate::peer::{Peer, PeerError, Recv};
use keychain_auth_sdk::frame::{self, FrameError, MAX_FRAME};
use keychain_auth_sdk::protocol::{ErrorCode, Request, Response};
use std::os::fd::AsFd;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

/// An access line for a connection refused because the peer changed.
fn peer_refusal(peer: &Peer, op: Option<&str>, e: &PeerError) -> Entry {
    Entry {
        decision: Decision::Deny.as_str().into(),
        reason: e.to_string(),
        ..access_entry(peer, op)
    }
}

async fn identify(daemon: &Daemon, stream: &UnixStream) -> Result<Peer, PeerError> {
    // A known executable is identified right here; only hashing a new one (which may
    // read hundreds of megabytes) moves to the blocking pool, so it delays nobody else.
    let state = daemon.state();
    match Peer::identify_cached(stream.as_fd(), state.cache()) {
        Err(PeerError::NeedsHash) => {}
        other => return other,
    }
    let fd = stream
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| PeerError::Inspect(format!("dup: {e}")))?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || Peer::identify(fd.as_fd(), st.cache()))
        .await
        .map_err(|e| PeerError::Inspect(format!("identification task failed: {e}")))?
}

/// Serves one accepted connection until it ends.
pub(super) async fn serve(daemon: Daemon, mut stream: UnixStream, conns: &Conns, slot: &ConnSlot) {
    let peer = match identify(&daemon, &stream).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!("refusing connection: {e}");
            let code = match e {
                PeerError::WrongUser { .. } => ErrorCode::Forbidden,
                _ => ErrorCode::Denied,
            };
            daemon.state().audit().refusal(Entry::new(
                Event::Access,
                Decision::Deny,
                e.to_string(),
            ));
            let _ = write_response(&mut stream, &error(code, e.to_string())).await;
            return;
        }
    };
    let mut reader = FrameReader::new(&peer, &stream);
    converse(&daemon, &peer, &mut stream, &mut reader, (conns, slot)).await;
    // Bytes left in the socket would make the client's next read fail with
    // "connection reset" instead of reaching the end of the stream.
    let _ = reader.finish(&stream);
}

/// Answers one identified peer's requests until the connection ends.
async fn converse(
    daemon: &Daemon,
    peer: &Peer,
    stream: &mut UnixStream,
    reader: &mut FrameReader<'_>,
    (conns, slot): (&Conns, &ConnSlot),
) {
    let state = daemon.state();
    let mut greeted = false;
    loop {
        let wait = if greeted { IDLE_TIMEOUT } else { HELLO_TIMEOUT };
        conns.idle(slot);
        let next = tokio::select! {
            n = reader.next(&mut *stream, wait) => n,
            _ = slot.evict.notified() => return,
        };
        conns.busy(slot);
        let payload = match next {
            Ok(p) => p,
            Err(ReadError::Closed) | Err(ReadError::Idle) | Err(ReadError::Io) => return,
            Err(ReadError::Sender(e)) => {
                state.audit().refusal(peer_refusal(peer, None, &e));
                let _ =
                    write_response(&mut *stream, &error(ErrorCode::Denied, e.to_string())).await;
                return;
            }
            Err(ReadError::Frame(e)) => {
                let code = match e {
                    FrameError::TooLarge(_) => ErrorCode::FrameTooLarge,
                    _ => ErrorCode::BadRequest,
                };
                let _ = write_response(&mut *stream, &error(code, e.to_string())).await;
                return;
            }
        };
        let req = frame::decode::<Request>(&payload);
        keychain_auth_sdk::secret::wipe(&mut { payload });
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                let _ = write_response(&mut *stream, &error(ErrorCode::BadRequest, e.to_string()))
                    .await;
                return;
            }
        };
        if !greeted {
            let (resp, ok) = handshake::answer(peer, req);
            if write_response(&mut *stream, &resp).await.is_err() || !ok {
                return;
            }
            greeted = true;
            continue;
        }
        if matches!(req, Request::Hello { .. }) {
            let _ = write_response(
                &mut *stream,
                &error(
                    ErrorCode::BadRequest,
                    "hello was already sent on this connection",
                ),
            )
            .await;
            return;
        }
        if let Err(e) = peer.recheck() {
            state
                .audit()
                .refusal(peer_refusal(peer, Some(req.kind()), &e));
            let _ = write_response(&mut *stream, &error(ErrorCode::Denied, e.to_string())).await;
            return;
        }
        let shutting_down = matches!(req, Request::Shutdown {});
        // A request that may wait for a decision watches its connection, so the wait ends
        // when the client goes away. Everything read is taken off the socket first, so
        // that what becomes readable then is new.
        let may_wait = matches!(
            &req,
            Request::Get { wait_ms: Some(w), .. } | Request::GetForParent { wait_ms: Some(w), .. } if *w > 0
        );
        if may_wait && reader.finish(stream).is_err() {
            return;
        }
        let (resp, written) = holding_reads(state.audit(), async {
            let resp = {
                let gone = if may_wait {
                    Gone::watching(&*stream)
                } else {
                    Gone::never()
                };
                daemon.handle_with(peer, req, &gone).await
            };
            let written = write_response(&mut *stream, &resp).await;
            (resp, written)
        })
        .await;
        if written.is_err() {
            return;
        }
        // A malformed request ends the conversation: the client is broken or hostile.
        if matches!(&resp, Response::Error(b) if b.code == ErrorCode::BadRequest) {
            return;
        }
        if shutting_down && matches!(resp, Response::Ok) {
            state.request_shutdown();
            return;
        }
    }
}

enum ReadError {
    Closed,
    Idle,
    Io,
    Frame(FrameError),
    Sender(PeerError),
}

/// Reads frames from a connection through one buffer. Every read is checked to come from
/// the peer that connected (an inherited socket fails). Consumed bytes are wiped (a `set`
/// carries a secret value).
///
/// Where the OS keeps a peek offset (Linux), requests are read with peeks that continue
/// in turn, so they stay queued in the socket after they are answered. They are taken
/// off in one go once [`KEPT_FRAMES`] or [`KEPT_BYTES`] have piled up, once no byte has
/// come for [`KEPT_LINGER`], before waiting for the rest of a frame (the writer may need
/// the room), and when the connection ends. Taking bytes off a Unix socket frees the
/// writer's send buffer, and Linux then wakes the writer even though it waits for an
/// answer, not for room: taken one by one, every request would wake its client once for
/// nothing. Elsewhere each read takes the bytes.
struct FrameReader<'p> {
    /// Bytes read and not yet returned as a frame.
    buf: Vec<u8>,
    peer: &'p Peer,
    /// Reads are peeks in turn (see [`crate::peer::peek_in_turn`]).
    peeks: bool,
    /// Bytes read that are still queued in the socket: the last ones read, so those of
    /// answered frames followed by (the end of) `buf`.
    queued: usize,
    /// Frames returned since the socket was last emptied of answered ones.
    kept_frames: usize,
}

/// The size of one read.
const CHUNK: usize = 8192;
/// Answered requests left in the socket before they are taken off. Each counts against
/// the client's send buffer (about 1 KiB for a small one, of the usual 208 KiB).
const KEPT_FRAMES: usize = 16;
/// Bytes of answered requests left in the socket before they are taken off.
const KEPT_BYTES: usize = 16 * 1024;
/// How long answered requests stay in the socket of a quiet connection. A client whose
/// send buffer is smaller than the kept requests waits this long for room.
const KEPT_LINGER: Duration = Duration::from_millis(1);

impl<'p> FrameReader<'p> {
    fn new(peer: &'p Peer, stream: &UnixStream) -> FrameReader<'p> {
        FrameReader {
            buf: Vec::new(),
            peer,
            peeks: crate::peer::peek_in_turn(stream.as_fd()),
            queued: 0,
            kept_frames: 0,
        }
    }

    /// Bytes of answered frames still queued in the socket.
    fn kept(&self) -> usize {
        self.queued.saturating_sub(self.buf.len())
    }

    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self, stream: &mut UnixStream) -> Result<bool, ReadError> {
        let buf = &mut self.buf;
        let how = if self.peeks { Recv::Peek } else { Recv::Take };
        // The read buffer lives only inside the readiness callback, not in the waiting
        // future, so an idle connection costs no more than its (empty) frame buffer.
        let (n, sender) = stream
            .async_io(Interest::READABLE, || {
                let mut chunk = [0u8; CHUNK];
                let (n, sender) = crate::peer::recv_with_sender(stream.as_fd(), &mut chunk, how)?;
                buf.extend_from_slice(&chunk[..n]);
                keychain_auth_sdk::secret::wipe(&mut chunk[..n]);
                Ok((n, sender))
            })
            .await
            .map_err(|_| ReadError::Io)?;
        if n > 0 {
            self.peer.check_sender(sender).map_err(ReadError::Sender)?;
            if self.peeks {
                self.queued += n;
            }
        }
        Ok(n > 0)
    }

    /// Takes the first `count` queued bytes off the socket. They were read already, so
    /// this never waits.
    fn take(&mut self, stream: &UnixStream, count: usize) -> Result<(), ReadError> {
        let mut left = count.min(self.queued);
        while left > 0 {
            let mut chunk = [0u8; CHUNK];
            let want = left.min(CHUNK);
            let got = crate::peer::recv_with_sender(stream.as_fd(), &mut chunk[..want], Recv::Take);
            keychain_auth_sdk::secret::wipe(&mut chunk[..want]);
            let (n, sender) = got.map_err(|_| ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Io);
            }
            self.peer.check_sender(sender).map_err(ReadError::Sender)?;
            // n <= want <= left <= queued: the kernel returns at most what was asked.
            left -= n;
            self.queued -= n;
        }
        Ok(())
    }

    /// Takes the answered frames off the socket.
    fn release(&mut self, stream: &UnixStream) -> Result<(), ReadError> {
        self.kept_frames = 0;
        self.take(stream, self.kept())
    }

    /// Takes everything read so far off the socket, before the connection is closed: the
    /// answered frames and the start of any frame still incomplete.
    fn finish(&mut self, stream: &UnixStream) -> Result<(), ReadError> {
        self.kept_frames = 0;
        self.take(stream, self.queued)
    }

    /// The next frame. Its first byte may take up to `idle`; the rest must follow within
    /// [`FRAME_TIMEOUT`].
    async fn next(
        &mut self,
        stream: &mut UnixStream,
        idle: Duration,
    ) -> Result<Vec<u8>, ReadError> {
        if self.kept() >= KEPT_BYTES || self.kept_frames >= KEPT_FRAMES {
            self.release(stream)?;
        }
        let mut deadline = tokio::time::Instant::now() + idle;
        let mut started = false;
        loop {
            if let Some(n) = whole_frame(&self.buf).map_err(ReadError::Frame)? {
                debug_assert!(n <= MAX_FRAME);
                let payload = self.buf[4..4 + n].to_vec();
                keychain_auth_sdk::secret::wipe(&mut self.buf[..4 + n]);
                self.buf.drain(..4 + n);
                self.kept_frames += 1;
                return Ok(payload);
            }
            if !self.buf.is_empty() {
                if !started {
                    started = true;
                    deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
                }
                // The rest may not fit in the writer's send buffer beside what it holds.
                self.finish(stream)?;
            }
            let linger = (self.queued > 0).then(|| tokio::time::Instant::now() + KEPT_LINGER);
            let until = linger.map_or(deadline, |l| l.min(deadline));
            match tokio::time::timeout_at(until, self.fill(stream)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) if self.buf.is_empty() => return Err(ReadError::Closed),
                Ok(Ok(false)) => return Err(ReadError::Io),
                Ok(Err(e)) => return Err(e),
                Err(_) if until < deadline => self.release(stream)?,
                Err(_) => return Err(ReadError::Idle),
            }
        }
    }
}

/// The payload length of the frame at the start of `bytes` if all of it is there,
/// `None` if more must arrive; an error as soon as the header is bad.
fn whole_frame(bytes: &[u8]) -> Result<Option<usize>, FrameError> {
    match *bytes {
        [a, b, c, d, ..] => {
            let len = frame::check_len([a, b, c, d])?;
            Ok((4 + len <= bytes.len()).then_some(len))
        }
        _ => Ok(None),
    }
}

impl Drop for FrameReader<'_> {
    fn drop(&mut self) {
        keychain_auth_sdk::secret::wipe(&mut self.buf);
    }
}

async fn write_response(stream: &mut UnixStream, resp: &Response) -> Result<(), ()> {
    let mut bytes = match frame::encode(resp) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("encoding a response failed: {e}");
            frame::encode(&error(
                ErrorCode::StoreUnavailable,
                "the answer could not be encoded",
            ))
            .map_err(|_| ())?
        }
    };
    let res = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await;
    keychain_auth_sdk::secret::wipe(&mut bytes);
    match res {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
