//! Peer identification on systems without a recipe in this build: every connection is
//! refused (fail closed). The macOS recipe (audit token, code signing) replaces this.

use super::{Peer, PeerError};
use crate::digest::HashCache;
use std::os::fd::BorrowedFd;

/// No OS state.
#[derive(Debug)]
pub struct Handle;

pub(super) fn identify(
    _sock: BorrowedFd<'_>,
    _cache: &HashCache,
    _may_hash: bool,
) -> Result<Peer, PeerError> {
    Err(PeerError::Unsupported)
}

/// No OS state.
#[derive(Debug)]
pub struct ParentSeed;

pub(super) fn parent(_peer: &Peer) -> Result<ParentSeed, PeerError> {
    Err(PeerError::Unsupported)
}

pub(super) fn identify_seed(
    _seed: ParentSeed,
    _cache: &HashCache,
    _may_hash: bool,
) -> Result<Peer, PeerError> {
    Err(PeerError::Unsupported)
}

pub(super) fn recheck(_peer: &Peer) -> Result<(), PeerError> {
    Err(PeerError::Unsupported)
}

pub(super) fn listener(_sock: BorrowedFd<'_>) -> Result<super::Listener, PeerError> {
    Err(PeerError::Unsupported)
}

pub(super) fn prepare_listener(_listener: BorrowedFd<'_>) -> std::io::Result<()> {
    Ok(())
}

pub(super) fn peek_in_turn(_sock: BorrowedFd<'_>) -> bool {
    false
}

pub(super) fn recv_with_sender(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: nix::sys::socket::MsgFlags,
) -> std::io::Result<(usize, Option<i32>)> {
    super::recv_plain(sock, buf, flags)
}
