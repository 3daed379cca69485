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
        check_repetition(source)?;
        env.add_template("chat", source)
            .map_err(|e| ModelError::Tokenizer(format!("chat template does not parse: {e}")))?;
        let tmpl = env.get_template("chat").expect("template was just added");
        let mut out = BoundedOutput(Vec::new());
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tmpl.render_captured_to(
                context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => &self.bos_token,
                    eos_token => &self.eos_token,
                },
                &mut out,
            )
        }));
        match rendered {
            Ok(Ok(_)) => String::from_utf8(out.0)
                .map_err(|e| ModelError::Tokenizer(format!("chat template rendered invalid UTF-8: {e}"))),
            Ok(Err(e)) => Err(ModelError::Tokenizer(format!("chat template failed to render: {e}"))),
            Err(payload) if payload.is::<PromptTooLarge>() => Err(ModelError::Tokenizer(format!(
                "chat template failed to render: its output exceeds {} MiB",
                MAX_PROMPT_BYTES >> 20
            ))),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }
}

/// Refuse `*` inside template code unless a string literal is beside it. Fuel counts
/// instructions, but one `*` repeats a sequence lazily four billion times, and printing
/// it, testing `in` it or joining it then runs for minutes with no instruction counted
/// (found by fuzzing). String repetition is capped by minijinja; chat templates do not
/// otherwise multiply.
fn check_repetition(source: &str) -> Result<()> {
    let b = source.as_bytes();
    let (mut i, mut in_code, mut quote) = (0, false, None::<u8>);
    // Whether the last significant thing in the template code was a string literal.
    let mut prev_string = false;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
                prev_string = true;
            }
        } else if !in_code {
            in_code = c == b'{' && matches!(b.get(i + 1), Some(b'{') | Some(b'%'));
            i += in_code as usize;
        } else if (c == b'}' || c == b'%') && b.get(i + 1) == Some(&b'}') {
            (in_code, i) = (false, i + 1);
        } else if c == b'\'' || c == b'"' {
            quote = Some(c);
        } else if c == b'*' && b.get(i + 1) == Some(&b'*') {
            i += 1; // power, not repetition
            prev_string = false;
        } else if c == b'*' {
            let next = b[i + 1..].iter().find(|x| !x.is_ascii_whitespace()).copied().unwrap_or(0);
            if !(prev_string || next == b'\'' || next == b'"') {
                return Err(ModelError::Tokenizer(format!(
                    "chat template uses `*` at byte {i} on something other than a string literal: sequence \
                     repetition is not bounded by the template fuel limit, so entmin refuses it"
                )));
            }
            prev_string = false;
        } else if !c.is_ascii_whitespace() {
            prev_string = false;
        }
        i += 1;
    }
    Ok(())
}

fn render_chatml(messages: &[Message]) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

/// Largest prompt a template may render: far beyond any context window. Fuel counts
/// template instructions, but one instruction can print a sequence repeated billions of
/// times (`{{ ['x'] * 4000000000 }}`, found by fuzzing), so the output is bounded too.
const MAX_PROMPT_BYTES: usize = 16 << 20;

/// Unwinds out of a rendering whose output passed [`MAX_PROMPT_BYTES`]: returning an I/O
/// error would only stop the writing, while minijinja went on iterating the sequence.
struct PromptTooLarge;

/// A writer that stops the rendering once it would grow past [`MAX_PROMPT_BYTES`].
struct BoundedOutput(Vec<u8>);

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_PROMPT_BYTES {
            // resume_unwind: no panic message, caught in `render`.
            std::panic::resume_unwind(Box::new(PromptTooLarge));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
        // Sequence repetition is refused; string repetition and powers are not.
        for huge in ["{{ ['role'] * 4264264244 }}", "{% if 'x' in m[:] * 53333333 %}{% endif %}", "{{ (a) *3 }}"] {
            let err = ChatTemplate::new(Some(huge.into()), "", "").render(&[]).unwrap_err().to_string();
            assert!(err.contains("uses `*`"), "{huge}: {err}");
        }
        let fine = ChatTemplate::new(Some("{{ '-' * 3 }}{{ 2 ** 3 }}{{ \"a*b\" }}*".into()), "", "");
        assert_eq!(fine.render(&[]).unwrap(), "---8a*b*");
        // What is printed is bounded too (a prompt far beyond any context is an error).
        let wide = "{% for i in range(100000) %}{{ '0123456789' * 100 }}{% endfor %}";
        let err = ChatTemplate::new(Some(wide.into()), "", "").render(&[]).unwrap_err().to_string();
        assert!(err.contains("exceeds 16 MiB"), "{err}");
    }
}
