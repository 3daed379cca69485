//! From a model's answer to the program that is tested (docs/code-eval.md, "Extraction").
//!
//! - A fenced block (```python, ```py, ```python3 or an untagged fence; an unclosed last
//!   fence, cut by the token cap, counts): the first block that defines the entry point,
//!   else the last such block. It follows the problem's prompt, so the prompt's imports
//!   and helper functions stay and the block's definition replaces the prompt's stub.
//! - No fence, but a `def ENTRY_POINT(`: the code from its first line (import, def,
//!   class, decorator) to the first line of prose at column 0, after the prompt.
//! - Otherwise the answer continues the prompt (a base model's completion): cut at the
//!   first top-level `def`, `class`, `if`, `print(`, `#` or fence (the stop sequences of
//!   the HumanEval paper), and indented by four spaces when its first line is not.
//!
//! `if __name__ == "__main__":` blocks are removed everywhere: they would read stdin or
//! print, and the tests call the function themselves.

/// The program to test: `prompt` completed by `answer`.
pub fn extract_program(prompt: &str, answer: &str, entry_point: &str) -> String {
    let def = format!("def {entry_point}(");
    let blocks = fenced_blocks(answer);
    let chosen = blocks.iter().find(|b| defines(b, &def)).or(blocks.last());
    let body = match chosen {
        Some(block) if defines(block, &def) => return join(prompt, &strip_main_blocks(block)),
        Some(block) => block.to_string(),
        None if defines(answer, &def) => return join(prompt, &strip_main_blocks(&code_region(answer))),
        None => truncate_at_stop(answer),
    };
    complete(prompt, &strip_main_blocks(&body))
}

/// Whether `code` has a line starting (at any indentation) with `def`.
fn defines(code: &str, def: &str) -> bool {
    code.lines().any(|l| l.trim_start().starts_with(def))
}

fn join(prompt: &str, code: &str) -> String {
    format!("{}\n\n{}\n", prompt.trim_end(), code.trim_end())
}

/// The prompt followed by a function body: indented when the body is not.
fn complete(prompt: &str, body: &str) -> String {
    let first = body.lines().find(|l| !l.trim().is_empty());
    let body = match first {
        Some(l) if !l.starts_with(' ') && !l.starts_with('\t') => body
            .lines()
            .map(|l| if l.trim().is_empty() { String::new() } else { format!("    {l}") })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => body.to_string(),
    };
    let mut out = prompt.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(body.trim_start_matches('\n').trim_end());
    out.push('\n');
    out
}

/// Python-tagged or untagged fenced blocks, in order.
fn fenced_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(bool, Vec<&str>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match current.take() {
            None => {
                if let Some(tag) = trimmed.strip_prefix("```") {
                    let tag = tag.trim().to_ascii_lowercase();
                    current = Some((matches!(tag.as_str(), "" | "python" | "py" | "python3"), Vec::new()));
                }
            }
            Some((keep, lines)) => {
                if trimmed.starts_with("```") {
                    if keep {
                        blocks.push(dedent(&lines));
                    }
                } else {
                    let mut lines = lines;
                    lines.push(line);
                    current = Some((keep, lines));
                }
            }
        }
    }
    if let Some((true, lines)) = current {
        blocks.push(dedent(&lines));
    }
    blocks.retain(|b| !b.trim().is_empty());
    blocks
}

/// Remove the indentation every non-blank line shares (a fence inside a list item).
fn dedent(lines: &[&str]) -> String {
    let indent =
        lines.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    lines.iter().map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start() }).collect::<Vec<_>>().join("\n")
}

fn starts_code(line: &str) -> bool {
    ["import ", "from ", "def ", "class ", "@", "async def "].iter().any(|p| line.starts_with(p))
}

/// A top-level line that reads as code: a statement start, a comment, an assignment or
/// a call.
fn looks_like_code(line: &str) -> bool {
    if starts_code(line) || line.starts_with('#') || line.starts_with("if ") || line.starts_with("return ") {
        return true;
    }
    let ident_end = line.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(line.len());
    ident_end > 0 && line[ident_end..].trim_start().starts_with(['=', '(', '['])
}

/// Unfenced code with prose around it: from the first line that starts code to the
/// first prose line at column 0.
fn code_region(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| starts_code(l)) else { return text.to_string() };
    let mut out = Vec::new();
    for line in &lines[start..] {
        let top_level = !line.trim().is_empty() && !line.starts_with([' ', '\t']);
        if top_level && !looks_like_code(line) {
            break;
        }
        out.push(*line);
    }
    out.join("\n")
}

/// A completion up to the first stop sequence at column 0.
fn truncate_at_stop(text: &str) -> String {
    const STOPS: [&str; 6] = ["def ", "class ", "if ", "print(", "#", "```"];
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // The first line continues the prompt's last line; stops count from line two.
        if i > 0 && STOPS.iter().any(|s| line.starts_with(s)) {
            break;
        }
        out.push(line);
    }
    out.join("\n")
}

/// Remove top-level `if __name__ == ...:` blocks.
fn strip_main_blocks(code: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for line in code.lines() {
        let top_level = !line.trim().is_empty() && !line.starts_with([' ', '\t']);
        if top_level {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            skipping = compact.starts_with("if__name__==")
                || compact.starts_with("if'__main__'==")
                || compact.starts_with("if\"__main__\"==");
        }
        if !skipping {
            out.push(line);
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "from typing import List\n\n\ndef add(a: int, b: int) -> int:\n    \"\"\" Add two numbers.\n    >>> add(1, 2)\n    3\n    \"\"\"\n";

    fn run_ok(program: &str) {
        let out = std::process::Command::new("python3")
            .args(["-I", "-c", &format!("{program}\nassert add(2, 3) == 5, 'wrong'\n")])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "program failed:\n{program}\n{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn several_blocks_take_the_one_defining_the_entry_point() {
        let answer = "Here is how:\n```python\ndef add(a, b):\n    return a + b\n```\nExample:\n```python\nprint(add(1, 2))\n```\nDone.";
        let p = extract_program(PROMPT, answer, "add");
        assert!(p.contains("return a + b") && !p.contains("print(add"), "{p}");
        run_ok(&p);
    }

    #[test]
    fn the_last_block_without_a_definition_is_a_body() {
        let answer = "Sure.\n```\nreturn a + b\n```\n";
        let p = extract_program(PROMPT, answer, "add");
        assert!(p.ends_with("    return a + b\n"), "{p}");
        run_ok(&p);
    }

    #[test]
    fn an_unclosed_fence_cut_by_the_token_cap_counts() {
        let answer = "```python\nfrom typing import List\n\ndef add(a: int, b: int) -> int:\n    return a + b";
        run_ok(&extract_program(PROMPT, answer, "add"));
    }

    #[test]
    fn prose_after_unfenced_code_is_dropped_and_imports_kept() {
        let answer = "The solution:\n\nimport math\n\ndef add(a, b):\n    return math.fsum([a, b]) and a + b\n\nThis adds the two numbers.\nIt is O(1).";
        let p = extract_program(PROMPT, answer, "add");
        assert!(p.contains("import math") && !p.contains("This adds") && !p.contains("The solution"), "{p}");
        run_ok(&p);
    }

    #[test]
    fn main_blocks_are_removed() {
        let answer = "```python\ndef add(a, b):\n    return a + b\n\nif __name__ == \"__main__\":\n    a = int(input())\n    print(add(a, 1))\n```";
        let p = extract_program(PROMPT, answer, "add");
        assert!(!p.contains("input()") && !p.contains("__main__"), "{p}");
        run_ok(&p);
    }

    #[test]
    fn a_completion_is_indented_and_cut_at_the_stop_sequences() {
        let p = extract_program(PROMPT, "    return a + b\n\n\ndef unrelated():\n    pass\nprint(1)\n", "add");
        assert!(!p.contains("unrelated") && !p.contains("print(1)"), "{p}");
        run_ok(&p);
        let p = extract_program(PROMPT, "return a + b\n", "add");
        assert!(p.ends_with("    return a + b\n"), "{p}");
        run_ok(&p);
    }

    #[test]
    fn a_repeated_signature_replaces_the_stub_and_keeps_the_prompt_helpers() {
        let prompt = "def helper(x):\n    return x\n\n\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n";
        let answer = "```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n    return helper(a) + b\n```";
        let p = extract_program(prompt, answer, "add");
        run_ok(&p);
    }

    #[test]
    fn an_indented_fence_in_a_list_item_is_dedented() {
        let answer = "1. Write it:\n\n    ```python\n    def add(a, b):\n        return a + b\n    ```\n";
        run_ok(&extract_program(PROMPT, answer, "add"));
    }

    #[test]
    fn blocks_in_other_languages_are_ignored() {
        let answer = "```python\ndef add(a, b):\n    return a + b\n```\nRun:\n```bash\npython3 add.py\n```";
        run_ok(&extract_program(PROMPT, answer, "add"));
    }
}
