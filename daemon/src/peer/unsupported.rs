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

pub(super) fn parent(_peer: &Peer, _with_output: bool) -> Result<ParentSeed, PeerError> {
    Err(PeerError::Unsupported)
}

pub(super) fn terminal(_peer: &Peer) -> Result<Option<super::Tty>, PeerError> {
    Err(PeerError::Unsupported)
}

pub(super) fn holds_terminal(_peer: &Peer, _tty: &super::Tty) -> Result<bool, PeerError> {
    Err(PeerError::Unsupported)
}

pub(super) fn recheck_handle(_handle: &Handle, _pid: i32) -> Result<(), PeerError> {
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
