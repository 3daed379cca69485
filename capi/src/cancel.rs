//! Cancel handles: stop a generation from another thread, as an app's stop button does.

use entmin_rs::Cancel;

use crate::handles::Registry;
use crate::status::{entmin_status, guard, Failure};

/// A flag that stops every generation it was given to (`entmin_generate_params.cancel`).
/// Opaque; made by `entmin_cancel_new`, ended by `entmin_cancel_free`.
pub struct entmin_cancel {
    pub(crate) flag: Cancel,
}

pub(crate) static CANCELS: Registry<entmin_cancel> = Registry::new("entmin_cancel");

/// Stores a new, untriggered cancel handle in `*out_cancel`.
///
/// Ownership: free it with `entmin_cancel_free`. Thread-safe.
///
/// # Safety
/// `out_cancel` points to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn entmin_cancel_new(out_cancel: *mut *mut entmin_cancel) -> entmin_status {
    guard("entmin_cancel_new", || {
        if out_cancel.is_null() {
            return Err(Failure::invalid("out_cancel is NULL"));
        }
        *out_cancel = CANCELS.insert(entmin_cancel { flag: Cancel::new() });
        Ok(())
    })
}

/// Triggers `cancel`: generations using it end after the token in progress, keeping
/// the tokens so far (their finish reason is `ENTMIN_FINISH_CANCELLED`), and later
/// generations given it end at once. It stays triggered. Thread-safe: meant to be
/// called from another thread than the generating one.
#[no_mangle]
pub extern "C" fn entmin_cancel_trigger(cancel: *mut entmin_cancel) -> entmin_status {
    guard("entmin_cancel_trigger", || {
        CANCELS.get(cancel)?.flag.cancel();
        Ok(())
    })
}

/// Ends `cancel`. A generation using it keeps working and can still be stopped by a
/// trigger made before the free. Freeing twice, or NULL, returns
/// `ENTMIN_ERR_INVALID_HANDLE`. Thread-safe.
#[no_mangle]
pub extern "C" fn entmin_cancel_free(cancel: *mut entmin_cancel) -> entmin_status {
    guard("entmin_cancel_free", || CANCELS.remove(cancel).map(drop))
}
