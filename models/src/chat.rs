//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template`
//! or tokenizer_config.json `chat_template`) rendered with minijinja, or ChatML
//! when the model ships none.

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::error::{ModelError, Result};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message { role: role.into(), content: content.into() }
    }
}

#[derive(Clone, Debug)]
pub struct ChatTemplate {
    /// Jinja source; None means ChatML.
    source: Option<String>,
    bos_token: String,
    eos_token: String,
}

/// Instructions a chat template may execute per rendering.
const TEMPLATE_FUEL: u64 = 1_000_000;

impl ChatTemplate {
    pub fn new(source: Option<String>, bos_token: &str, eos_token: &str) -> Self {
        ChatTemplate { source, bos_token: bos_token.into(), eos_token: eos_token.into() }
    }

    pub fn chatml() -> Self {
        ChatTemplate::new(None, "", "")
    }

    /// The Jinja source, or None for the built-in ChatML.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    pub fn is_model_template(&self) -> bool {
        self.source.is_some()
    }

    /// Render a conversation, ending with the assistant's turn opened.
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        let Some(source) = &self.source else { return Ok(render_chatml(messages)) };
        let mut env = Environment::new();
        // The template comes from the model file: bound the work it may do (real chat
        // templates take a few thousand steps) so a hostile one cannot hang the caller.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", source)
            .map_err(|e| ModelError::Tokenizer(format!("chat template does not parse: {e}")))?;
        let tmpl = env.get_template("chat").expect("template was just added");
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| ModelError::Tokenizer(format!("chat template failed to render: {e}")))
    }
}

fn render_chatml(messages: &[Message]) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_fallback_matches_the_documented_layout() {
        let t = ChatTemplate::chatml();
        let s = t.render(&[Message::new("system", "S"), Message::new("user", "Q")]).unwrap();
        assert_eq!(s, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn jinja_template_renders_and_raises() {
        let src = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{% if add_generation_prompt %}>{% endif %}";
        let t = ChatTemplate::new(Some(src.into()), "", "");
        assert_eq!(t.render(&[Message::new("user", "hi")]).unwrap(), "[user:hi]>");
        let bad = ChatTemplate::new(Some("{{ raise_exception('no system role') }}".into()), "", "");
        let err = bad.render(&[]).unwrap_err().to_string();
        assert!(err.contains("no system role"), "{err}");
        // A template that would loop for hours runs out of fuel instead.
        let endless = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
        let err = ChatTemplate::new(Some(endless.into()), "", "").render(&[]).unwrap_err().to_string();
        assert!(err.contains("fuel"), "{err}");
    }
}
