//! Requests of deputies: the git helper's secret requests and the CLI's `get_for_parent`
//! are decided for the origin of the deputy's caller chain (`peer::chain`), found once
//! per connection and re-checked before each answer. A chain that cannot be followed is
//! refused with its reason, audited with the chain as far as it was verified, and never
//! queued.

use super::{access_entry, error, Daemon};
use crate::audit;
use crate::peer::chain::{self, Broken, Known};
use crate::peer::{exe_base_name, Peer};
use keychain_auth_sdk::protocol::{Deputy, ErrorCode, Response};
use std::sync::Arc;

impl Daemon {
    /// Whether `peer` is a deputy whose secret requests are decided for its caller: the
    /// git helper (the CLI's own requests are admin requests, and its `get` is
    /// [`Daemon::get_for_parent`]).
    pub(super) fn is_deputy(&self, peer: &Peer) -> bool {
        peer.script.is_none()
            && !self.state.is_admin_hash(&peer.hash)
            && self.state.pass_throughs().is_deputy(&peer.hash)
    }

    /// The origin of a deputy's caller chain, with the chain. Found on the deputy's first
    /// request and kept for its connection (re-checked each time); for the CLI's `get`
    /// (`with_output`), the first program up the chain that reads the CLI's output is
    /// judged as well.
    pub(super) async fn origin_of(
        &self,
        deputy: &Peer,
        with_output: bool,
    ) -> Result<Arc<Peer>, Broken> {
        if let Some(o) = deputy.origin.get() {
            return match o.recheck() {
                Ok(()) => Ok(o.clone()),
                Err(e) => Err(Broken::new(
                    format!("a program of the caller chain changed: {e}"),
                    o.via.clone().unwrap_or_default(),
                )),
            };
        }
        let name = exe_base_name(&deputy.path).to_string();
        let started = std::time::Instant::now();
        let seed = || {
            deputy
                .parent(with_output)
                .map_err(|e| Broken::new(e.to_string(), format!("? → {name}")))
        };
        let st = &self.state;
        // Where every file is hashed already (the usual case), the walk runs right here,
        // like the identification of a connection; else in the blocking pool.
        let quick = if st.pass_throughs().ready() {
            match chain::walk(seed()?, name.clone(), st.pass_throughs(), st.cache(), false) {
                Err(b) if b.needs_hash => None,
                other => Some(other),
            }
        } else {
            None
        };
        let walked = match quick {
            Some(walked) => walked?,
            None => {
                let seed = seed()?;
                let st = self.state.clone();
                let name = name.clone();
                tokio::task::spawn_blocking(move || {
                    chain::walk(seed, name, st.pass_throughs(), st.cache(), true)
                })
                .await
                .map_err(|e| {
                    Broken::new(
                        format!("walking the caller chain failed: {e}"),
                        String::new(),
                    )
                })??
            }
        };
        // What the walk costs, for the benchmark (docs/benchmarks.md).
        tracing::debug!(
            "caller chain walked in {} µs: {} programs passed through",
            started.elapsed().as_micros(),
            walked.chain.len()
        );
        if let Some(w) = deputy.wants.get() {
            let _ = walked.wants.set(w.clone());
        }
        let walked = Peer {
            through: Some(if self.state.is_admin_hash(&deputy.hash) {
                Deputy::Get
            } else {
                Deputy::Git
            }),
            ..walked
        };
        let origin = Arc::new(walked);
        if !with_output {
            let _ = deputy.origin.set(origin.clone());
        }
        Ok(origin)
    }

    /// The answer to a request whose caller chain cannot be followed: refused with the
    /// reason, audited with the chain as far as it was verified; nothing is queued.
    pub(super) fn refuse_broken(
        &self,
        deputy: &Peer,
        op: &str,
        name: Option<&str>,
        b: Broken,
    ) -> Response {
        let message = if self.state.is_admin_hash(&deputy.hash) {
            format!(
                "cannot identify the program that ran keychain-auth get: {}",
                b.reason
            )
        } else {
            format!(
                "{} serves the program that ran it, and that program cannot be told: {}",
                exe_base_name(&deputy.path),
                b.reason
            )
        };
        let e = audit::Entry {
            decision: audit::Decision::Deny.into(),
            reason: format!("caller chain broken: {}", b.reason),
            names: name.into_iter().map(str::to_string).collect(),
            via: Some(b.verified),
            ..access_entry(deputy, Some(op))
        };
        self.state.audit().refusal(e);
        error(ErrorCode::Denied, message)
    }

    /// The labels of approvals of deputies themselves (as made before caller chains):
    /// they no longer serve whoever runs the deputy.
    pub fn deputy_approvals(&self) -> Vec<String> {
        self.state
            .config()
            .tools
            .iter()
            .filter(|t| self.state.pass_throughs().is_deputy(&t.hash))
            .map(|t| t.label.clone())
            .collect()
    }

    /// A note for a program refused through a deputy, when the deputy itself is approved
    /// (as before caller chains): that approval no longer serves whoever runs it.
    pub(super) fn deputy_approval_note(&self, origin: &Peer) -> Option<String> {
        if origin.chain.is_empty() && origin.via.is_none() {
            return None;
        }
        let approved = self.deputy_approvals();
        if approved.is_empty() {
            return None;
        }
        Some(format!(
            " ({} is approved itself, but a deputy's approval no longer serves whoever runs it: each program that asks through it is approved on its own, once.)",
            approved.join(", ")
        ))
    }
}
