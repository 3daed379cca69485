//! The C functions called as C would call them, misuse included: freed, forged,
//! wrong-kind and NULL handles, NULL and non-UTF-8 arguments, bad parameters, a panic
//! at the boundary, cancelling and freeing from another thread.

use std::ffi::{c_char, c_void, CStr};
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::OnceLock;

use entmin_rs::models::Architecture;
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};

use crate::status::guard;
use crate::*;

fn last_error() -> String {
    // SAFETY: entmin_last_error returns this thread's NUL-terminated message.
    unsafe { CStr::from_ptr(entmin_last_error()) }.to_str().unwrap().to_string()
}

/// `status` is `want`, and the last error names `function` and contains `says`.
#[track_caller]
fn refused(status: entmin_status, want: entmin_status, function: &str, says: &str) {
    let msg = last_error();
    assert_eq!(status, want, "{function}: {msg}");
    assert!(
        msg.starts_with(&format!("{function}: ")) && msg.contains(says),
        "{msg:?} should name {function} and say {says:?}"
    );
}

/// A tiny random model as GGUF, written once per test process.
fn tiny_model() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let mut c = config(Architecture::Qwen2, false);
        c.context_length = 256;
        let path = entmin_tests::scratch_dir("capi-unit").join("tiny.gguf");
        std::fs::write(&path, tiny_model_gguf(&c, &random_weights(&c, 3)).build()).unwrap();
        path
    })
}

fn load() -> *mut entmin_model {
    let spec = std::ffi::CString::new(tiny_model().to_str().unwrap()).unwrap();
    let mut options = entmin_load_options_default();
    options.device = c"cpu".as_ptr();
    let mut model = null_mut();
    let status = unsafe { entmin_model_load(spec.as_ptr(), &options, &mut model) };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    assert!(!model.is_null());
    model
}

fn user(text: &CStr) -> entmin_message {
    entmin_message { role: c"user".as_ptr(), content: text.as_ptr() }
}

fn greedy(max_tokens: u32) -> entmin_generate_params {
    let mut p = entmin_generate_params_default();
    p.temperature = 0.0;
    p.max_tokens = max_tokens;
    p
}

/// Tokens seen by [`collect`]: (text, id, entropy, entropy after, steps).
type Seen = Vec<(String, u32, f32, f32, u32)>;

unsafe extern "C" fn collect(token: *const entmin_token, user_data: *mut c_void) -> i32 {
    let t = &*token;
    let seen = &mut *(user_data as *mut Seen);
    let bytes = std::slice::from_raw_parts(t.text.cast::<u8>(), t.text_len + 1);
    assert_eq!(bytes[t.text_len], 0, "the piece is NUL-terminated");
    let text = std::str::from_utf8(&bytes[..t.text_len]).unwrap().to_string();
    seen.push((text, t.id, t.entropy, t.entropy_after, t.em_steps));
    ENTMIN_CONTINUE
}

unsafe fn chat(
    model: *const entmin_model,
    params: &entmin_generate_params,
    seen: &mut Seen,
) -> (entmin_status, entmin_result) {
    let message = user(c"Hi there");
    let mut result = std::mem::zeroed();
    let status = entmin_chat(model, &message, 1, params, Some(collect), (seen as *mut Seen).cast(), &mut result);
    (status, result)
}

#[test]
fn freeing_twice_is_an_error_not_a_crash() {
    let model = load();
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
    refused(entmin_model_free(model), ENTMIN_ERR_INVALID_HANDLE, "entmin_model_free", "not a live entmin_model handle");
    let mut info = unsafe { std::mem::zeroed() };
    refused(
        unsafe { entmin_model_get_info(model, &mut info) },
        ENTMIN_ERR_INVALID_HANDLE,
        "entmin_model_get_info",
        "freed already",
    );
    let (status, mut result) = unsafe { chat(model, &greedy(4), &mut Vec::new()) };
    refused(status, ENTMIN_ERR_INVALID_HANDLE, "entmin_chat", "not a live entmin_model handle");
    assert!(result.text.is_null(), "a failed call leaves no text");
    assert_eq!(unsafe { entmin_result_free(&mut result) }, ENTMIN_OK);

    let mut cancel = null_mut();
    assert_eq!(unsafe { entmin_cancel_new(&mut cancel) }, ENTMIN_OK);
    assert_eq!(entmin_cancel_free(cancel), ENTMIN_OK);
    refused(entmin_cancel_free(cancel), ENTMIN_ERR_INVALID_HANDLE, "entmin_cancel_free", "not a live entmin_cancel");
    refused(entmin_cancel_trigger(cancel), ENTMIN_ERR_INVALID_HANDLE, "entmin_cancel_trigger", "not a live");
}

#[test]
fn null_forged_and_wrong_kind_handles_are_refused() {
    refused(entmin_model_free(null_mut()), ENTMIN_ERR_INVALID_HANDLE, "entmin_model_free", "NULL");
    refused(entmin_cancel_trigger(null_mut()), ENTMIN_ERR_INVALID_HANDLE, "entmin_cancel_trigger", "NULL");
    let forged = 0xdead_beef_usize as *mut entmin_model;
    refused(entmin_model_free(forged), ENTMIN_ERR_INVALID_HANDLE, "entmin_model_free", "0xdeadbeef");

    // A live cancel handle passed as a model, and a live model as a cancel handle.
    let model = load();
    let mut cancel = null_mut();
    assert_eq!(unsafe { entmin_cancel_new(&mut cancel) }, ENTMIN_OK);
    let (status, _) = unsafe { chat(cancel.cast(), &greedy(4), &mut Vec::new()) };
    refused(status, ENTMIN_ERR_INVALID_HANDLE, "entmin_chat", "entmin_model handle");
    refused(entmin_cancel_free(model.cast()), ENTMIN_ERR_INVALID_HANDLE, "entmin_cancel_free", "entmin_cancel handle");
    let mut params = greedy(4);
    params.cancel = model.cast();
    let (status, _) = unsafe { chat(model, &params, &mut Vec::new()) };
    refused(status, ENTMIN_ERR_INVALID_HANDLE, "entmin_chat", "entmin_cancel handle");
    // Both still live and usable after being misused.
    let (status, mut result) = unsafe { chat(model, &greedy(3), &mut Vec::new()) };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    assert_eq!(result.completion_tokens, 3);
    unsafe { entmin_result_free(&mut result) };
    assert_eq!(entmin_cancel_free(cancel), ENTMIN_OK);
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}

#[test]
fn null_pointers_and_bad_text_are_refused() {
    let mut model = 0x1 as *mut entmin_model;
    refused(
        unsafe { entmin_model_load(null(), null(), &mut model) },
        ENTMIN_ERR_INVALID_ARGUMENT,
        "entmin_model_load",
        "spec is NULL",
    );
    assert!(model.is_null(), "a failed load sets *out_model to NULL");
    refused(
        unsafe { entmin_model_load(c"x".as_ptr(), null(), null_mut()) },
        ENTMIN_ERR_INVALID_ARGUMENT,
        "entmin_model_load",
        "out_model is NULL",
    );
    let not_utf8 = [0xffu8, 0xfe, 0];
    refused(
        unsafe { entmin_model_load(not_utf8.as_ptr().cast(), null(), &mut model) },
        ENTMIN_ERR_INVALID_ARGUMENT,
        "entmin_model_load",
        "spec is not UTF-8",
    );
    refused(
        unsafe { entmin_model_load(c"/no/such/model.gguf".as_ptr(), null(), &mut model) },
        ENTMIN_ERR_MODEL,
        "entmin_model_load",
        "/no/such/model.gguf",
    );
    let mut options = entmin_load_options_default();
    options.device = c"tpu".as_ptr();
    refused(
        unsafe { entmin_model_load(c"x".as_ptr(), &options, &mut model) },
        ENTMIN_ERR_DEVICE,
        "entmin_model_load",
        "tpu",
    );
    refused(unsafe { entmin_cancel_new(null_mut()) }, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_cancel_new", "NULL");
    refused(unsafe { entmin_result_free(null_mut()) }, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_result_free", "NULL");

    let model = load();
    refused(
        unsafe { entmin_model_get_info(model, null_mut()) },
        ENTMIN_ERR_INVALID_ARGUMENT,
        "entmin_model_get_info",
        "out_info is NULL",
    );
    let mut r = unsafe { std::mem::zeroed() };
    let status = unsafe { entmin_chat(model, null(), 1, null(), None, null_mut(), &mut r) };
    refused(status, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_chat", "messages is NULL");
    let status = unsafe { entmin_chat(model, null(), 0, null(), None, null_mut(), &mut r) };
    refused(status, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_chat", "n_messages is 0");
    let bad = [entmin_message { role: c"user".as_ptr(), content: not_utf8.as_ptr().cast() }];
    let status = unsafe { entmin_chat(model, bad.as_ptr(), 1, null(), None, null_mut(), &mut r) };
    refused(status, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_chat", "messages[0].content is not UTF-8");
    let status = unsafe { entmin_complete(model, null(), false, null(), None, null_mut(), &mut r) };
    refused(status, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_complete", "text is NULL");
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}

#[test]
fn bad_parameters_are_refused_with_the_field_named() {
    let model = load();
    let check = |params: entmin_generate_params, says: &str| {
        let (status, _) = unsafe { chat(model, &params, &mut Vec::new()) };
        refused(status, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_chat", says);
    };
    let mut p = greedy(4);
    p.method = c"beam-search".as_ptr();
    check(p, "params.method \"beam-search\" is not a method (plain, em-inf");
    let mut p = greedy(4);
    p.temperature = -1.0;
    check(p, "temperature -1");
    let mut p = greedy(4);
    p.top_p = 0.0;
    check(p, "top_p 0");
    let mut p = greedy(4);
    p.em_lr = 0.0;
    check(p, "invalid argument");
    let mut p = greedy(4);
    p.n_stop = 2;
    check(p, "params.stop is NULL but params.n_stop is 2");
    let stops = [c"ok".as_ptr(), c"".as_ptr()];
    let mut p = greedy(4);
    (p.stop, p.n_stop) = (stops.as_ptr(), 2);
    check(p, "params.stop[1] is empty");
    let mut p = greedy(4);
    (p.method, p.votes) = (c"self-consistency".as_ptr(), 0);
    check(p, "at least one sample");
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}

#[test]
fn a_panic_becomes_an_error_code_and_message() {
    let status = guard("entmin_test", || panic!("boom {}", 7));
    refused(status, ENTMIN_ERR_INTERNAL, "entmin_test", "internal error (a bug in entmin): boom 7");
    // The next call works as usual, and success leaves the message as it was.
    assert_eq!(guard("entmin_test", || Ok(())), ENTMIN_OK);
    assert!(last_error().contains("boom 7"));
}

#[test]
fn names_version_and_info() {
    let name = |s| unsafe { CStr::from_ptr(entmin_status_name(s)) }.to_str().unwrap();
    assert_eq!(name(ENTMIN_OK), "ENTMIN_OK");
    assert_eq!(name(ENTMIN_ERR_INVALID_HANDLE), "ENTMIN_ERR_INVALID_HANDLE");
    assert_eq!(name(-3), "unknown status");
    assert_eq!(unsafe { CStr::from_ptr(entmin_version()) }.to_str().unwrap(), env!("CARGO_PKG_VERSION"));

    let model = load();
    let mut info = unsafe { std::mem::zeroed::<entmin_model_info>() };
    assert_eq!(unsafe { entmin_model_get_info(model, &mut info) }, ENTMIN_OK);
    let text = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    assert_eq!(text(info.architecture), "qwen2");
    assert_eq!(text(info.path), tiny_model().to_str().unwrap());
    assert!(text(info.device).starts_with("cpu"), "{}", text(info.device));
    assert_eq!((info.context_length, info.vocab_size), (256, 97));
    assert!(info.weight_bytes > 0);
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}

#[test]
fn streamed_pieces_add_up_to_the_answer_and_the_callback_stops_it() {
    let model = load();
    let mut seen = Vec::new();
    let (status, mut r) = unsafe { chat(model, &entmin_generate_params_default(), &mut seen) };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    let text = unsafe { CStr::from_ptr(r.text) }.to_str().unwrap();
    assert_eq!(r.text_len, text.len());
    assert_eq!(seen.iter().map(|s| s.0.as_str()).collect::<String>(), text);
    assert_eq!(seen.len(), r.completion_tokens as usize);
    assert_eq!(seen.iter().map(|s| s.4).sum::<u32>(), r.em_steps);
    assert!(r.em_steps > 0, "EM-INF optimised the random model's tokens");
    for &(_, _, before, after, steps) in &seen {
        if steps > 0 {
            assert!(after < before, "EM-INF lowered the entropy: {before} → {after}");
        } else {
            assert_eq!(after, before);
        }
    }
    let mean = seen.iter().map(|s| s.2 as f64).sum::<f64>() / seen.len() as f64;
    assert!((r.mean_entropy as f64 - mean).abs() < 1e-5, "{} vs {mean}", r.mean_entropy);
    assert_eq!(unsafe { entmin_result_free(&mut r) }, ENTMIN_OK);
    assert!(r.text.is_null());
    assert_eq!(unsafe { entmin_result_free(&mut r) }, ENTMIN_OK, "freeing a freed result is harmless");

    unsafe extern "C" fn stop_at_third(_: *const entmin_token, user_data: *mut c_void) -> i32 {
        let n = &mut *(user_data as *mut u32);
        *n += 1;
        if *n == 3 {
            ENTMIN_STOP
        } else {
            ENTMIN_CONTINUE
        }
    }
    let mut n = 0u32;
    let mut r = unsafe { std::mem::zeroed() };
    let message = user(c"Hi there");
    let params = greedy(50);
    let status =
        unsafe { entmin_chat(model, &message, 1, &params, Some(stop_at_third), (&mut n as *mut u32).cast(), &mut r) };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    assert_eq!((n, r.completion_tokens, r.finish), (3, 3, ENTMIN_FINISH_CANCELLED));
    unsafe { entmin_result_free(&mut r) };
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}

#[test]
fn raw_completion_reads_the_text_without_a_chat_template() {
    let model = load();
    let mut r = unsafe { std::mem::zeroed() };
    let status = unsafe { entmin_complete(model, c"<|x|>".as_ptr(), false, &greedy(2), None, null_mut(), &mut r) };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    // One token per byte in the tiny vocabulary, nothing around them.
    assert_eq!((r.prompt_tokens, r.completion_tokens), (5, 2));
    unsafe { entmin_result_free(&mut r) };
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}

/// What the blocking callback tells the test and waits for.
struct Rendezvous {
    started: Sender<()>,
    resume: Receiver<()>,
    tokens: u32,
}

/// Reports the first token, then waits for the test before going on.
unsafe extern "C" fn pause_after_first(_: *const entmin_token, user_data: *mut c_void) -> i32 {
    let r = &mut *(user_data as *mut Rendezvous);
    r.tokens += 1;
    if r.tokens == 1 {
        r.started.send(()).unwrap();
        r.resume.recv().unwrap();
    }
    ENTMIN_CONTINUE
}

/// Generates greedily on `model` on a new thread, pausing after the first token until
/// the returned sender is used; the thread returns (status, tokens seen, result).
fn generate_paused(
    model: *mut entmin_model,
    cancel: *mut entmin_cancel,
) -> (Receiver<()>, Sender<()>, std::thread::JoinHandle<(entmin_status, u32, i32, u32)>) {
    let (started_tx, started) = channel();
    let (resume, resume_rx) = channel();
    let (model, cancel) = (model as usize, cancel as usize);
    let worker = std::thread::spawn(move || {
        let mut rv = Rendezvous { started: started_tx, resume: resume_rx, tokens: 0 };
        let mut params = greedy(60);
        params.cancel = cancel as *mut entmin_cancel;
        let message = user(c"Tell me a story");
        let mut r = unsafe { std::mem::zeroed::<entmin_result>() };
        let status = unsafe {
            entmin_chat(
                model as *const entmin_model,
                &message,
                1,
                &params,
                Some(pause_after_first),
                (&mut rv as *mut Rendezvous).cast(),
                &mut r,
            )
        };
        let out = (status, rv.tokens, r.finish, r.completion_tokens);
        unsafe { entmin_result_free(&mut r) };
        out
    });
    (started, resume, worker)
}

#[test]
fn cancel_from_another_thread_ends_the_answer_after_the_token_in_progress() {
    let model = load();
    let mut cancel = null_mut();
    assert_eq!(unsafe { entmin_cancel_new(&mut cancel) }, ENTMIN_OK);
    let (started, resume, worker) = generate_paused(model, cancel);
    started.recv().unwrap();
    assert_eq!(entmin_cancel_trigger(cancel), ENTMIN_OK);
    resume.send(()).unwrap();
    let (status, tokens, finish, completion) = worker.join().unwrap();
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    assert_eq!((tokens, completion, finish), (1, 1, ENTMIN_FINISH_CANCELLED));

    // Still triggered: a later generation given it ends at once.
    let mut params = greedy(10);
    params.cancel = cancel;
    let (status, mut r) = unsafe { chat(model, &params, &mut Vec::new()) };
    assert_eq!((status, r.completion_tokens, r.finish), (ENTMIN_OK, 0, ENTMIN_FINISH_CANCELLED));
    unsafe { entmin_result_free(&mut r) };
    assert_eq!(entmin_cancel_free(cancel), ENTMIN_OK);
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}

#[test]
fn freeing_a_model_while_another_thread_generates_lets_it_finish() {
    let model = load();
    let (started, resume, worker) = generate_paused(model, null_mut());
    started.recv().unwrap();
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
    refused(entmin_model_free(model), ENTMIN_ERR_INVALID_HANDLE, "entmin_model_free", "not a live");
    resume.send(()).unwrap();
    let (status, tokens, finish, completion) = worker.join().unwrap();
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    assert_eq!((tokens, completion, finish), (60, 60, ENTMIN_FINISH_MAX_TOKENS));
}

#[test]
fn token_ids_in_and_out_with_caller_buffers() {
    let model = load();
    // Size first, then the ids: one per byte in the tiny vocabulary.
    let mut n = usize::MAX;
    let status = unsafe { entmin_tokenize(model, c"Hi!".as_ptr(), false, null_mut(), 0, &mut n) };
    refused(status, ENTMIN_ERR_BUFFER_TOO_SMALL, "entmin_tokenize", "3 tokens do not fit in capacity 0");
    assert_eq!(n, 3);
    let mut ids = [u32::MAX; 4];
    let status = unsafe { entmin_tokenize(model, c"Hi!".as_ptr(), false, ids.as_mut_ptr(), 4, &mut n) };
    assert_eq!((status, n), (ENTMIN_OK, 3), "{}", last_error());
    assert_eq!(ids[3], u32::MAX, "nothing written past the ids");
    let status = unsafe { entmin_tokenize(model, c"".as_ptr(), false, null_mut(), 0, &mut n) };
    assert_eq!((status, n), (ENTMIN_OK, 0), "empty text has no tokens");

    // And back: too small reports the length, then the text with its NUL.
    let mut len = usize::MAX;
    let mut text = [0x55 as c_char; 8];
    let status = unsafe { entmin_detokenize(model, ids.as_ptr(), 3, text.as_mut_ptr(), 3, &mut len) };
    refused(status, ENTMIN_ERR_BUFFER_TOO_SMALL, "entmin_detokenize", "3 bytes and a NUL do not fit in capacity 3");
    assert_eq!((len, text[0]), (3, 0x55), "nothing written but the length");
    let status = unsafe { entmin_detokenize(model, ids.as_ptr(), 3, text.as_mut_ptr(), 8, &mut len) };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    assert_eq!(unsafe { CStr::from_ptr(text.as_ptr()) }.to_str().unwrap(), "Hi!");
    let bad = [97u32];
    let status = unsafe { entmin_detokenize(model, bad.as_ptr(), 1, text.as_mut_ptr(), 8, &mut len) };
    refused(status, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_detokenize", "token 97 is outside the vocabulary of 97");
    let status = unsafe { entmin_detokenize(model, null(), 2, text.as_mut_ptr(), 8, &mut len) };
    refused(status, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_detokenize", "ids is NULL but n_ids is 2");
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}

#[test]
fn the_chat_prompt_as_ids_generates_what_the_chat_does() {
    let model = load();
    let message = user(c"Hi there");
    let mut n = 0;
    let status = unsafe { entmin_tokenize_chat(model, &message, 1, null_mut(), 0, &mut n) };
    assert_eq!(status, ENTMIN_ERR_BUFFER_TOO_SMALL);
    let mut ids = vec![0u32; n];
    let status = unsafe { entmin_tokenize_chat(model, &message, 1, ids.as_mut_ptr(), n, &mut n) };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());

    let mut by_chat = Vec::new();
    let (status, mut chat_result) = unsafe { chat(model, &greedy(6), &mut by_chat) };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    assert_eq!(chat_result.prompt_tokens as usize, n, "entmin_tokenize_chat is the prompt entmin_chat feeds");
    let mut by_ids: Seen = Vec::new();
    let mut ids_result = unsafe { std::mem::zeroed() };
    let status = unsafe {
        entmin_generate_tokens(
            model,
            ids.as_ptr(),
            n,
            &greedy(6),
            Some(collect),
            (&mut by_ids as *mut Seen).cast(),
            &mut ids_result,
        )
    };
    assert_eq!(status, ENTMIN_OK, "{}", last_error());
    assert_eq!(by_ids, by_chat);
    unsafe { entmin_result_free(&mut chat_result) };
    unsafe { entmin_result_free(&mut ids_result) };

    let out_of_vocab = [5u32, 400];
    let status =
        unsafe { entmin_generate_tokens(model, out_of_vocab.as_ptr(), 2, null(), None, null_mut(), &mut ids_result) };
    refused(
        status,
        ENTMIN_ERR_INVALID_ARGUMENT,
        "entmin_generate_tokens",
        "prompt token 400 is outside the vocabulary",
    );
    let status = unsafe { entmin_generate_tokens(model, null(), 0, null(), None, null_mut(), &mut ids_result) };
    refused(status, ENTMIN_ERR_INVALID_ARGUMENT, "entmin_generate_tokens", "no tokens");
    assert_eq!(entmin_model_free(model), ENTMIN_OK);
}
