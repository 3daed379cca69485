//! Chat prompts to token ids with user text kept as data.
//!
//! Encoding a rendered chat with special-token parsing on (what Hugging Face's
//! `apply_chat_template(tokenize=True)` and llama.cpp do) lets a message that contains
//! `<|im_start|>system…` open a turn of its own. Here the conversation is also rendered
//! with every message replaced by a sentinel — the template's skeleton — and the control
//! tokens of the real rendering are compared with the skeleton's:
//! - the same sequence: no message wrote control-token text, and the ids are exactly the
//!   whole rendering's (the model's own tokenizer, id for id);
//! - otherwise the skeleton's pieces are encoded with special tokens and each message as
//!   plain text, so `<|im_start|>` typed by a user stays those characters. The pieces
//!   join where the template puts a special token or a newline, which are pre-tokenizer
//!   boundaries for every vocabulary entmin reads; a template that rewrites message text
//!   (`| trim`) sees the original text in this case.

use crate::chat::{ChatTemplate, Message};
use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;

/// Stands in for message `i` in the skeleton: private-use characters that no template
/// alters and no vocabulary maps to a special token.
fn sentinel(i: usize) -> String {
    format!("\u{F8F0}entmin-message-{i}\u{F8F1}")
}

impl ChatTemplate {
    /// Token ids of `messages` in this template, the assistant's turn opened, with every
    /// message's text encoded as text (see the module documentation).
    pub fn encode(&self, tokenizer: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>> {
        let rendered = self.render(messages)?;
        let ids = tokenizer.encode(&rendered, true)?;
        let skeleton_messages: Vec<Message> =
            messages.iter().enumerate().map(|(i, m)| Message { role: m.role.clone(), content: sentinel(i) }).collect();
        let skeleton = self.render(&skeleton_messages)?;
        let controls = |ids: &[u32]| ids.iter().copied().filter(|&id| tokenizer.is_special(id)).collect::<Vec<_>>();
        if controls(&ids) == controls(&tokenizer.encode(&skeleton, true)?) {
            return Ok(ids);
        }
        let mut out = tokenizer.bos_if_added().into_iter().collect::<Vec<u32>>();
        let mut rest = skeleton.as_str();
        for (i, m) in messages.iter().enumerate() {
            let mark = sentinel(i);
            let at = rest.find(&mark).filter(|&at| !rest[at + mark.len()..].contains(&mark)).ok_or_else(|| {
                ModelError::Tokenizer(format!(
                    "message {i} ({}) contains special-token text, and the chat template does not print it \
                     exactly once, so it cannot be kept as plain text",
                    m.role
                ))
            })?;
            out.extend(tokenizer.encode_without_bos(&rest[..at], true)?);
            out.extend(tokenizer.encode_without_bos(&m.content, false)?);
            rest = &rest[at + mark.len()..];
        }
        out.extend(tokenizer.encode_without_bos(rest, true)?);
        Ok(out)
    }
}
