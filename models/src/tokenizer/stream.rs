//! Streaming detokenisation: text as each generated id completes it.

use crate::error::ModelError;

use super::Tokenizer;

/// Incremental detokeniser for streaming: push ids one at a time and get the text they
/// complete. Text is held back while it ends in an incomplete UTF-8 character (a byte-level
/// token carrying only part of a character), so the concatenated pieces equal
/// `decode(all ids)` once the last character is complete.
pub struct DecodeStream<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    /// Recent ids: the context chunk already emitted (`..prefix_index`) and pending ones.
    ids: Vec<u32>,
    /// Text of `ids[..prefix_index]`, already emitted.
    prefix: String,
    prefix_index: usize,
}

impl<'a> DecodeStream<'a> {
    pub fn new(tok: &'a Tokenizer, skip_special: bool) -> Self {
        DecodeStream { tok, skip_special, ids: Vec::new(), prefix: String::new(), prefix_index: 0 }
    }

    /// Adds one id; returns the newly completed text ("" when it is still pending).
    pub fn push(&mut self, id: u32) -> Result<String, ModelError> {
        if self.prefix.is_empty() && !self.ids.is_empty() {
            let text = self.tok.decode(&self.ids, self.skip_special)?;
            if !text.ends_with('\u{FFFD}') {
                self.prefix = text;
                self.prefix_index = self.ids.len();
            }
        }
        self.ids.push(id);
        let text = self.tok.decode(&self.ids, self.skip_special)?;
        if text.len() <= self.prefix.len() || text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        let Some(new) = text.strip_prefix(self.prefix.as_str()) else {
            return Err(ModelError::Tokenizer(format!(
                "streaming decode: text {text:?} after id {id} does not extend {:?}",
                self.prefix
            )));
        };
        let new = new.to_string();
        self.ids.drain(..self.prefix_index);
        self.prefix = self.tok.decode(&self.ids, self.skip_special)?;
        self.prefix_index = self.ids.len();
        Ok(new)
    }

    /// Text still held back (an incomplete character at the very end, decoded lossily).
    pub fn finish(self) -> Result<String, ModelError> {
        let text = self.tok.decode(&self.ids, self.skip_special)?;
        Ok(text.get(self.prefix.len()..).unwrap_or_default().to_string())
    }
}
