//! Handles: C sees opaque pointers that are really numbers from one counter, never
//! addresses. Each kind of object lives in a registry keyed by that number, so a freed,
//! forged or wrong-kind handle is found and refused instead of dereferenced, and a
//! number is never reused (a double free cannot free a newer object at the same
//! address). Calls hold an `Arc` while they work, so freeing a handle that another
//! thread is still using only drops the object when that call ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::status::{Failure, ENTMIN_ERR_INVALID_HANDLE};

/// Shared by every registry, so the number of a live handle of one kind is never that
/// of a live handle of another.
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(1);

pub(crate) struct Registry<T> {
    /// The C type's name, for messages.
    kind: &'static str,
    live: Mutex<Option<HashMap<usize, Arc<T>>>>,
}

impl<T> Registry<T> {
    pub const fn new(kind: &'static str) -> Self {
        Registry { kind, live: Mutex::new(None) }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<usize, Arc<T>>>> {
        // A panic while the lock was held cannot have left the map half-updated (each
        // update is one call), so a poisoned lock is still a consistent map.
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new handle for `value`.
    pub fn insert(&self, value: T) -> *mut T {
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        self.lock().get_or_insert_with(HashMap::new).insert(handle, Arc::new(value));
        handle as *mut T
    }

    /// The object behind a live `handle`.
    pub fn get(&self, handle: *const T) -> Result<Arc<T>, Failure> {
        self.lock().as_ref().and_then(|m| m.get(&(handle as usize)).cloned()).ok_or_else(|| self.not_live(handle))
    }

    /// Ends `handle`; the object goes when the last call using it returns.
    pub fn remove(&self, handle: *const T) -> Result<Arc<T>, Failure> {
        self.lock().as_mut().and_then(|m| m.remove(&(handle as usize))).ok_or_else(|| self.not_live(handle))
    }

    fn not_live(&self, handle: *const T) -> Failure {
        let message = if handle.is_null() {
            format!("the {} handle is NULL", self.kind)
        } else {
            format!(
                "{handle:p} is not a live {} handle (freed already, never returned by entmin, or another kind of handle)",
                self.kind
            )
        };
        Failure { status: ENTMIN_ERR_INVALID_HANDLE, message }
    }
}
