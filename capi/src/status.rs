//! Status codes, this thread's last error message, and the guard every exported
//! function runs its body in: no panic crosses into C, every failure is a code and a
//! message naming the function and the problem.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use entmin_rs::engine::EngineError;
use entmin_rs::Error;

/// What a function returns: `ENTMIN_OK` or one of the `ENTMIN_ERR_*` codes, with
/// `entmin_last_error()` saying what went wrong.
pub type entmin_status = i32;

/// Success.
pub const ENTMIN_OK: entmin_status = 0;
/// A null pointer where one is required, text that is not UTF-8, a value out of range
/// or an unknown name (method, device, dtype).
pub const ENTMIN_ERR_INVALID_ARGUMENT: entmin_status = 1;
/// A handle that is not live: freed already, never returned by entmin, or a handle of
/// another kind.
pub const ENTMIN_ERR_INVALID_HANDLE: entmin_status = 2;
/// The model could not be found, downloaded, read or tokenised.
pub const ENTMIN_ERR_MODEL: entmin_status = 3;
/// The device could not be opened or failed while running.
pub const ENTMIN_ERR_DEVICE: entmin_status = 4;
/// Reading or writing a file failed.
pub const ENTMIN_ERR_IO: entmin_status = 5;
/// A caller's buffer is too small; the size needed was written where the function
/// says.
pub const ENTMIN_ERR_BUFFER_TOO_SMALL: entmin_status = 7;
/// A bug in entmin (a Rust panic, caught at the boundary). The handle stays usable but
/// the call's result is lost; please report the message.
pub const ENTMIN_ERR_INTERNAL: entmin_status = 6;

/// A failure on its way to C: the code, and the message for `entmin_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: entmin_status,
    pub message: String,
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure { status: ENTMIN_ERR_INVALID_ARGUMENT, message: message.into() }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        Error::from(e).into()
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::Model(_) | Error::ModelSpec { .. } | Error::Corrupt { .. } => ENTMIN_ERR_MODEL,
            Error::Engine(EngineError::Invalid { .. }) | Error::Invalid(_) => ENTMIN_ERR_INVALID_ARGUMENT,
            Error::Engine(_) | Error::Device { .. } => ENTMIN_ERR_DEVICE,
            Error::Io { .. } => ENTMIN_ERR_IO,
            // Datasets, training and helper programs are not reachable through the C API.
            _ => ENTMIN_ERR_INTERNAL,
        };
        Failure { status, message: e.to_string() }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: String) {
    // Messages quote user text, which C cannot hold past a NUL.
    let message = CString::new(message.replace('\0', "\\0")).expect("NULs were replaced");
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

/// Runs an exported function's body: `Ok` is `ENTMIN_OK`; an error or a panic becomes
/// its code, with "`function`: message" as this thread's last error.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> Result<(), Failure>) -> entmin_status {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return ENTMIN_OK,
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Failure { status: ENTMIN_ERR_INTERNAL, message: format!("internal error (a bug in entmin): {what}") }
        }
    };
    set_last_error(format!("{function}: {}", failure.message));
    failure.status
}

/// The UTF-8 text at `ptr`, which must not be null; `what` names the argument.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn utf8<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    CStr::from_ptr(ptr).to_str().map_err(|e| Failure::invalid(format!("{what} is not UTF-8: {e}")))
}

/// As [`utf8`], with null meaning `default`.
///
/// # Safety
/// As [`utf8`].
pub(crate) unsafe fn utf8_or<'a>(ptr: *const c_char, what: &str, default: &'a str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        Ok(default)
    } else {
        utf8(ptr, what)
    }
}

/// The message of the most recent call on this thread that returned an error, as
/// "function: what went wrong"; an empty string when no call has failed yet. Calls that
/// succeed leave it as it is.
///
/// Owned by entmin: valid until the next call on this thread that fails; never free it.
/// Thread-safe (each thread has its own).
#[no_mangle]
pub extern "C" fn entmin_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The name of a status code ("ENTMIN_OK", "ENTMIN_ERR_MODEL", …), or "unknown status".
///
/// A static string: never free it. Thread-safe.
#[no_mangle]
pub extern "C" fn entmin_status_name(status: entmin_status) -> *const c_char {
    let name: &'static CStr = match status {
        ENTMIN_OK => c"ENTMIN_OK",
        ENTMIN_ERR_INVALID_ARGUMENT => c"ENTMIN_ERR_INVALID_ARGUMENT",
        ENTMIN_ERR_INVALID_HANDLE => c"ENTMIN_ERR_INVALID_HANDLE",
        ENTMIN_ERR_MODEL => c"ENTMIN_ERR_MODEL",
        ENTMIN_ERR_DEVICE => c"ENTMIN_ERR_DEVICE",
        ENTMIN_ERR_IO => c"ENTMIN_ERR_IO",
        ENTMIN_ERR_BUFFER_TOO_SMALL => c"ENTMIN_ERR_BUFFER_TOO_SMALL",
        ENTMIN_ERR_INTERNAL => c"ENTMIN_ERR_INTERNAL",
        _ => c"unknown status",
    };
    name.as_ptr()
}

/// The library's version ("0.1.0"). A static string: never free it. Thread-safe.
#[no_mangle]
pub extern "C" fn entmin_version() -> *const c_char {
    const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("the version has no NUL"),
    };
    VERSION.as_ptr()
}
