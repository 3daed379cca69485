//! Generation: a chat or a raw-text prompt in, tokens streamed to a C callback with
//! their entropies and EM-INF statistics, the answer and its summary out.

use std::ffi::{c_char, c_void, CString};

use entmin_rs::models::{Message, StopReason};
use entmin_rs::{Completion, Flow, Method, MethodConfig, Prompt, Request};

use crate::cancel::CANCELS;
use crate::model::{entmin_model, MODELS};
use crate::status::{entmin_status, guard, utf8, utf8_or, Failure};

/// A callback's answer: go on.
pub const ENTMIN_CONTINUE: i32 = 0;
/// A callback's answer: end this sequence here (any value but `ENTMIN_CONTINUE` does).
pub const ENTMIN_STOP: i32 = 1;

/// Why an answer ended (`entmin_result.finish`): an end-of-turn or end-of-text token.
pub const ENTMIN_FINISH_END_OF_TURN: i32 = 0;
/// One of the stop strings appeared (it is cut from the text).
pub const ENTMIN_FINISH_STOP_STRING: i32 = 1;
/// `max_tokens` were generated.
pub const ENTMIN_FINISH_MAX_TOKENS: i32 = 2;
/// The context window filled up before `max_tokens`.
pub const ENTMIN_FINISH_CONTEXT_FULL: i32 = 3;
/// The callback returned `ENTMIN_STOP` or the cancel handle was triggered.
pub const ENTMIN_FINISH_CANCELLED: i32 = 4;

/// One message of a conversation.
#[repr(C)]
pub struct entmin_message {
    /// "system", "user" or "assistant" (what the model's chat template knows).
    pub role: *const c_char,
    /// The text. It is data: text that looks like a control token (`<|im_start|>`)
    /// stays characters.
    pub content: *const c_char,
}

/// How to generate. Start from `entmin_generate_params_default()` and change what
/// you need, so fields added later keep their defaults.
#[repr(C)]
pub struct entmin_generate_params {
    /// "em-inf" (NULL means this too), "plain", "adaptive-temp" or "self-consistency".
    pub method: *const c_char,
    /// At most this many new tokens (lowered to what the context leaves). Default 512.
    pub max_tokens: u32,
    /// Sampling temperature; 0 is greedy. NaN (the default) means the method's own:
    /// 0.1 for plain and EM-INF, 0.7 for self-consistency.
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this mass. 1 disables.
    pub top_p: f32,
    /// Keep the k most likely tokens. 0 disables.
    pub top_k: u32,
    /// Keep tokens with p ≥ min_p · p_max. 0 disables.
    pub min_p: f32,
    /// Seed of the sampler (self-consistency's sample i uses seed + i). Default 0.
    pub seed: u64,
    /// EM-INF: optimise only tokens whose entropy (nats) is above this. Default 0.3.
    pub em_threshold: f32,
    /// EM-INF: Adam's learning rate on the logits. Default 0.1.
    pub em_lr: f32,
    /// EM-INF: at most this many Adam steps per token. Default 5.
    pub em_steps: u32,
    /// EM-INF: weight of the KL term that keeps the logits near the model's. Default 0.001.
    pub em_kl: f32,
    /// Self-consistency: samples to vote over. Default 4.
    pub votes: u32,
    /// `n_stop` stop strings: the answer ends when its text ends with one, which is
    /// cut from it. NULL when `n_stop` is 0.
    pub stop: *const *const c_char,
    /// How many strings `stop` points to.
    pub n_stop: usize,
    /// A cancel handle that stops this generation from another thread; NULL for none.
    pub cancel: *mut crate::cancel::entmin_cancel,
}

/// A new token, as the callback sees it.
#[repr(C)]
pub struct entmin_token {
    /// The text this token completes, UTF-8 and NUL-terminated. May be empty (a
    /// character split across tokens arrives with its last byte). Valid during the
    /// callback only: copy what you keep.
    pub text: *const c_char,
    /// Bytes of `text` before its NUL.
    pub text_len: usize,
    /// The token's id.
    pub id: u32,
    /// Which sample it belongs to: always 0 except under self-consistency, whose
    /// samples run together.
    pub sample: u32,
    /// Its log-probability under the distribution it was drawn from.
    pub logprob: f32,
    /// Entropy (nats) of the model's own next-token distribution, before EM-INF.
    pub entropy: f32,
    /// Entropy after EM-INF's steps (equal to `entropy` when no step was taken or the
    /// method is not EM-INF).
    pub entropy_after: f32,
    /// Entropy of the distribution the token was drawn from (after EM-INF, at the
    /// sampling temperature).
    pub sampled_entropy: f32,
    /// EM-INF's Adam steps for this token (0 below the threshold or for other methods).
    pub em_steps: u32,
}

/// Sees each token as it is produced; returns `ENTMIN_CONTINUE`, or `ENTMIN_STOP` to end
/// the sequence the token belongs to (the answer, or under self-consistency that
/// sample). Called on the thread that called `entmin_chat` / `entmin_complete`. It may
/// call entmin functions (even on the same model) but must not unwind or longjmp out.
pub type entmin_token_fn = Option<unsafe extern "C" fn(token: *const entmin_token, user_data: *mut c_void) -> i32>;

/// The answer and its summary.
#[repr(C)]
pub struct entmin_result {
    /// The answer, UTF-8, NUL-terminated, stop string cut (under self-consistency: a
    /// sample that gave the winning answer). Owned by the caller: release it with
    /// `entmin_result_free`.
    pub text: *mut c_char,
    /// Bytes of `text` before its NUL.
    pub text_len: usize,
    /// Tokens of the prompt as the model saw it (chat template included).
    pub prompt_tokens: u32,
    /// Tokens generated for the answer, its final end-of-turn token included.
    pub completion_tokens: u32,
    /// Why it ended: one of `ENTMIN_FINISH_*`.
    pub finish: i32,
    /// EM-INF's Adam steps over the answer.
    pub em_steps: u32,
    /// Mean over the answer's tokens of the model's entropy (nats).
    pub mean_entropy: f32,
    /// Mean over the answer's tokens of the entropy of the distribution sampled.
    pub mean_sampled_entropy: f32,
    /// Seconds spent reading the prompt.
    pub prefill_secs: f64,
    /// Seconds spent generating after the prompt.
    pub decode_secs: f64,
}

/// The paper's EM-INF settings, 512 tokens at most, seed 0, no stop strings, no cancel
/// handle. Thread-safe.
#[no_mangle]
pub extern "C" fn entmin_generate_params_default() -> entmin_generate_params {
    let config = MethodConfig::new(Method::EmInf);
    let request = Request::chat("");
    entmin_generate_params {
        method: std::ptr::null(),
        max_tokens: request.max_tokens as u32,
        temperature: f32::NAN,
        top_p: config.sampling.top_p,
        top_k: config.sampling.top_k as u32,
        min_p: config.sampling.min_p,
        seed: request.seed,
        em_threshold: config.em_inf.threshold,
        em_lr: config.em_inf.lr,
        em_steps: config.em_inf.max_steps,
        em_kl: config.em_inf.kl_weight,
        votes: config.votes as u32,
        stop: std::ptr::null(),
        n_stop: 0,
        cancel: std::ptr::null_mut(),
    }
}

/// `prompt` with `params` as a request.
///
/// # Safety
/// The pointers in `params` are valid as its documentation says.
unsafe fn request(prompt: Prompt, params: &entmin_generate_params) -> Result<Request, Failure> {
    let name = utf8_or(params.method, "params.method", Method::EmInf.name())?;
    let method = Method::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        Failure::invalid(format!("params.method {name:?} is not a method ({})", known.join(", ")))
    })?;
    let mut config = MethodConfig::new(method);
    if !params.temperature.is_nan() {
        config.sampling.temperature = params.temperature;
    }
    config.sampling.top_p = params.top_p;
    config.sampling.top_k = params.top_k as usize;
    config.sampling.min_p = params.min_p;
    config.em_inf.threshold = params.em_threshold;
    config.em_inf.lr = params.em_lr;
    config.em_inf.max_steps = params.em_steps;
    config.em_inf.kl_weight = params.em_kl;
    config.votes = params.votes as usize;
    config.sampling.validate()?;
    config.em_inf.validate()?;
    let mut request =
        Request::new(prompt).method_config(config).max_tokens(params.max_tokens as usize).seed(params.seed);
    if params.n_stop > 0 {
        if params.stop.is_null() {
            return Err(Failure::invalid(format!("params.stop is NULL but params.n_stop is {}", params.n_stop)));
        }
        for (i, &s) in std::slice::from_raw_parts(params.stop, params.n_stop).iter().enumerate() {
            let s = utf8(s, &format!("params.stop[{i}]"))?;
            if s.is_empty() {
                return Err(Failure::invalid(format!("params.stop[{i}] is empty")));
            }
            request = request.stop(s);
        }
    }
    if !params.cancel.is_null() {
        request = request.cancel(CANCELS.get(params.cancel)?.flag.clone());
    }
    Ok(request)
}

fn finish_code(stop: StopReason) -> i32 {
    match stop {
        StopReason::StopToken => ENTMIN_FINISH_END_OF_TURN,
        StopReason::StopString => ENTMIN_FINISH_STOP_STRING,
        StopReason::MaxTokens => ENTMIN_FINISH_MAX_TOKENS,
        StopReason::ContextFull => ENTMIN_FINISH_CONTEXT_FULL,
        StopReason::Cancelled => ENTMIN_FINISH_CANCELLED,
    }
}

fn result_of(completion: &Completion) -> entmin_result {
    let g = completion.generation();
    // Generated text never holds a NUL byte in practice, but a token may decode to one.
    let text = CString::new(completion.text.replace('\0', "\u{FFFD}")).expect("NULs were replaced");
    entmin_result {
        text_len: text.as_bytes().len(),
        text: text.into_raw(),
        prompt_tokens: g.prompt_tokens as u32,
        completion_tokens: g.tokens.len() as u32,
        finish: finish_code(g.stop),
        em_steps: g.em_inf_steps() as u32,
        mean_entropy: g.mean_entropy(),
        mean_sampled_entropy: g.mean_sampled_entropy(),
        prefill_secs: g.prefill_secs,
        decode_secs: g.decode_secs,
    }
}

fn empty_result() -> entmin_result {
    entmin_result {
        text: std::ptr::null_mut(),
        text_len: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        finish: ENTMIN_FINISH_END_OF_TURN,
        em_steps: 0,
        mean_entropy: 0.0,
        mean_sampled_entropy: 0.0,
        prefill_secs: 0.0,
        decode_secs: 0.0,
    }
}

/// Runs `prompt` on `model`, streaming to `on_token` and filling `out_result`.
///
/// # Safety
/// As the exported functions below say.
pub(crate) unsafe fn run(
    model: *const entmin_model,
    prompt: impl FnOnce() -> Result<Prompt, Failure>,
    params: *const entmin_generate_params,
    on_token: entmin_token_fn,
    user_data: *mut c_void,
    out_result: *mut entmin_result,
) -> Result<(), Failure> {
    if let Some(out) = out_result.as_mut() {
        *out = empty_result();
    }
    let m = MODELS.get(model)?;
    let defaults = entmin_generate_params_default();
    let request = request(prompt()?, params.as_ref().unwrap_or(&defaults))?;
    // The piece with its NUL, reused for every token.
    let mut piece = Vec::new();
    let completion = m.engine.generate(&request, |step| {
        let Some(callback) = on_token else { return Flow::Continue };
        piece.clear();
        piece.extend_from_slice(step.text.as_bytes());
        piece.push(0);
        let token = entmin_token {
            text: piece.as_ptr().cast(),
            text_len: step.text.len(),
            id: step.token,
            sample: step.seq as u32,
            logprob: step.logprob,
            entropy: step.entropy,
            entropy_after: step.em_inf.map_or(step.entropy, |s| s.entropy_after),
            sampled_entropy: step.sampled_entropy,
            em_steps: step.em_inf.map_or(0, |s| s.steps),
        };
        // SAFETY: the caller vouched for the callback and its data.
        match callback(&token, user_data) {
            ENTMIN_CONTINUE => Flow::Continue,
            _ => Flow::Stop,
        }
    })?;
    if let Some(out) = out_result.as_mut() {
        *out = result_of(&completion);
    }
    Ok(())
}

/// Answers the conversation `messages[0..n_messages]` (put in the model's chat
/// template), streaming each token to `on_token` (NULL for none) with `user_data`, and
/// fills `*out_result` (NULL if you only stream). `params` may be NULL for the defaults
/// (EM-INF).
///
/// Ownership: the message strings are only read during the call. Release
/// `out_result` with `entmin_result_free`; on failure it holds no text (freeing it is
/// still fine). Thread-safe: generations on the same model from several threads run
/// side by side.
///
/// # Safety
/// `messages` points to `n_messages` messages whose strings are NUL-terminated;
/// `params` is NULL or valid as documented; `out_result` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn entmin_chat(
    model: *const entmin_model,
    messages: *const entmin_message,
    n_messages: usize,
    params: *const entmin_generate_params,
    on_token: entmin_token_fn,
    user_data: *mut c_void,
    out_result: *mut entmin_result,
) -> entmin_status {
    guard("entmin_chat", || run(model, || chat_prompt(messages, n_messages), params, on_token, user_data, out_result))
}

/// The conversation `messages[0..n_messages]` as a prompt.
///
/// # Safety
/// As `entmin_chat` says of `messages`.
pub(crate) unsafe fn chat_prompt(messages: *const entmin_message, n_messages: usize) -> Result<Prompt, Failure> {
    if n_messages == 0 {
        return Err(Failure::invalid("n_messages is 0: a chat needs a message"));
    }
    if messages.is_null() {
        return Err(Failure::invalid("messages is NULL"));
    }
    let mut chat = Vec::with_capacity(n_messages);
    for (i, m) in std::slice::from_raw_parts(messages, n_messages).iter().enumerate() {
        let role = utf8(m.role, &format!("messages[{i}].role"))?;
        let content = utf8(m.content, &format!("messages[{i}].content"))?;
        chat.push(Message::new(role, content));
    }
    Ok(Prompt::Chat(chat))
}

/// Continues `text` as it is (no chat template), otherwise as `entmin_chat`. With
/// `parse_special` true, control-token text in it (`<|im_start|>`) becomes those
/// tokens, as the model's tokenizer reads it; false keeps it characters — use false for
/// text from users.
///
/// # Safety
/// `text` is NUL-terminated; the rest as `entmin_chat`.
#[no_mangle]
pub unsafe extern "C" fn entmin_complete(
    model: *const entmin_model,
    text: *const c_char,
    parse_special: bool,
    params: *const entmin_generate_params,
    on_token: entmin_token_fn,
    user_data: *mut c_void,
    out_result: *mut entmin_result,
) -> entmin_status {
    guard("entmin_complete", || {
        let prompt = || Ok(Prompt::Raw { text: utf8(text, "text")?.to_string(), parse_special_tokens: parse_special });
        run(model, prompt, params, on_token, user_data, out_result)
    })
}

/// Releases the text of `*result` and sets it to NULL, so freeing twice is harmless.
/// NULL is refused. Thread-safe for distinct results.
///
/// # Safety
/// `result` is NULL or an `entmin_result` filled by entmin (or one whose `text` is NULL).
#[no_mangle]
pub unsafe extern "C" fn entmin_result_free(result: *mut entmin_result) -> entmin_status {
    guard("entmin_result_free", || {
        let r = result.as_mut().ok_or_else(|| Failure::invalid("result is NULL"))?;
        if !r.text.is_null() {
            drop(CString::from_raw(r.text));
        }
        *r = empty_result();
        Ok(())
    })
}
