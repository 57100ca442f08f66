//! Requests that change nothing: `whoami` (how the daemon sees the caller), `status`,
//! and the lists of tools, pending binaries, deny rules and secret names, a page at a
//! time.

use super::{error, Daemon};
use crate::peer::Peer;
use crate::state::server_name;
use keychain_auth_sdk::protocol::{ErrorCode, Identity, Response, Status};

/// Bytes of items one page may carry: the rest of the 64 KiB frame is left for the
/// envelope, so any list fits in frames however long it grows.
pub(super) const PAGE_BUDGET: usize = 48 * 1024;

/// The items from `offset` on that fit in one page, and the offset of the next page.
/// A page always holds at least one item (items are bounded well below a frame).
pub(super) fn page<T: Clone + serde::Serialize>(
    items: &[T],
    offset: Option<u64>,
) -> (Vec<T>, Option<u64>) {
    let start = (offset.unwrap_or(0) as usize).min(items.len());
    let mut used = 0;
    let mut out = Vec::new();
    for item in &items[start..] {
        let size = serde_json::to_vec(item)
            .map(|v| v.len() + 1)
            .unwrap_or(usize::MAX);
        if !out.is_empty() && used + size > PAGE_BUDGET {
            break;
        }
        used = used.saturating_add(size);
        out.push(item.clone());
    }
    let end = start + out.len();
    let next = (end < items.len()).then_some(end as u64);
    (out, next)
}

impl Daemon {
    /// `whoami`: how the daemon sees a peer.
    pub(super) fn identity(&self, peer: &Peer) -> Identity {
        let config = self.state.config();
        let facts = self.facts(peer);
        let tool = config.tool(&peer.hash);
        let status = if facts.admin {
            "admin"
        } else if config.is_denied(&peer.hash) {
            "denied"
        } else if peer.interpreter {
            "interpreter"
        } else if tool.is_some() {
            "approved"
        } else if self.state.pending().contains(&peer.hash) {
            "pending"
        } else {
            "unknown"
        };
        Identity {
            hash: peer.hash.clone(),
            path: peer.path.clone(),
            status: status.into(),
            scopes: tool.map(|t| t.scopes.clone()).unwrap_or_default(),
            access: tool.map(|t| t.access),
            label: tool.map(|t| t.label.clone()),
            pid: peer.pid,
            script: peer.script.clone(),
        }
    }

    pub(super) fn list_tools(&self, offset: Option<u64>) -> Response {
        let (tools, next) = page(&self.state.config().tools, offset);
        Response::Tools { tools, next }
    }

    pub(super) fn list_pending(&self, offset: Option<u64>) -> Response {
        let (pending, next) = page(&self.state.pending().entries(), offset);
        Response::Pending { pending, next }
    }

    pub(super) fn list_denied(&self, offset: Option<u64>) -> Response {
        let (denied, next) = page(&self.state.config().denied, offset);
        Response::DenyRules { denied, next }
    }

    pub(super) async fn names(&self, offset: Option<u64>) -> Response {
        match self.state.store().list().await {
            Ok(all) => {
                let (names, next) = page(&all, offset);
                Response::Names { names, next }
            }
            Err(e) => error(ErrorCode::StoreUnavailable, e.to_string()),
        }
    }

    pub(super) fn status(&self) -> Response {
        let st = &self.state;
        // The file must reach the line reported: `audit verify` checks it does.
        let (seq, head) = st.audit().flush();
        Response::Status(Status {
            server: server_name(),
            pid: std::process::id(),
            store: st.store().kind().into(),
            socket: st.paths().socket.display().to_string(),
            tools: st.config().tools.len(),
            pending: st.pending().len(),
            audit_seq: seq,
            audit_head: head,
            ptrace_scope: Some(crate::ptrace::Scope::read().wire()),
            deputy_approvals: self.deputy_approvals(),
            presence: Some(self.presence().describe()),
            paused: Some(st.is_paused()),
            notifications: Some(st.approver().where_asked().is_some()),
            host: Some(if st.in_app() { "app" } else { "cli" }.into()),
        })
    }
}
