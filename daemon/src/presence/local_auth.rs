//! Proof of presence on macOS: LocalAuthentication. The daemon (or the app hosting it)
//! evaluates `LAPolicyDeviceOwnerAuthentication` on a fresh `LAContext`: Touch ID, or the
//! login password, in the system's own sheet, which a program of the user cannot press.
//! The reason shown is the change itself. A fresh context per decision, so nothing is
//! reused between decisions. Written and type-checked on Linux; not yet run on a Mac
//! (docs/macos.md says what to try first).

use super::{BoxFuture, Change, Mechanism, NotProven, Prover};
use block2::RcBlock;
use objc2::msg_send;
use objc2::rc::Retained;
use objc2::runtime::{AnyClass, AnyObject, Bool};
use objc2_foundation::{NSError, NSString};

#[link(name = "LocalAuthentication", kind = "framework")]
extern "C" {}

/// `LAPolicyDeviceOwnerAuthentication`: biometrics, else the login password.
const DEVICE_OWNER_AUTHENTICATION: isize = 2;
/// `LAErrorUserCancel`, `LAErrorSystemCancel`, `LAErrorAppCancel`.
const CANCELLED: [isize; 3] = [-2, -4, -9];
/// `LAErrorAuthenticationFailed`.
const FAILED: isize = -1;

/// LocalAuthentication.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalAuth;

/// An `LAContext` kept alive while it evaluates (releasing it would cancel it).
struct Evaluating(Retained<AnyObject>);

// SAFETY: LAContext may be used from any thread; this one is only invalidated and
// released after it was started.
unsafe impl Send for Evaluating {}

fn context() -> Result<Retained<AnyObject>, String> {
    let class = AnyClass::get(c"LAContext").ok_or("LocalAuthentication is not available")?;
    // SAFETY: `new` on an NSObject subclass returns a retained instance.
    let ctx: Option<Retained<AnyObject>> = unsafe { msg_send![class, new] };
    ctx.ok_or_else(|| "cannot create an LAContext".to_string())
}

impl Prover for LocalAuth {
    fn mechanism(&self) -> Result<Mechanism, String> {
        let ctx = context()?;
        let mut error: *mut NSError = std::ptr::null_mut();
        // SAFETY: canEvaluatePolicy:error: takes an NSInteger and an out-pointer.
        let can: Bool = unsafe {
            msg_send![&ctx, canEvaluatePolicy: DEVICE_OWNER_AUTHENTICATION, error: &mut error]
        };
        if can.as_bool() {
            Ok(Mechanism::LocalAuth)
        } else {
            Err("this Mac cannot authenticate its owner (no password or Touch ID set up)".into())
        }
    }

    fn prove<'a>(
        &'a self,
        change: &'a Change,
        timeout_s: u64,
    ) -> BoxFuture<'a, Result<(), NotProven>> {
        Box::pin(async move {
            let ctx = Evaluating(context().map_err(NotProven::Broken)?);
            let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), NotProven>>();
            let tx = std::sync::Mutex::new(Some(tx));
            {
                let reply = RcBlock::new(move |ok: Bool, error: *mut NSError| {
                    let result = if ok.as_bool() {
                        Ok(())
                    } else {
                        // SAFETY: the error is valid for the duration of the reply.
                        let code = unsafe { error.as_ref() }.map_or(FAILED, |e| e.code());
                        if CANCELLED.contains(&code) {
                            Err(NotProven::Cancelled)
                        } else if code == FAILED {
                            Err(NotProven::Failed)
                        } else {
                            Err(NotProven::Broken(format!(
                                "LocalAuthentication error {code}"
                            )))
                        }
                    };
                    if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(result);
                    }
                });
                let reason = NSString::from_str(&change.text);
                // SAFETY: evaluatePolicy:localizedReason:reply: copies the block and calls it
                // once, on a queue of its own.
                let () = unsafe {
                    msg_send![&ctx.0, evaluatePolicy: DEVICE_OWNER_AUTHENTICATION, localizedReason: &*reason, reply: &*reply]
                };
            }
            match tokio::time::timeout(std::time::Duration::from_secs(timeout_s), rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(NotProven::Broken(
                    "LocalAuthentication never answered".into(),
                )),
                Err(_) => {
                    // SAFETY: invalidate ends the evaluation; the reply then reports it.
                    let () = unsafe { msg_send![&ctx.0, invalidate] };
                    Err(NotProven::Timeout(timeout_s))
                }
            }
        })
    }
}
