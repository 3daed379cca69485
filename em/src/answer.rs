//! Math answer checking for `entmin eval` (PAPER.md, "Answer checking used by the
//! evaluations"): take the last `\boxed{...}` (fallback: last number), normalise
//! the LaTeX, and compare for equivalence (string, numeric, tuple/interval, set).
//! No symbolic algebra: numbers are compared through a small evaluator of constant
//! expressions (`+ - * / ^`, `\sqrt`, `\pi`, `\cdot`, `\times`, implicit products).

const TEXT_CMDS: [&str; 8] = ["text", "textbf", "textrm", "textit", "mbox", "mathrm", "mathbf", "operatorname"];

/// The model's final answer: content of the LAST complete `\boxed{...}` (balanced
/// braces; also `\boxed 5` and `\fbox{}`), else the last number in the text
/// (integers, decimals, negatives, fractions `3/4`, thousands separators `1,000`),
/// else None. An empty last `\boxed{}` gives None.
pub fn extract_answer(text: &str) -> Option<String> {
    match last_boxed(text) {
        Some(b) => Some(b.trim().to_string()).filter(|b| !b.is_empty()),
        None => last_number(text),
    }
}

/// The gold answer of a GSM8K solution: the text after `#### ` (`"#### 1,234"` -> `"1,234"`).
pub fn gsm8k_gold(solution: &str) -> Option<String> {
    let rest = &solution[solution.rfind("####")? + 4..];
    let line = rest.trim().lines().next()?.trim();
    Some(line.to_string()).filter(|l| !l.is_empty())
}

/// Canonical form used for comparison (see the module docs and the tests).
pub fn normalize(answer: &str) -> String {
    normalize_full(answer).0
}

/// Equivalent answers: equal after [`normalize`]; or both evaluate to numbers equal
/// within relative 1e-6 (absolute 1e-9), where a side written with `%` may also be
/// read as p/100; or tuples/intervals with identical brackets and element-wise
/// equivalent elements; or sets (`{..}` or plain comma lists) equal in any order.
pub fn is_equivalent(predicted: &str, gold: &str) -> bool {
    let (a, pa) = normalize_full(predicted);
    let (b, pb) = normalize_full(gold);
    eq_norm(&a, pa, &b, pb)
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

fn starts(c: &[char], i: usize, pat: &str) -> bool {
    let mut k = i;
    for p in pat.chars() {
        if k >= c.len() || c[k] != p {
            return false;
        }
        k += 1;
    }
    true
}

/// Index of the `}` closing the `{` at `open` (escaped `\{` `\}` are skipped).
fn match_brace(c: &[char], open: usize) -> Option<usize> {
    let (mut depth, mut i) = (0usize, open);
    while i < c.len() {
        match c[i] {
            '\\' => i += 1,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// End (exclusive) of the command name starting at the `\` at `i`.
fn cmd_end(c: &[char], i: usize) -> usize {
    let mut j = i + 1;
    while j < c.len() && c[j].is_ascii_alphabetic() {
        j += 1;
    }
    j
}

fn last_boxed(text: &str) -> Option<String> {
    let c = chars(text);
    let (mut best, mut i) = (None, 0);
    while i < c.len() {
        if !(starts(&c, i, "\\boxed") || starts(&c, i, "\\fbox")) {
            i += 1;
            continue;
        }
        let mut j = cmd_end(&c, i);
        if j - i != 6 && j - i != 5 {
            i = j; // e.g. \boxedx: some other command
            continue;
        }
        while j < c.len() && c[j].is_whitespace() {
            j += 1;
        }
        if j < c.len() && c[j] == '{' {
            match match_brace(&c, j) {
                Some(end) => {
                    best = Some(c[j + 1..end].iter().collect());
                    i = end + 1;
                }
                None => i = j + 1, // truncated: ignored
            }
        } else {
            let s = j;
            while j < c.len() && !c[j].is_whitespace() && c[j] != '$' {
                j += 1;
            }
            if j > s {
                best = Some(c[s..j].iter().collect());
            }
            i = j.max(i + 1);
        }
    }
    best
}

fn last_number(text: &str) -> Option<String> {
    let c = chars(text);
    let n = c.len();
    let dig = |k: usize| k < n && c[k].is_ascii_digit();
    let (mut last, mut i) = (None, 0);
    while i < n {
        if !(dig(i) || (c[i] == '.' && dig(i + 1))) {
            i += 1;
            continue;
        }
        let mut j = i;
        while dig(j) {
            j += 1;
        }
        if j > i && j - i <= 3 {
            while j < n && c[j] == ',' && dig(j + 1) && dig(j + 2) && dig(j + 3) && !dig(j + 4) {
                j += 4;
            }
        }
        if j < n && (c[j] == '.' || c[j] == '/') && dig(j + 1) {
            j += 1;
            while dig(j) {
                j += 1;
            }
        }
        let neg = i > 0
            && (c[i - 1] == '-' || c[i - 1] == '\u{2212}')
            && (i < 2 || !(c[i - 2].is_alphanumeric() || matches!(c[i - 2], ')' | ']' | '}')));
        let s: String = c[i..j].iter().collect();
        last = Some(if neg { format!("-{s}") } else { s });
        i = j;
    }
    last
}

/// Removes `\name` when it is not the prefix of a longer command (`\left` but not `\leftarrow`).
fn remove_cmd(s: &str, name: &str) -> String {
    let (c, pat) = (chars(s), format!("\\{name}"));
    let (mut out, mut i) = (String::new(), 0);
    while i < c.len() {
        if starts(&c, i, &pat) && cmd_end(&c, i) == i + pat.len() {
            i += pat.len();
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Drops a trailing unit `\text{ cm}` (optionally `^2`/`^{3}`) when something precedes it.
fn strip_trailing_unit(s: &str) -> Option<String> {
    let c = chars(s.trim_end());
    let mut end = c.len();
    if end >= 2 && c[end - 2] == '^' && c[end - 1].is_ascii_digit() {
        end -= 2;
    } else if end >= 4 && starts(&c, end - 4, "^{") && c[end - 2].is_ascii_digit() && c[end - 1] == '}' {
        end -= 4;
    }
    if end == 0 || c[end - 1] != '}' {
        return None;
    }
    // find the '{' matching c[end - 1]
    let (mut depth, mut open) = (0i32, end);
    while open > 0 {
        open -= 1;
        match c[open] {
            '}' => depth += 1,
            '{' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            break;
        }
    }
    if depth != 0 {
        return None;
    }
    let mut k = open;
    while k > 0 && c[k - 1].is_ascii_alphabetic() {
        k -= 1;
    }
    let name: String = c[k..open].iter().collect();
    let content: String = c[open + 1..end - 1].iter().collect();
    let rest: String = c[..k.saturating_sub(1)].iter().collect();
    let unit_like = content.trim().starts_with(|ch: char| ch.is_alphabetic());
    let ok = k > 0 && c[k - 1] == '\\' && TEXT_CMDS.contains(&name.as_str()) && unit_like;
    (ok && !rest.trim().is_empty()).then(|| rest.trim().to_string())
}

/// `\text{X}` (and friends) -> `X`.
fn unwrap_text_cmds(s: &str) -> String {
    let c = chars(s);
    let (mut out, mut i) = (String::new(), 0);
    while i < c.len() {
        if c[i] == '\\' {
            let e = cmd_end(&c, i);
            let name: String = c[i + 1..e].iter().collect();
            if TEXT_CMDS.contains(&name.as_str()) && e < c.len() && c[e] == '{' {
                if let Some(close) = match_brace(&c, e) {
                    out.push_str(&unwrap_text_cmds(&c[e + 1..close].iter().collect::<String>()));
                    i = close + 1;
                    continue;
                }
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

fn is_plain_number(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
        && eval(&s.replace(',', "")).is_some()
        && s.chars().all(|c| c.is_ascii_digit() || ".,-/".contains(c))
}

/// Removes all whitespace except a space between a `\command` and a following letter.
fn squeeze_spaces(s: &str) -> String {
    let c = chars(s);
    let (mut out, mut i) = (String::new(), 0);
    while i < c.len() {
        if c[i].is_whitespace() {
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let mut k = i;
            while k > 0 && c[k - 1].is_ascii_alphabetic() {
                k -= 1;
            }
            if k < i && k > 0 && c[k - 1] == '\\' && j < c.len() && c[j].is_ascii_alphabetic() {
                out.push(' ');
            }
            i = j;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// One macro argument at `j`: `{group}` (inner), a `\command` token or one char.
fn read_arg(c: &[char], j: usize) -> Option<(String, usize)> {
    let ch = *c.get(j)?;
    if ch == '{' {
        let e = match_brace(c, j)?;
        return Some((c[j + 1..e].iter().collect(), e + 1));
    }
    let e = if ch == '\\' { cmd_end(c, j) } else { j + 1 };
    Some((c[j..e].iter().collect(), e))
}

fn is_atom(d: &str) -> bool {
    let c = chars(d);
    if d.chars().all(|ch| ch.is_ascii_digit() || ch == '.') || (c.len() == 1 && c[0].is_alphabetic()) {
        return true;
    }
    let e = if c.first() == Some(&'\\') { cmd_end(&c, 0) } else { return false };
    e == c.len() || (e > 1 && c[e] == '{' && match_brace(&c, e) == Some(c.len() - 1))
}

/// Rewrites `\sqrt2` -> `\sqrt{2}`, `\frac{a}{b}` -> `a/b` (parenthesised when
/// needed), `^{2}` -> `^2`, recursively.
fn fix_commands(s: &str) -> String {
    let c = chars(s);
    let (mut out, mut i) = (String::new(), 0);
    while i < c.len() {
        if c[i] == '\\' {
            let e = cmd_end(&c, i);
            if e == i + 1 {
                out.extend(&c[i..(i + 2).min(c.len())]);
                i += 2;
                continue;
            }
            let name: String = c[i + 1..e].iter().collect();
            if name == "sqrt" {
                let mut j = e;
                let mut index = String::new();
                if j < c.len() && c[j] == '[' {
                    if let Some(k) = c[j..].iter().position(|&x| x == ']') {
                        index = format!("[{}]", fix_commands(&c[j + 1..j + k].iter().collect::<String>()));
                        j += k + 1;
                    }
                }
                if let Some((arg, j2)) = read_arg(&c, j) {
                    out.push_str(&format!("\\sqrt{index}{{{}}}", fix_commands(&arg)));
                    i = j2;
                    continue;
                }
            } else if name == "frac" {
                if let Some((a, j1)) = read_arg(&c, e) {
                    if let Some((b, j2)) = read_arg(&c, j1) {
                        let (a, b) = (fix_commands(&a), fix_commands(&b));
                        let num_paren =
                            a.contains(['+', '/']) || a.chars().skip(1).any(|x| x == '-') || a.contains("\\pm");
                        let a = if num_paren { format!("({a})") } else { a };
                        let b = if is_atom(&b) { b } else { format!("({b})") };
                        out.push_str(&format!("{a}/{b}"));
                        i = j2;
                        continue;
                    }
                }
            }
            out.extend(&c[i..e]);
            i = e;
            continue;
        }
        if c[i] == '{' || ((c[i] == '^' || c[i] == '_') && c.get(i + 1) == Some(&'{')) {
            let open = if c[i] == '{' { i } else { i + 1 };
            if let Some(end) = match_brace(&c, open) {
                let inner = fix_commands(&c[open + 1..end].iter().collect::<String>());
                if c[i] != '{' {
                    out.push(c[i]);
                }
                if c[i] != '{' && inner.chars().count() == 1 {
                    out.push_str(&inner);
                } else {
                    out.push_str(&format!("{{{inner}}}"));
                }
                i = end + 1;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Whole-answer mixed number `2\frac{1}{3}` -> `7/3`.
fn mixed_number(s: &str) -> Option<String> {
    let (sign, body) = s.strip_prefix('-').map_or(("", s), |b| ("-", b));
    let k = body.find("\\frac")?;
    let whole: u64 = body[..k].parse().ok().filter(|_| body[..k].bytes().all(|b| b.is_ascii_digit()))?;
    let c = chars(&body[k + 5..]);
    let (a, j1) = read_arg(&c, 0)?;
    let (b, j2) = read_arg(&c, j1)?;
    let (n, d): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    if j2 != c.len() || d == 0 {
        return None;
    }
    Some(format!("{sign}{}/{d}", whole.checked_mul(d)?.checked_add(n)?))
}

fn split_top(s: &str) -> Vec<String> {
    let (mut parts, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for ch in s.chars() {
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    parts
}

/// `x=5` -> `5` when the left side is a single (possibly subscripted) symbol.
fn strip_assignment(item: &str) -> &str {
    for pre in ["\\in", "\\to"] {
        let c = chars(item);
        if c.len() > 1 && c[0].is_ascii_alphabetic() && starts(&c, 1, pre) && cmd_end(&c, 1) == 1 + pre.len() {
            return &item[1 + pre.len()..];
        }
    }
    if item.matches('=').count() != 1 {
        return item;
    }
    let (lhs, rhs) = item.split_once('=').unwrap();
    let c = chars(lhs);
    let mut k = if c.first() == Some(&'\\') { cmd_end(&c, 0) } else { 1 };
    if c.is_empty() || !c[k - 1].is_ascii_alphabetic() {
        return item;
    }
    if c.get(k) == Some(&'_') {
        k += 1;
    }
    let tail_ok = c[k.min(c.len())..].iter().all(|ch| ch.is_ascii_alphanumeric() || "{}".contains(*ch));
    if tail_ok && c.len() <= k + 4 && !rhs.is_empty() {
        rhs
    } else {
        item
    }
}

fn strip_trailing_dots(s: &mut String) {
    while s.ends_with('.') && !s.ends_with("\\.") {
        s.pop();
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
    for (from, to) in [
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\:", ""),
        ("\\ ", " "),
        ("~", " "),
        ("\\qquad", " "),
        ("\\quad", " "),
        ("\\displaystyle", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("bmatrix", "pmatrix"),
    ] {
        s = s.replace(from, to);
    }
    s = remove_cmd(&remove_cmd(&s, "left"), "right");
    s = s.replace("\\{", "{").replace("\\}", "}").replace("\\$", "").replace('$', "");
    let percent = s.contains('%');
    s = s.replace("\\%", "").replace('%', "");
    while let Some(t) = strip_trailing_unit(&s) {
        s = t;
    }
    s = unwrap_text_cmds(&s).trim().to_string();
    strip_trailing_dots(&mut s);
    // plain-word units: "5 dollars" -> "5"
    let prefix = s.trim_end_matches(|ch: char| ch.is_ascii_alphabetic() || ch == ' ');
    let suffix = &s[prefix.len()..];
    if suffix.starts_with(' ') && suffix.trim().len() >= 2 && is_plain_number(prefix.trim()) {
        s = prefix.trim().to_string();
    }
    s = squeeze_spaces(&s);
    for deg in ["^{\\circ}", "^\\circ", "\\degree"] {
        s = s.replace(deg, "");
    }
    if !s.contains("\\infty") {
        s = s.replace("infinity", "\\infty");
        if s == "inf" {
            s = "\\infty".into();
        }
    }
    s = s.replace("+\\infty", "\\infty").replace("\\varnothing", "\\emptyset");
    if s == "{}" {
        s = "\\emptyset".into();
    }
    s = mixed_number(&s).unwrap_or_else(|| fix_commands(&s));
    // thousands separators, only when the whole answer is one such number
    let t = s.trim_start_matches(['-', '+']);
    let groups: Vec<&str> = t.split('.').next().unwrap_or("").split(',').collect();
    if groups.len() > 1
        && t.matches('.').count() <= 1
        && is_plain_number(t)
        && !t.contains('/')
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
    {
        s = s.replace(',', "");
    }
    s = split_top(&s).iter().map(|p| strip_assignment(p)).collect::<Vec<_>>().join(",");
    if s.starts_with('+') && s[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        s.remove(0);
    }
    let c = chars(&s);
    if c.len() == 3 && c[0] == '(' && c[2] == ')' && c[1].is_ascii_alphabetic() {
        s = c[1].to_string();
    }
    if s.starts_with('{') && match_brace(&c, 0) == Some(c.len() - 1) && split_top(&s[1..s.len() - 1]).len() == 1 {
        s = s[1..s.len() - 1].to_string();
    }
    strip_trailing_dots(&mut s);
    (s.replace('\u{1}', "\\\\"), percent)
}

/// Outer bracket pair spanning the whole string: (open, close, inner).
fn bracketed(s: &str) -> Option<(char, char, &str)> {
    let (o, cl) = (s.chars().next()?, s.chars().last()?);
    if !"([{".contains(o) || !")]}".contains(cl) || s.len() < 2 {
        return None;
    }
    let mut depth = 0i32;
    for (k, ch) in s.char_indices() {
        depth += "([{".contains(ch) as i32 - ")]}".contains(ch) as i32;
        if depth == 0 && k + ch.len_utf8() < s.len() {
            return None;
        }
    }
    Some((o, cl, &s[1..s.len() - 1]))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= (1e-6 * a.abs().max(b.abs())).max(1e-9)
}

fn same_multiset(a: &[String], b: &[String]) -> bool {
    let mut used = vec![false; b.len()];
    a.len() == b.len()
        && a.iter().all(|x| match (0..b.len()).find(|&k| !used[k] && eq_norm(x, false, &b[k], false)) {
            Some(k) => {
                used[k] = true;
                true
            }
            None => false,
        })
}

fn eq_norm(a: &str, pa: bool, b: &str, pb: bool) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let word = |s: &str| s.chars().all(|c| c.is_ascii_alphabetic());
    if a == b || (word(a) && word(b) && a.eq_ignore_ascii_case(b)) {
        return true;
    }
    if let (Some(x), Some(y)) = (eval(a), eval(b)) {
        return close(x, y) || (pa && !pb && close(x / 100.0, y)) || (pb && !pa && close(x, y / 100.0));
    }
    let set = |s: &str| match bracketed(s) {
        Some(('{', '}', inner)) => Some(split_top(inner)),
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
    let c = chars(s);
    let mut p = Eval { c: &c, i: 0 };
    let v = p.expr()?;
    (p.i == c.len() && v.is_finite()).then_some(v)
}

struct Eval<'a> {
    c: &'a [char],
    i: usize,
}

impl Eval<'_> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }
    fn eat_cmd(&mut self, name: &str) -> bool {
        let pat = format!("\\{name}");
        let ok = starts(self.c, self.i, &pat) && cmd_end(self.c, self.i) == self.i + pat.len();
        if ok {
            self.i += pat.len();
        }
        ok
    }
    fn expr(&mut self) -> Option<f64> {
        let mut v = self.term()?;
        loop {
            match self.peek() {
                Some('+') => {
                    self.i += 1;
                    v += self.term()?;
                }
                Some('-') => {
                    self.i += 1;
                    v -= self.term()?;
                }
                _ => return Some(v),
            }
        }
    }
    fn term(&mut self) -> Option<f64> {
        let mut v = self.unary()?;
        loop {
            if self.peek() == Some('*') || self.eat_cmd("cdot") || self.eat_cmd("times") {
                self.i += (self.peek() == Some('*')) as usize;
                v *= self.unary()?;
            } else if self.peek() == Some('/') {
                self.i += 1;
                v /= self.unary()?;
            } else if matches!(self.peek(), Some(ch) if ch.is_ascii_digit() || "({.".contains(ch))
                || starts(self.c, self.i, "\\sqrt")
                || starts(self.c, self.i, "\\pi")
            {
                v *= self.power()?;
            } else {
                return Some(v);
            }
        }
    }
    fn unary(&mut self) -> Option<f64> {
        match self.peek() {
            Some('-') => {
                self.i += 1;
                Some(-self.unary()?)
            }
            Some('+') => {
                self.i += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }
    fn power(&mut self) -> Option<f64> {
        let b = self.atom()?;
        if self.peek() != Some('^') {
            return Some(b);
        }
        self.i += 1;
        let neg = self.peek() == Some('-');
        self.i += neg as usize;
        let e = self.atom()?;
        Some(b.powf(if neg { -e } else { e }))
    }
    fn atom(&mut self) -> Option<f64> {
        let ch = self.peek()?;
        if ch == '(' || ch == '{' {
            self.i += 1;
            let v = self.expr()?;
            let want = if ch == '(' { ')' } else { '}' };
            return (self.peek() == Some(want)).then(|| {
                self.i += 1;
                v
            });
        }
        if self.eat_cmd("pi") {
            return Some(std::f64::consts::PI);
        }
        if self.eat_cmd("sqrt") {
            let mut root = 2.0;
            if self.peek() == Some('[') {
                self.i += 1;
                root = self.expr()?;
                (self.peek() == Some(']')).then_some(())?;
                self.i += 1;
            }
            return Some(self.atom()?.powf(1.0 / root));
        }
        let start = self.i;
        let digit = |k: usize| self.c.get(k).is_some_and(|c| c.is_ascii_digit());
        while digit(self.i) || self.peek() == Some('.') {
            self.i += 1;
        }
        let k = self.i + matches!(self.c.get(self.i + 1), Some('+' | '-')) as usize;
        if matches!(self.peek(), Some('e' | 'E')) && self.i > start && digit(k + 1) {
            self.i = k + 1;
            while digit(self.i) {
                self.i += 1;
            }
        }
        self.c[start..self.i].iter().collect::<String>().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(a: &str, b: &str) -> bool {
        is_equivalent(a, b) && is_equivalent(b, a)
    }

    #[test]
    fn extraction() {
        let ex = |s: &str| extract_answer(s);
        assert_eq!(ex("so \\boxed{\\frac{\\sqrt{3}}{2}}.").as_deref(), Some("\\frac{\\sqrt{3}}{2}"));
        assert_eq!(ex("first \\boxed{1}, then \\boxed{2}").as_deref(), Some("2"));
        assert_eq!(ex("answer $\\boxed 5$").as_deref(), Some("5"));
        assert_eq!(ex("\\fbox{7} done").as_deref(), Some("7"));
        assert_eq!(ex("\\boxed{\\text{(A)}}").as_deref(), Some("\\text{(A)}"));
        assert_eq!(ex("\\boxed{\\{1,2\\}}").as_deref(), Some("\\{1,2\\}"));
        assert_eq!(ex("so the answer is 42.").as_deref(), Some("42"));
        assert_eq!(ex("we get 3/4 of it").as_deref(), Some("3/4"));
        assert_eq!(ex("it costs $1,000 and 2.5 more, total 1,002.50").as_deref(), Some("1,002.50"));
        assert_eq!(ex("values 1,2,3").as_deref(), Some("3"));
        assert_eq!(ex("x = \u{2212}3").as_deref(), Some("-3"));
        assert_eq!(ex("x = -0.5 so").as_deref(), Some("-0.5"));
        assert_eq!(ex("5-3 is 2").as_deref(), Some("2"));
        assert_eq!(ex("no answer here"), None);
        assert_eq!(ex("\\boxed{}"), None);
        assert_eq!(ex("\\boxed{12} and \\boxed{\\frac{1"), Some("12".into()));
        assert_eq!(gsm8k_gold("He pays 3*4=12\n#### 1,234").as_deref(), Some("1,234"));
        assert_eq!(gsm8k_gold("#### 72\n").as_deref(), Some("72"));
        assert_eq!(gsm8k_gold("no marker 5"), None);
        assert!(eq(&gsm8k_gold("...\n#### 1,234").unwrap(), "1234"));
    }

    #[test]
    fn normal_forms() {
        assert_eq!(normalize("\\dfrac12"), "1/2");
        assert_eq!(normalize("\\frac{\\sqrt3}{2}"), "\\sqrt{3}/2");
        assert_eq!(normalize("\\frac{11+9a}{20}"), "(11+9a)/20");
        assert_eq!(normalize("\\frac{1}{2\\pi}"), "1/(2\\pi)");
        assert_eq!(normalize("1\\frac{4}{5}"), "9/5");
        assert_eq!(normalize("\\left( 3, \\frac{\\pi}{2} \\right)"), "(3,\\pi/2)");
        assert_eq!(normalize("10,\\!080"), "10080");
        assert_eq!(normalize("x = 5."), "5");
        assert_eq!(normalize("\\cot x"), "\\cot x");
        assert_eq!(normalize("4210_{5}"), "4210_5");
        assert_eq!(normalize("864 \\mbox{ inches}^2"), "864");
        assert_eq!(
            normalize("\\begin{pmatrix} -1/3 \\\\ \\frac23 \\end{pmatrix}"),
            "\\begin{pmatrix}-1/3\\\\2/3\\end{pmatrix}"
        );
        assert_eq!(normalize("\\begin{bmatrix} 1 & 0 \\end{bmatrix}"), "\\begin{pmatrix}1&0\\end{pmatrix}");
        assert_eq!(normalize("5x - 7y + 11z + 4 = 0"), "5x-7y+11z+4=0");
        assert_eq!(normalize("\\text{Evelyn}"), "Evelyn");
    }

    #[test]
    fn equivalences() {
        let yes = [
            ("\\frac{1}{2}", "1/2"),
            ("\\dfrac12", "0.5"),
            ("\\tfrac{1}{2}", "\\frac12"),
            ("-\\frac{3}{4}", "-0.75"),
            ("-3", "\u{2212}3"),
            ("1,000", "1000"),
            ("1,000,000.5", "1000000.5"),
            ("10\\text{ cm}", "10"),
            ("5 \\text{ dollars}", "5"),
            ("\\$5", "5"),
            ("5 dollars", "5"),
            ("50\\%", "50"),
            ("50\\%", "0.5"),
            ("50%", "\\frac{1}{2}"),
            ("(-\\infty, 3]", "(-\\infty,3]"),
            ("[0,\\infty)", "[0, \\infty)"),
            ("(1,2)", "(1, 2)"),
            ("(0.5, 1)", "(\\frac12,1)"),
            ("30^\\circ", "30"),
            ("30^{\\circ}", "30\u{b0}"),
            ("\\text{(A)}", "A"),
            ("(B)", "\\textbf{B}"),
            ("42.", "42"),
            ("x = 5", "5"),
            ("y=-2", "-2"),
            ("1,2", "2, 1"),
            ("3, 5, 7", "7,3,5"),
            ("\\{1,2\\}", "\\{2,1\\}"),
            ("\\sqrt{2}", "\\sqrt2"),
            ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
            ("2\\sqrt{3}", "\\sqrt{12}"),
            ("1.5e3", "1500"),
            ("1.5\\times10^{3}", "1500"),
            ("\\pi/2", "1.5707963268"),
            ("0.0", "0"),
            ("1e-12", "0"),
            ("3.0", "3"),
            ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"),
            ("\\left(3,\\frac{\\pi}{2}\\right)", "(3,1.5707963268)"),
            ("infinity", "\\infty"),
            ("\\text{evelyn}", "Evelyn"),
            ("2\\frac{1}{3}", "7/3"),
            ("x\\in[0,1]", "[0,1]"),
            ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{bmatrix} 1 \\\\ 2 \\end{bmatrix}"),
            ("-\\frac{\\pi}{6}", "-\\pi/6"),
        ];
        for (a, b) in yes {
            assert!(eq(a, b), "{a:?} should equal {b:?}");
        }
        let no = [
            ("(1,2)", "[1,2]"),
            ("(1,2)", "(2,1)"),
            ("1,000", "1"),
            ("1,000", "000,1"),
            ("50", "0.5"),
            ("2", "200"),
            ("\\frac{1}{2}", "\\frac{1}{3}"),
            ("-3", "3"),
            ("1.0001", "1"),
            ("\\sqrt{2}", "\\sqrt{3}"),
            ("1,2", "1,2,3"),
            ("1,2", "1,3"),
            ("x", "y"),
            ("(-\\infty,3]", "(-\\infty,3)"),
            ("", ""),
            ("", "0"),
            ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}"),
            ("30^\\circ", "\\frac{\\pi}{6}"),
            ("1\\frac{4}{5}", "4/5"),
            ("52_8", "52"),
            ("6-5i", "6+5i"),
            ("\\{1,2\\}", "(1,2)"),
            ("A", "B"),
            ("1e-6", "0"),
            ("(3,4]", "[3,4]"),
        ];
        for (a, b) in no {
            assert!(!is_equivalent(a, b) && !is_equivalent(b, a), "{a:?} should differ from {b:?}");
        }
    }

    #[test]
    fn math500_answers_survive_boxing() {
        let answers = [
            "\\left( 3, \\frac{\\pi}{2} \\right)",
            "\\text{Evelyn}",
            "90^\\circ",
            "3\\sqrt{13}",
            "x=5",
            "1,-2",
            "52_8",
            "3, 5, 7",
            "\\frac{3\\sqrt{3}}{4}",
            "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
            "(3,4]",
            "\\dfrac{17}{50}",
            "\\frac{270}7\\text{ degrees}",
            "10,\\!080",
            "11,\\! 111,\\! 111,\\! 100",
            "\\text{(C)}",
            "\\frac 59",
            "\\$32,\\!348",
            "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
            "864 \\mbox{ inches}^2",
            "1\\frac{4}{5}",
            "\\left(\\frac{3}{5},\\frac{8}{3}\\right]",
            "5.4 \\text{ cents}",
            "\\frac9{19}",
            "(-\\infty, 0]",
        ];
        for ans in answers {
            let got = extract_answer(&format!("Thus the answer is $\\boxed{{{ans}}}$.")).unwrap();
            assert!(is_equivalent(&got, ans), "{ans:?} -> {got:?} -> {:?}", normalize(&got));
        }
        assert!(eq("11,\\! 111,\\! 111,\\! 100", "11111111100"));
        assert!(eq("\\$32,\\!348", "32348"));
        assert!(eq("\\frac 59", "5/9"));
    }
}
