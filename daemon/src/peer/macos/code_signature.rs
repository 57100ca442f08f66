//! The code signature of a running macOS process, read through its audit token:
//! `SecCodeCopyGuestWithAttributes` with the audit attribute; `SecCodeCheckValidity`,
//! which alone compares the running code with the file its signing information is read
//! from (judged by `peer/signing.rs::validity`); then `SecCodeCopySigningInformation`
//! (signing, requirement and dynamic information) for the cdhash, identifier, team id,
//! flags, the running status word and the entitlements that allow injection. Judging
//! them is `peer/signing.rs`'s. Type-checked on Linux; not run here.

use crate::peer::audit_token::AuditToken;
use crate::peer::signing::{validity, Validity};
use core_foundation::base::{CFType, TCFType};
use core_foundation::dictionary::CFDictionary;
use core_foundation::string::{CFString, CFStringRef};
use security_framework::os::macos::code_signing::SecCode;
use std::ffi::c_void;

#[link(name = "Security", kind = "framework")]
extern "C" {
    /// Security.framework: the signing information of a code object.
    fn SecCodeCopySigningInformation(
        code: *const std::ffi::c_void,
        flags: u32,
        information: *mut core_foundation::dictionary::CFDictionaryRef,
    ) -> i32;
    static kSecCodeInfoUnique: core_foundation::string::CFStringRef;
    static kSecCodeInfoIdentifier: core_foundation::string::CFStringRef;
    static kSecCodeInfoTeamIdentifier: core_foundation::string::CFStringRef;
    static kSecCodeInfoFlags: core_foundation::string::CFStringRef;
    static kSecCodeInfoEntitlementsDict: core_foundation::string::CFStringRef;
    static kSecCodeInfoStatus: core_foundation::string::CFStringRef;
    /// Security.framework: validates running code against its signature and the file.
    fn SecCodeCheckValidity(
        code: *const std::ffi::c_void,
        flags: u32,
        requirement: *const std::ffi::c_void,
    ) -> i32;
}

/// `kSecCSDefaultFlags`.
const CS_DEFAULT_FLAGS: u32 = 0;

/// `kSecCSSigningInformation`: ask for the signing facts.
pub(crate) const CS_SIGNING_INFORMATION: u32 = 1 << 1;
/// `kSecCSRequirementInformation`: requirements, and the entitlements on systems that
/// give them only with it.
const CS_REQUIREMENT_INFORMATION: u32 = 1 << 2;
/// `kSecCSDynamicInformation`: of the running code, not only the file.
const CS_DYNAMIC_INFORMATION: u32 = 1 << 3;

/// A Security framework key constant as a `CFString`.
pub(crate) fn key(k: CFStringRef) -> CFString {
    // SAFETY: the keys are constant strings exported by Security.framework, retained by
    // the get rule.
    unsafe { CFString::wrap_under_get_rule(k) }
}

/// `SecCodeCopySigningInformation` of `code` with `flags`, or its `OSStatus`.
pub(crate) fn signing_information(
    code: &SecCode,
    flags: u32,
) -> Result<CFDictionary<CFString, CFType>, i32> {
    let mut info = std::ptr::null();
    // SAFETY: a SecCodeRef may be passed where a SecStaticCodeRef is expected (Apple's
    // documentation); the dictionary is returned under the create rule.
    let status = unsafe {
        SecCodeCopySigningInformation(
            code.as_concrete_TypeRef().cast::<c_void>().cast_const(),
            flags,
            &mut info,
        )
    };
    if status != 0 || info.is_null() {
        return Err(status);
    }
    // SAFETY: a valid dictionary returned under the create rule.
    Ok(unsafe { CFDictionary::wrap_under_create_rule(info) })
}

/// A string of a signing-information dictionary.
fn info_string(info: &CFDictionary<CFString, CFType>, k: CFStringRef) -> Option<String> {
    info.find(key(k))
        .and_then(|v| v.downcast::<CFString>())
        .map(|s| s.to_string())
}

/// The team identifier of a signing-information dictionary, when a team signed it.
pub(crate) fn team_of(info: &CFDictionary<CFString, CFType>) -> Option<String> {
    // SAFETY: reading an exported constant.
    info_string(info, unsafe { kSecCodeInfoTeamIdentifier })
}

/// What the code signature of the process the token names says. An unsigned process
/// gives `signed: false`; a process that cannot be found, or whose running code does
/// not validate (`SecCodeCheckValidity`), gives an error: the peer is then refused.
pub(super) fn signing_facts(token: &AuditToken) -> Result<crate::peer::signing::Facts, String> {
    use core_foundation::boolean::CFBoolean;
    use core_foundation::data::CFData;
    use core_foundation::number::CFNumber;
    use security_framework::os::macos::code_signing::{Flags, GuestAttributes};

    // SAFETY: the token is plain data of exactly this size.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (token as *const AuditToken).cast::<u8>(),
            std::mem::size_of::<AuditToken>(),
        )
    };
    let data = CFData::from_buffer(bytes);
    let mut attrs = GuestAttributes::new();
    attrs.set_audit_token(data.as_concrete_TypeRef());
    let code = SecCode::copy_guest_with_attribues(None, &attrs, Flags::NONE)
        .map_err(|e| format!("finding its code: {e}"))?;
    let code_ref = code.as_concrete_TypeRef().cast::<c_void>().cast_const();
    // SAFETY: a valid SecCodeRef; no requirement (NULL) is allowed.
    let checked = unsafe { SecCodeCheckValidity(code_ref, CS_DEFAULT_FLAGS, std::ptr::null()) };
    match validity(checked) {
        Validity::Valid => {}
        Validity::Unsigned => return Ok(crate::peer::signing::Facts::default()),
        Validity::Refused(why) => return Err(why),
    }
    let info = signing_information(
        &code,
        CS_SIGNING_INFORMATION | CS_REQUIREMENT_INFORMATION | CS_DYNAMIC_INFORMATION,
    )
    .map_err(|status| format!("reading its signature: OSStatus {status}"))?;
    let string = |k| info_string(&info, k);
    // SAFETY: reading exported constants.
    let (unique, ident, team, flags_key, ents, status_key) = unsafe {
        (
            kSecCodeInfoUnique,
            kSecCodeInfoIdentifier,
            kSecCodeInfoTeamIdentifier,
            kSecCodeInfoFlags,
            kSecCodeInfoEntitlementsDict,
            kSecCodeInfoStatus,
        )
    };
    let cdhash = info
        .find(key(unique))
        .and_then(|v| v.downcast::<CFData>())
        .map(|d| hex::encode(d.bytes()));
    let number = |k| {
        info.find(key(k))
            .and_then(|v| v.downcast::<CFNumber>())
            .and_then(|n| n.to_i64())
            .map(|n| n as u32)
    };
    let flags = number(flags_key).unwrap_or(0);
    let status = number(status_key);
    let entitlements: Option<CFDictionary<CFString, CFType>> = info
        .find(key(ents))
        .and_then(|v| v.downcast::<CFDictionary>())
        // SAFETY: re-typing the same dictionary reference, retained by the get rule.
        .map(|d| unsafe { CFDictionary::wrap_under_get_rule(d.as_concrete_TypeRef()) });
    let entitled = |name: &str| {
        entitlements
            .as_ref()
            .and_then(|d| d.find(CFString::new(name)))
            .and_then(|v| v.downcast::<CFBoolean>())
            .is_some_and(bool::from)
    };
    Ok(crate::peer::signing::Facts {
        signed: cdhash.is_some(),
        cdhash,
        identifier: string(ident),
        team_id: string(team),
        flags,
        get_task_allow: entitled("com.apple.security.get-task-allow"),
        allow_dyld_environment: entitled("com.apple.security.cs.allow-dyld-environment-variables"),
        disable_library_validation: entitled("com.apple.security.cs.disable-library-validation"),
        status,
    })
}
