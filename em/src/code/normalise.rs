//! A program's text with what does not change its behaviour removed, so that
//! self-consistency can count equal programs: comments, docstrings (a triple-quoted
//! string alone on its lines), blank lines and trailing spaces. A light scan of Python's
//! string and comment syntax, not a parser: two programs that differ only in spacing
//! inside a line still count as different.

/// `code` without comments, docstrings, blank lines and trailing spaces.
pub fn normalise_program(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            let triple = i + 2 < chars.len() && chars[i + 1] == c && chars[i + 2] == c;
            let quote_len = if triple { 3 } else { 1 };
            let mut j = i + quote_len;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '\\' {
                    j += 2;
                    continue;
                }
                if !triple && chars[j] == '\n' {
                    break;
                }
                if chars[j] == c && (!triple || (chars.get(j + 1) == Some(&c) && chars.get(j + 2) == Some(&c))) {
                    j += quote_len;
                    break;
                }
                j += 1;
            }
            let end = j.min(chars.len());
            let line_start = out.rfind('\n').map_or(0, |p| p + 1);
            let alone_before = out[line_start..].trim().is_empty();
            let mut k = end;
            while k < chars.len() && (chars[k] == ' ' || chars[k] == '\t') {
                k += 1;
            }
            let alone_after = k >= chars.len() || chars[k] == '\n' || chars[k] == '#';
            if triple && alone_before && alone_after {
                out.truncate(line_start);
            } else {
                out.extend(&chars[i..end]);
            }
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_docstrings_and_blank_lines_go_strings_stay() {
        let a = "def f(x):\n    \"\"\"Doc\n    more.\"\"\"\n\n    s = '# not a comment'  # a comment\n    return s + \"\"\"x\"\"\"\n";
        assert_eq!(normalise_program(a), "def f(x):\n    s = '# not a comment'\n    return s + \"\"\"x\"\"\"");
        let escaped = "s = 'it\\'s # here'\n";
        assert_eq!(normalise_program(escaped), "s = 'it\\'s # here'");
        assert_eq!(normalise_program("x = 1   \n\n\n# only\ny = 2"), "x = 1\ny = 2");
    }
}
