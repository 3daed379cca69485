//! Token ids in and out: what the model sees for a text or a conversation, and the
//! text of ids. Results go into caller buffers, with the size needed always reported.

use std::ffi::{c_char, c_void};

use entmin_rs::Prompt;

use crate::generate::{chat_prompt, entmin_generate_params, entmin_message, entmin_result, entmin_token_fn, run};
use crate::model::{entmin_model, MODELS};
use crate::status::{entmin_status, guard, utf8, Failure, ENTMIN_ERR_BUFFER_TOO_SMALL, ENTMIN_ERR_INVALID_ARGUMENT};

/// Copies `ids` into the caller's buffer of `capacity`, reporting the count needed.
///
/// # Safety
/// `out_ids` is NULL or writable for `capacity` ids; `out_n` is NULL or writable.
unsafe fn give_ids(ids: &[u32], out_ids: *mut u32, capacity: usize, out_n: *mut usize) -> Result<(), Failure> {
    let out_n = out_n.as_mut().ok_or_else(|| Failure::invalid("out_n is NULL"))?;
    *out_n = ids.len();
    if ids.len() > capacity {
        return Err(Failure {
            status: ENTMIN_ERR_BUFFER_TOO_SMALL,
            message: format!("{} tokens do not fit in capacity {capacity} (*out_n says how many)", ids.len()),
        });
    }
    if !ids.is_empty() {
        if out_ids.is_null() {
            return Err(Failure::invalid("out_ids is NULL"));
        }
        std::ptr::copy_nonoverlapping(ids.as_ptr(), out_ids, ids.len());
    }
    Ok(())
}

/// Token ids of `text` as it is (no chat template), `parse_special` as in
/// `entmin_complete`. Writes them to `out_ids[0..capacity]` and their count to
/// `*out_n`. When they do not fit, nothing is written but `*out_n`, and the status is
/// `ENTMIN_ERR_BUFFER_TOO_SMALL`: call with `out_ids` NULL and `capacity` 0 to learn
/// the size. Thread-safe.
///
/// # Safety
/// `text` is NUL-terminated; `out_ids` is NULL or writable for `capacity` ids;
/// `out_n` is writable.
#[no_mangle]
pub unsafe extern "C" fn entmin_tokenize(
    model: *const entmin_model,
    text: *const c_char,
    parse_special: bool,
    out_ids: *mut u32,
    capacity: usize,
    out_n: *mut usize,
) -> entmin_status {
    guard("entmin_tokenize", || {
        let m = MODELS.get(model)?;
        let text = utf8(text, "text")?;
        if text.is_empty() {
            // Not a prompt (the library refuses those), but a fine thing to tokenize.
            return give_ids(&[], out_ids, capacity, out_n);
        }
        let prompt = Prompt::Raw { text: text.to_string(), parse_special_tokens: parse_special };
        give_ids(&m.engine.encode(&prompt)?, out_ids, capacity, out_n)
    })
}

/// Token ids of the conversation `messages[0..n_messages]` in the model's chat
/// template, ending where the answer starts: exactly the prompt `entmin_chat` feeds
/// the model. Buffers as `entmin_tokenize`. Thread-safe.
///
/// # Safety
/// As `entmin_chat` for the messages, as `entmin_tokenize` for the buffers.
#[no_mangle]
pub unsafe extern "C" fn entmin_tokenize_chat(
    model: *const entmin_model,
    messages: *const entmin_message,
    n_messages: usize,
    out_ids: *mut u32,
    capacity: usize,
    out_n: *mut usize,
) -> entmin_status {
    guard("entmin_tokenize_chat", || {
        let m = MODELS.get(model)?;
        give_ids(&m.engine.encode(&chat_prompt(messages, n_messages)?)?, out_ids, capacity, out_n)
    })
}

/// The text of `ids[0..n_ids]` (special tokens skipped), UTF-8, into
/// `out_text[0..capacity]` with its NUL, and its length without the NUL into
/// `*out_len`. When it does not fit (`capacity` < length + 1), nothing is written but
/// `*out_len`, and the status is `ENTMIN_ERR_BUFFER_TOO_SMALL`. Thread-safe.
///
/// # Safety
/// `ids` points to `n_ids` ids; `out_text` is NULL or writable for `capacity` bytes;
/// `out_len` is writable.
#[no_mangle]
pub unsafe extern "C" fn entmin_detokenize(
    model: *const entmin_model,
    ids: *const u32,
    n_ids: usize,
    out_text: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> entmin_status {
    guard("entmin_detokenize", || {
        let out_len = out_len.as_mut().ok_or_else(|| Failure::invalid("out_len is NULL"))?;
        *out_len = 0;
        let m = MODELS.get(model)?;
        let ids = token_ids(ids, n_ids)?;
        let vocab = m.engine.info().vocab_size;
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Failure::invalid(format!("token {bad} is outside the vocabulary of {vocab}")));
        }
        let text = m.engine.decode(ids)?;
        *out_len = text.len();
        if text.len() >= capacity {
            return Err(Failure {
                status: ENTMIN_ERR_BUFFER_TOO_SMALL,
                message: format!("{} bytes and a NUL do not fit in capacity {capacity}", text.len()),
            });
        }
        if out_text.is_null() {
            return Err(Failure { status: ENTMIN_ERR_INVALID_ARGUMENT, message: "out_text is NULL".into() });
        }
        std::ptr::copy_nonoverlapping(text.as_ptr(), out_text.cast::<u8>(), text.len());
        *out_text.add(text.len()) = 0;
        Ok(())
    })
}

/// `ids[0..n_ids]`, which must be at least one.
///
/// # Safety
/// `ids` points to `n_ids` ids when it is not NULL.
unsafe fn token_ids<'a>(ids: *const u32, n_ids: usize) -> Result<&'a [u32], Failure> {
    if n_ids == 0 {
        return Ok(&[]);
    }
    if ids.is_null() {
        return Err(Failure::invalid(format!("ids is NULL but n_ids is {n_ids}")));
    }
    Ok(std::slice::from_raw_parts(ids, n_ids))
}

/// Continues the token ids `ids[0..n_ids]` as they are (from `entmin_tokenize` or
/// `entmin_tokenize_chat`, perhaps edited), otherwise as `entmin_chat`. Ids outside the
/// vocabulary are refused.
///
/// # Safety
/// `ids` points to `n_ids` ids; the rest as `entmin_chat`.
#[no_mangle]
pub unsafe extern "C" fn entmin_generate_tokens(
    model: *const entmin_model,
    ids: *const u32,
    n_ids: usize,
    params: *const entmin_generate_params,
    on_token: entmin_token_fn,
    user_data: *mut c_void,
    out_result: *mut entmin_result,
) -> entmin_status {
    guard("entmin_generate_tokens", || {
        let prompt = || Ok(Prompt::Tokens(token_ids(ids, n_ids)?.to_vec()));
        run(model, prompt, params, on_token, user_data, out_result)
    })
}
