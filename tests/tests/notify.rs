//! Approvals on the desktop: `keychain-auth start --notify` with a real notification
//! server (dunst on Xvfb, on the test's session bus). A waiting client is served the
//! moment Approve is chosen in dunst's menu; Allow once serves only the waiting request;
//! Deny leaves a deny rule and no second notification; an `ActionInvoked` forged by
//! another bus connection approves nothing.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::desktop::{decisions_scenario, Desktop};
use keychain_auth_e2e::Home;

#[test]
fn approve_allow_once_and_deny_from_a_real_notification_and_forged_clicks_do_nothing() {
    let mut h = Home::new();
    let desktop = Desktop::start(&h.path("desktop"));
    h.start(&["--store", "keyutils", "--notify"]);
    assert!(h
        .ka_stdin(&["set", "n/secret"], b"clicked-through")
        .status
        .success());
    decisions_scenario(&h, &desktop, "notification.png");
}
