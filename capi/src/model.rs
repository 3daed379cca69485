//! Loading a model into a handle, what was loaded, and freeing it.

use std::ffi::{c_char, c_void, CString};
use std::sync::Mutex;

use entmin_rs::models::WeightDtype;
use entmin_rs::{DeviceKind, Engine, Options, Progress};

use crate::handles::Registry;
use crate::status::{entmin_status, guard, utf8, utf8_or, Failure};

/// A loaded model with its tokenizer and chat template, on one device. Opaque; made by
/// `entmin_model_load`, ended by `entmin_model_free`.
pub struct entmin_model {
    pub(crate) engine: Engine,
    device: CString,
    architecture: CString,
    weight_types: CString,
    path: CString,
}

pub(crate) static MODELS: Registry<entmin_model> = Registry::new("entmin_model");

/// Download progress: `label` names what is fetched, `done` of `total` bytes are in
/// (`total` is 0 while unknown). Called on the thread that called `entmin_model_load`,
/// during that call only; `label` is valid during the call only.
pub type entmin_progress_fn =
    Option<unsafe extern "C" fn(label: *const c_char, done: u64, total: u64, user_data: *mut c_void)>;

/// How `entmin_model_load` opens a model. Start from `entmin_load_options_default()`
/// and change what you need, so fields added later keep their defaults.
#[repr(C)]
pub struct entmin_load_options {
    /// "auto" (NULL means this too: CUDA, else a hardware GPU through wgpu, else the
    /// CPU), "cpu", "wgpu" or "cuda".
    pub device: *const c_char,
    /// Storage of the weight matrices: "auto" (NULL too: a GGUF's quantised blocks stay
    /// blocks where the backend computes on them) or a dtype every matrix is converted
    /// to: "f32", "bf16", "f16".
    pub dtype: *const c_char,
    /// Threads of the CPU backend's pool: 0 leaves it as it is (all cores unless set
    /// before). The pool is sized once per process: a later load asking for another
    /// size fails.
    pub threads: u32,
    /// Called as a catalog model downloads on first use; NULL for none.
    pub on_progress: entmin_progress_fn,
    /// Passed to `on_progress` as it is.
    pub progress_user_data: *mut c_void,
}

/// What `entmin_model_get_info` reports.
#[repr(C)]
pub struct entmin_model_info {
    /// The device the model runs on, and why it was chosen, e.g. "cpu (no GPU found)".
    pub device: *const c_char,
    /// "llama" or "qwen2".
    pub architecture: *const c_char,
    /// Storage types of the weights in memory, e.g. "Q4_K 54%, Q6_K 30%, F32 16%".
    pub weight_types: *const c_char,
    /// The file or folder the spec resolved to.
    pub path: *const c_char,
    /// Tokens the context holds (prompt and answer together).
    pub context_length: u64,
    /// Tokens in the vocabulary.
    pub vocab_size: u64,
    /// Bytes of weights in memory.
    pub weight_bytes: u64,
    /// Seconds the load took, a download excluded.
    pub load_secs: f64,
}

/// The defaults: device and dtype "auto", threads 0, no progress callback.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn entmin_load_options_default() -> entmin_load_options {
    entmin_load_options {
        device: std::ptr::null(),
        dtype: std::ptr::null(),
        threads: 0,
        on_progress: None,
        progress_user_data: std::ptr::null_mut(),
    }
}

/// Reports a download to the C callback.
struct CProgress {
    callback: unsafe extern "C" fn(*const c_char, u64, u64, *mut c_void),
    user_data: *mut c_void,
    /// (label, total, done) of the phase in progress.
    phase: Mutex<(CString, u64, u64)>,
}

// The callback is only called on the loading thread (the catalog downloads there);
// `Progress: Sync` is what the library's signature asks for.
unsafe impl Sync for CProgress {}

impl CProgress {
    fn report(&self, phase: &(CString, u64, u64)) {
        // SAFETY: the caller of entmin_model_load vouched for the callback and its data.
        unsafe { (self.callback)(phase.0.as_ptr(), phase.2, phase.1, self.user_data) }
    }
}

impl Progress for CProgress {
    fn begin(&self, label: &str, total: u64, done: u64) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        *phase = (CString::new(label.replace('\0', " ")).expect("NULs were replaced"), total, done);
        self.report(&phase);
    }
    fn advance(&self, n: u64, _status: &str) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        phase.2 += n;
        self.report(&phase);
    }
}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).expect("NULs were replaced")
}

/// Opens `spec` — a catalog name ("qwen2.5-coder-0.5b-instruct", downloaded into the
/// cache on first use), a `.gguf` file or a Hugging Face folder — and stores a new
/// handle in `*out_model`. `options` may be NULL for the defaults.
///
/// Ownership: free the handle with `entmin_model_free`. On failure `*out_model` is set
/// to NULL. Thread-safe: several models may load at once.
///
/// # Safety
/// `spec` is a NUL-terminated string; `options` is NULL or points to an
/// `entmin_load_options`; `out_model` points to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn entmin_model_load(
    spec: *const c_char,
    options: *const entmin_load_options,
    out_model: *mut *mut entmin_model,
) -> entmin_status {
    guard("entmin_model_load", || {
        if out_model.is_null() {
            return Err(Failure::invalid("out_model is NULL"));
        }
        *out_model = std::ptr::null_mut();
        let spec = utf8(spec, "spec")?;
        let defaults = entmin_load_options_default();
        let o = options.as_ref().unwrap_or(&defaults);
        let device: DeviceKind = utf8_or(o.device, "options.device", "auto")?.parse()?;
        let dtype_name = utf8_or(o.dtype, "options.dtype", "auto")?;
        let dtype = WeightDtype::parse(dtype_name).ok_or_else(|| {
            Failure::invalid(format!("options.dtype {dtype_name:?} is not a dtype (auto, f32, bf16, f16)"))
        })?;
        let threads = (o.threads > 0).then_some(o.threads as usize);
        let options = Options { device, dtype, threads };
        let engine = match o.on_progress {
            Some(callback) => {
                let progress = CProgress {
                    callback,
                    user_data: o.progress_user_data,
                    phase: Mutex::new((CString::default(), 0, 0)),
                };
                Engine::load_with_progress(spec, options, &progress)?
            }
            None => Engine::load(spec, options)?,
        };
        let info = engine.info();
        let model = entmin_model {
            device: c_string(&engine.device().to_string()),
            architecture: c_string(info.architecture),
            weight_types: c_string(&info.weight_types),
            path: c_string(&info.path.to_string_lossy()),
            engine,
        };
        *out_model = MODELS.insert(model);
        Ok(())
    })
}

/// Fills `*out_info` with what was loaded.
///
/// Ownership: the strings belong to the model and stay valid until it is freed.
/// Thread-safe.
///
/// # Safety
/// `out_info` points to writable memory for an `entmin_model_info`.
#[no_mangle]
pub unsafe extern "C" fn entmin_model_get_info(
    model: *const entmin_model,
    out_info: *mut entmin_model_info,
) -> entmin_status {
    guard("entmin_model_get_info", || {
        if out_info.is_null() {
            return Err(Failure::invalid("out_info is NULL"));
        }
        let m = MODELS.get(model)?;
        let info = m.engine.info();
        *out_info = entmin_model_info {
            device: m.device.as_ptr(),
            architecture: m.architecture.as_ptr(),
            weight_types: m.weight_types.as_ptr(),
            path: m.path.as_ptr(),
            context_length: info.context_length as u64,
            vocab_size: info.vocab_size as u64,
            weight_bytes: info.weight_bytes as u64,
            load_secs: info.load_secs,
        };
        Ok(())
    })
}

/// Ends `model`. A generation still running on another thread finishes first; the
/// memory goes when it returns. Freeing a handle twice, or NULL, returns
/// `ENTMIN_ERR_INVALID_HANDLE` and changes nothing. Thread-safe.
#[no_mangle]
pub extern "C" fn entmin_model_free(model: *mut entmin_model) -> entmin_status {
    guard("entmin_model_free", || MODELS.remove(model).map(drop))
}
