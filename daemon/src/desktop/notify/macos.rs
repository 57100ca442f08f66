//! Desktop notifications on macOS as an [`Approver`](crate::desktop::approver::Approver): `UNUserNotificationCenter` with a
//! category holding **Approve**, **Allow once** (both requiring an unlocked Mac) and
//! **Deny** (destructive). The notification's identifier is the binary's hash, so a new
//! notification for the same hash replaces the one on screen. The person's choice comes
//! back through a delegate; dismissing or ignoring a notification approves nothing.
//!
//! UserNotifications works only in an app bundle (the tray app); in the headless daemon
//! it reports itself unavailable and the CLI remains the path. At first start the
//! system asks the person to allow notifications; when they are not allowed, the daemon
//! says so and the tray menu remains. Written and type-checked on Linux
//! (`cargo check --target x86_64-apple-darwin`); not run here.

use super::{Event, Job, Notifier};
use crate::desktop::prompt_text::{body, summary, Elsewhere};
use block2::RcBlock;
use objc2::rc::Retained;
use objc2::runtime::{Bool, NSObject, NSObjectProtocol, ProtocolObject};
use objc2::{define_class, msg_send, AllocAnyThread, DefinedClass};
use objc2_foundation::{NSArray, NSBundle, NSError, NSSet, NSString};
use objc2_user_notifications::{
    UNAuthorizationOptions, UNMutableNotificationContent, UNNotification, UNNotificationAction,
    UNNotificationActionOptions, UNNotificationCategory, UNNotificationCategoryOptions,
    UNNotificationPresentationOptions, UNNotificationRequest, UNNotificationResponse,
    UNUserNotificationCenter, UNUserNotificationCenterDelegate,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// The category of a binary that may be approved, of one that may only be denied, and
/// of an update of an approved tool (Keep access).
const CATEGORY: &str = "dev.keychain-auth.pending";
const CATEGORY_DENY_ONLY: &str = "dev.keychain-auth.pending.deny-only";
const CATEGORY_UPDATE: &str = "dev.keychain-auth.pending.update";

/// What the delegate keeps.
struct Ivars {
    events: UnboundedSender<Event>,
}

define_class!(
    // SAFETY: NSObject has no subclassing requirements; the delegate methods below have
    // the signatures UserNotifications calls them with.
    #[unsafe(super(NSObject))]
    #[name = "KeychainAuthNotificationDelegate"]
    #[ivars = Ivars]
    struct Delegate;

    unsafe impl NSObjectProtocol for Delegate {}

    unsafe impl UNUserNotificationCenterDelegate for Delegate {
        #[unsafe(method(userNotificationCenter:didReceiveNotificationResponse:withCompletionHandler:))]
        fn did_receive(
            &self,
            _center: &UNUserNotificationCenter,
            response: &UNNotificationResponse,
            completion: &block2::DynBlock<dyn Fn()>,
        ) {
            let action = response.actionIdentifier().to_string();
            let hash = response.notification().request().identifier().to_string();
            // A click on the notification itself or its dismissal answers nothing.
            let choice = super::answer_of(&action);
            if let Some(choice) = choice {
                let _ = self.ivars().events.send(Event::Answer { hash, choice });
            }
            completion.call(());
        }

        #[unsafe(method(userNotificationCenter:willPresentNotification:withCompletionHandler:))]
        fn will_present(
            &self,
            _center: &UNUserNotificationCenter,
            _notification: &UNNotification,
            completion: &block2::DynBlock<dyn Fn(UNNotificationPresentationOptions)>,
        ) {
            // Show it even while the app is frontmost (its window is open).
            completion
                .call((UNNotificationPresentationOptions::Banner
                    | UNNotificationPresentationOptions::List,));
        }
    }
);

impl Delegate {
    fn new(events: UnboundedSender<Event>) -> Retained<Self> {
        let this = Self::alloc().set_ivars(Ivars { events });
        // SAFETY: NSObject's init on a freshly allocated instance.
        unsafe { msg_send![super(this), init] }
    }
}

/// The desktop approver (see [`Notifier`]).
pub type Desktop = Notifier<std::sync::mpsc::Sender<Job>>;

impl Desktop {
    /// Starts the notifier; its reports arrive on the returned receiver.
    pub fn start(elsewhere: Elsewhere) -> (Desktop, UnboundedReceiver<Event>) {
        let (jobs, job_rx) = std::sync::mpsc::channel::<Job>();
        let (events, event_rx) = unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("notifications".into())
            .spawn({
                let events = events.clone();
                move || run(job_rx, events, elsewhere)
            });
        if let Err(e) = spawned {
            let _ = events.send(Event::Unavailable(format!("notification thread: {e}")));
        }
        (Notifier { jobs, elsewhere }, event_rx)
    }
}

fn action(
    id: &str,
    title: &str,
    options: UNNotificationActionOptions,
) -> Retained<UNNotificationAction> {
    UNNotificationAction::actionWithIdentifier_title_options(
        &NSString::from_str(id),
        &NSString::from_str(title),
        options,
    )
}

/// A notification's buttons: Deny is destructive; every other one widens, so it needs an
/// unlocked Mac.
fn buttons(actions: &[(&str, &str)]) -> Vec<Retained<UNNotificationAction>> {
    actions
        .iter()
        .map(|(key, label)| {
            let options = if *key == "deny" {
                UNNotificationActionOptions::Destructive
            } else {
                UNNotificationActionOptions::AuthenticationRequired
            };
            action(key, label, options)
        })
        .collect()
}

fn category(
    id: &str,
    actions: &[Retained<UNNotificationAction>],
) -> Retained<UNNotificationCategory> {
    UNNotificationCategory::categoryWithIdentifier_actions_intentIdentifiers_options(
        &NSString::from_str(id),
        &NSArray::from_retained_slice(actions),
        &NSArray::new(),
        UNNotificationCategoryOptions::empty(),
    )
}

fn run(jobs: std::sync::mpsc::Receiver<Job>, events: UnboundedSender<Event>, elsewhere: Elsewhere) {
    // Outside an app bundle UserNotifications raises an exception instead of answering.
    if NSBundle::mainBundle().bundleIdentifier().is_none() {
        let _ = events.send(Event::Unavailable(
            "macOS notifications need the app (keychain-auth-app); use the CLI".into(),
        ));
        return;
    }
    let center = UNUserNotificationCenter::currentNotificationCenter();
    // The center holds its delegate weakly: this one lives as long as the process.
    let delegate = Delegate::new(events.clone());
    center.setDelegate(Some(ProtocolObject::from_ref(&*delegate)));
    std::mem::forget(delegate);

    let refused = events.clone();
    let answered = RcBlock::new(move |granted: Bool, _error: *mut NSError| {
        if !granted.as_bool() {
            let _ = refused.send(Event::Unavailable(
                "notifications are not allowed for keychain-auth (System Settings > Notifications); use the menu-bar menu".into(),
            ));
        }
    });
    center.requestAuthorizationWithOptions_completionHandler(
        UNAuthorizationOptions::Alert | UNAuthorizationOptions::Sound,
        &answered,
    );
    let deny = action("deny", "Deny", UNNotificationActionOptions::Destructive);
    let categories = [
        category(CATEGORY, &buttons(&super::APPROVE_ACTIONS)),
        category(CATEGORY_DENY_ONLY, &[deny]),
        category(CATEGORY_UPDATE, &buttons(&super::UPDATE_ACTIONS)),
    ];
    center.setNotificationCategories(&NSSet::from_retained_slice(&categories));

    while let Ok(job) = jobs.recv() {
        let entry = match job {
            Job::Ask(entry) => *entry,
            Job::Withdraw(hash) => {
                let ids = NSArray::from_retained_slice(&[NSString::from_str(&hash)]);
                center.removeDeliveredNotificationsWithIdentifiers(&ids);
                center.removePendingNotificationRequestsWithIdentifiers(&ids);
                continue;
            }
            Job::Announce { title, body } => {
                let content = UNMutableNotificationContent::new();
                content.setTitle(&NSString::from_str(&title));
                content.setBody(&NSString::from_str(&body));
                let request = UNNotificationRequest::requestWithIdentifier_content_trigger(
                    &NSString::from_str(&format!("announce:{title}")),
                    &content,
                    None,
                );
                center.addNotificationRequest_withCompletionHandler(&request, None);
                continue;
            }
        };
        let content = UNMutableNotificationContent::new();
        content.setTitle(&NSString::from_str(&summary(&entry)));
        let mut text = body(&entry, true, elsewhere);
        if let Some(facts) = crate::peer::signing::Facts::from_entry(&entry) {
            text.push('\n');
            text.push_str(&facts.describe());
        }
        content.setBody(&NSString::from_str(&text));
        content.setCategoryIdentifier(&NSString::from_str(if entry.update_of.is_some() {
            CATEGORY_UPDATE
        } else if crate::desktop::prompt_text::approvable(&entry) {
            CATEGORY
        } else {
            CATEGORY_DENY_ONLY
        }));
        let request = UNNotificationRequest::requestWithIdentifier_content_trigger(
            &NSString::from_str(&entry.hash),
            &content,
            None,
        );
        let (done_events, hash) = (events.clone(), entry.hash.clone());
        let done = RcBlock::new(move |error: *mut NSError| {
            let _ = done_events.send(if error.is_null() {
                Event::Shown {
                    hash: hash.clone(),
                    id: 0,
                }
            } else {
                // SAFETY: a non-null NSError the framework passed to this handler.
                let why = unsafe { &*error }.localizedDescription().to_string();
                Event::Unavailable(format!("posting a notification: {why}"))
            });
        });
        center.addNotificationRequest_withCompletionHandler(&request, Some(&done));
    }
}
