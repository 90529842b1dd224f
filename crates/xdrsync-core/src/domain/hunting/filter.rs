//! The row filter users write (`XDRSYNC_HUNTING_FILTER_<TABLE>`): a small, documented subset of
//! KQL `where` expressions, parsed here so that (1) the query source sends a *re-rendered*
//! expression, never the user's text, so nothing can break out of the `where` (a `|`, `;` or
//! `let` outside a string literal is a parse error), and (2) the stream sources evaluate the same
//! expression in xdrsync. Supported: `and`, `or`, `not(…)`, parentheses; `==`, `!=`, `=~`, `!~`,
//! `<`, `<=`, `>`, `>=`; `has`, `!has`, `contains`, `!contains`, `contains_cs`, `startswith`,
//! `!startswith`, `endswith`, `!endswith`; `in (…)`, `!in (…)`, `in~ (…)`; `isempty(c)`,
//! `isnotempty(c)`, `isnull(c)`, `isnotnull(c)`; string ('…', "…"), number, `true`/`false` and
//! `datetime(…)` literals. `has` is approximated as a case-insensitive whole-term match.

use time::OffsetDateTime;

use crate::domain::time_fmt;

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp { left: Operand, op: Op, right: Operand },
    In { column: String, items: Vec<Lit>, negated: bool, ci: bool },
    Empty { column: String, func: EmptyFn },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyFn {
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Column(String),
    Lit(Lit),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    /// Kept as written (validated as a number).
    Num(String),
    Bool(bool),
    Time(OffsetDateTime),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    EqCi,
    NeCi,
    Lt,
    Le,
    Gt,
    Ge,
    Has,
    NotHas,
    Contains,
    NotContains,
    ContainsCs,
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
}

const OPS: &[(&str, Op)] = &[
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("=~", Op::EqCi),
    ("!~", Op::NeCi),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
    ("has", Op::Has),
    ("!has", Op::NotHas),
    ("contains", Op::Contains),
    ("!contains", Op::NotContains),
    ("contains_cs", Op::ContainsCs),
    ("startswith", Op::StartsWith),
    ("!startswith", Op::NotStartsWith),
    ("endswith", Op::EndsWith),
    ("!endswith", Op::NotEndsWith),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Sym(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' || (c == '@' && matches!(chars.get(i + 1), Some('\'' | '"'))) {
            let verbatim = c == '@';
            if verbatim {
                i += 1;
            }
            let quote = chars[i];
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else { return Err("a string literal is not closed".into()) };
                i += 1;
                if ch == quote {
                    break;
                }
                if ch == '\\' && !verbatim {
                    let Some(&esc) = chars.get(i) else { return Err("a string literal is not closed".into()) };
                    i += 1;
                    s.push(match esc {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                } else {
                    s.push(ch);
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || (chars[i] == '.' && chars.get(i + 1) != Some(&'.')))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            text.parse::<f64>().map_err(|_| format!("'{text}' is not a number"))?;
            out.push(Tok::Num(text));
        } else if c.is_ascii_alphabetic()
            || c == '_'
            || (c == '!' && chars.get(i + 1).is_some_and(|d| d.is_ascii_alphabetic()))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if chars.get(i) == Some(&'~') {
                i += 1; // in~
            }
            let word: String = chars[start..i].iter().collect();
            let is_datetime = word == "datetime";
            out.push(Tok::Ident(word));
            if is_datetime {
                // datetime(2024-01-01T00:00:00Z): the text up to ')' is one literal.
                while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                    i += 1;
                }
                if chars.get(i) == Some(&'(') {
                    let close = chars[i..].iter().position(|c| *c == ')').ok_or("a datetime( is not closed")?;
                    let raw: String = chars[i + 1..i + close].iter().collect();
                    out.push(Tok::Sym("("));
                    out.push(Tok::Str(raw.trim().trim_matches(|c| c == '"' || c == '\'').to_string()));
                    out.push(Tok::Sym(")"));
                    i += close + 1;
                }
            }
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = ["==", "!=", "=~", "!~", "<=", ">=", ".."].into_iter().find(|s| *s == two);
            if let Some(s) = sym {
                out.push(Tok::Sym(s));
                i += 2;
            } else {
                let one = match c {
                    '(' => "(",
                    ')' => ")",
                    ',' => ",",
                    '<' => "<",
                    '>' => ">",
                    other => return Err(format!("'{other}' is not allowed in a filter (only a where expression is)")),
                };
                out.push(Tok::Sym(one));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The deepest nesting of parentheses and `not(…)` a filter may have. The parser, the renderer and
/// the evaluator recurse once per level, so an unbounded depth overflows the stack.
pub const MAX_NESTING: usize = 32;

/// The most `and`/`or` a filter may hold: a chain builds a tree one level deeper per operator,
/// which the renderer, the evaluator and `Drop` walk recursively.
pub const MAX_OPERATORS: usize = 512;

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// Parentheses and `not(` currently open.
    depth: usize,
    /// `and`/`or` read so far.
    operators: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == kw)
    }
    fn expect(&mut self, sym: &str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Sym(s)) if s == sym => Ok(()),
            other => Err(format!("expected '{sym}', found {}", describe(other.as_ref()))),
        }
    }
    fn operator(&mut self) -> Result<(), String> {
        self.pos += 1;
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(format!("more than {MAX_OPERATORS} 'and'/'or' in one filter"));
        }
        Ok(())
    }
    /// `(` or `not(` opens a level: refused past [`MAX_NESTING`] before recursing.
    fn open(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!("nested deeper than {MAX_NESTING} levels of parentheses or not(…)"));
        }
        Ok(())
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.operator()?;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.operator()?;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.pos += 1;
            self.expect("(")?;
            self.open()?;
            let e = self.or()?;
            self.expect(")")?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        if matches!(self.peek(), Some(Tok::Sym("("))) {
            self.pos += 1;
            self.open()?;
            let e = self.or()?;
            self.expect(")")?;
            self.depth -= 1;
            return Ok(e);
        }
        let func = match self.peek() {
            Some(Tok::Ident(s)) => match s.as_str() {
                "isempty" => Some(EmptyFn::IsEmpty),
                "isnotempty" => Some(EmptyFn::IsNotEmpty),
                "isnull" => Some(EmptyFn::IsNull),
                "isnotnull" => Some(EmptyFn::IsNotNull),
                _ => None,
            },
            _ => None,
        };
        if let Some(func) = func {
            self.pos += 1;
            self.expect("(")?;
            let column = self.column()?;
            self.expect(")")?;
            return Ok(Expr::Empty { column, func });
        }
        self.comparison()
    }
    fn column(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) if is_identifier(&s) && !is_keyword(&s) => Ok(s),
            other => Err(format!("expected a column name, found {}", describe(other.as_ref()))),
        }
    }
    fn operand(&mut self) -> Result<Operand, String> {
        match self.peek() {
            Some(Tok::Ident(s)) if !matches!(s.as_str(), "true" | "false" | "datetime") => {
                Ok(Operand::Column(self.column()?))
            }
            _ => Ok(Operand::Lit(self.literal()?)),
        }
    }
    fn literal(&mut self) -> Result<Lit, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::Ident(s)) if s == "true" => Ok(Lit::Bool(true)),
            Some(Tok::Ident(s)) if s == "false" => Ok(Lit::Bool(false)),
            Some(Tok::Ident(s)) if s == "datetime" => {
                self.expect("(")?;
                // datetime(2024-01-01T00:00:00Z) unquoted, or datetime("…").
                let mut text = String::new();
                loop {
                    match self.next() {
                        Some(Tok::Sym(")")) => break,
                        Some(Tok::Str(s)) | Some(Tok::Num(s)) | Some(Tok::Ident(s)) => text.push_str(&s),
                        Some(Tok::Sym(s)) if s != "(" => text.push_str(s),
                        other => return Err(format!("bad datetime literal near {}", describe(other.as_ref()))),
                    }
                }
                time_fmt::parse(&text).map(Lit::Time).map_err(|_| format!("'{text}' is not an ISO 8601 UTC time"))
            }
            other => Err(format!("expected a value, found {}", describe(other.as_ref()))),
        }
    }
    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.operand()?;
        let op_tok = self.next();
        let op_text = match &op_tok {
            Some(Tok::Sym(s)) => s.to_string(),
            Some(Tok::Ident(s)) => s.clone(),
            other => return Err(format!("expected an operator, found {}", describe(other.as_ref()))),
        };
        if matches!(op_text.as_str(), "in" | "!in" | "in~") {
            let Operand::Column(column) = left else { return Err("'in' needs a column on its left".into()) };
            self.expect("(")?;
            let mut items = vec![self.literal()?];
            while matches!(self.peek(), Some(Tok::Sym(","))) {
                self.pos += 1;
                items.push(self.literal()?);
            }
            self.expect(")")?;
            return Ok(Expr::In { column, items, negated: op_text == "!in", ci: op_text == "in~" });
        }
        let op = OPS
            .iter()
            .find(|(s, _)| *s == op_text)
            .map(|(_, o)| *o)
            .ok_or_else(|| format!("'{op_text}' is not a supported operator"))?;
        let right = self.operand()?;
        Ok(Expr::Cmp { left, op, right })
    }
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "the end".into(),
        Some(Tok::Ident(s)) | Some(Tok::Num(s)) => format!("'{s}'"),
        Some(Tok::Str(_)) => "a string".into(),
        Some(Tok::Sym(s)) => format!("'{s}'"),
    }
}

fn is_identifier(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_keyword(s: &str) -> bool {
    matches!(s, "and" | "or" | "not" | "let" | "true" | "false" | "datetime")
}

/// Parses a filter; an empty text is no filter.
pub fn parse(src: &str) -> Result<Option<Expr>, String> {
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Ok(None);
    }
    let mut p = Parser { toks, pos: 0, depth: 0, operators: 0 };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected {} after the expression", describe(p.peek())));
    }
    Ok(Some(e))
}

impl Expr {
    /// Every column the expression names.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit_columns(&mut out);
        out
    }

    fn visit_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.visit_columns(out);
                b.visit_columns(out);
            }
            Expr::Not(e) => e.visit_columns(out),
            Expr::Cmp { left, right, .. } => {
                for o in [left, right] {
                    if let Operand::Column(c) = o {
                        out.push(c);
                    }
                }
            }
            Expr::In { column, .. } | Expr::Empty { column, .. } => out.push(column),
        }
    }

    /// KQL text, fully parenthesised, literals re-quoted.
    pub fn render(&self) -> String {
        match self {
            Expr::And(a, b) => format!("({} and {})", a.render(), b.render()),
            Expr::Or(a, b) => format!("({} or {})", a.render(), b.render()),
            Expr::Not(e) => format!("not({})", e.render()),
            Expr::Cmp { left, op, right } => {
                let op = OPS.iter().find(|(_, o)| o == op).map(|(s, _)| *s).unwrap_or("==");
                format!("{} {op} {}", render_operand(left), render_operand(right))
            }
            Expr::In { column, items, negated, ci } => {
                let op = if *negated {
                    "!in"
                } else if *ci {
                    "in~"
                } else {
                    "in"
                };
                let items: Vec<String> = items.iter().map(render_lit).collect();
                format!("{column} {op} ({})", items.join(", "))
            }
            Expr::Empty { column, func } => {
                let f = match func {
                    EmptyFn::IsEmpty => "isempty",
                    EmptyFn::IsNotEmpty => "isnotempty",
                    EmptyFn::IsNull => "isnull",
                    EmptyFn::IsNotNull => "isnotnull",
                };
                format!("{f}({column})")
            }
        }
    }
}

/// A string literal in KQL (double quotes, backslash escapes).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

fn render_lit(l: &Lit) -> String {
    match l {
        Lit::Str(s) => quote(s),
        Lit::Num(n) => n.clone(),
        Lit::Bool(b) => b.to_string(),
        Lit::Time(t) => format!("datetime({})", time_fmt::format(*t)),
    }
}

fn render_operand(o: &Operand) -> String {
    match o {
        Operand::Column(c) => c.clone(),
        Operand::Lit(l) => render_lit(l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn evaluates_the_documented_subset() {
        let r = row(json!({"FileName": "PowerShell.exe", "ProcessId": 42, "ActionType": "ProcessCreated",
            "Timestamp": "2024-05-01T10:00:00.1234567Z", "ProcessCommandLine": "powershell -enc AAAA", "Empty": ""}));
        let yes = [
            "FileName =~ 'powershell.exe'",
            "FileName == \"PowerShell.exe\" and ProcessId > 40",
            "ProcessId in (1, 42)",
            "FileName in~ ('POWERSHELL.EXE')",
            "ProcessCommandLine has 'enc'",
            "ProcessCommandLine contains 'SHELL -E'",
            "not(ActionType == 'FileCreated')",
            "ActionType startswith 'process' or ProcessId == 0",
            "Timestamp >= datetime(2024-05-01T10:00:00Z) and Timestamp < datetime(2024-05-01T10:00:01Z)",
            "isempty(Empty) and isnotempty(FileName) and isnull(Missing)",
            "FileName !in ('cmd.exe')",
        ];
        for f in yes {
            assert!(parse(f).unwrap().unwrap().matches(&r), "{f}");
        }
        let no = ["FileName == 'powershell.exe'", "ProcessCommandLine has 'en'", "ProcessId <= 41", "Missing == 'x'"];
        for f in no {
            assert!(!parse(f).unwrap().unwrap().matches(&r), "{f}");
        }
    }

    #[test]
    fn rejects_anything_but_a_where_expression() {
        for bad in [
            "FileName == 'a' | take 1",
            "FileName == 'a'; DeviceInfo",
            "FileName == 'a') or (true",
            "let x = 1",
            "FileName == ",
            "FileName == 'unterminated",
            "FileName matches regex 'x'",
            "DeviceInfo | where true",
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
        assert_eq!(parse("  ").unwrap(), None);
    }

    #[test]
    fn renders_literals_requoted_so_pipes_stay_inside_strings() {
        let e = parse(r#"ProcessCommandLine has 'a | b' and FileName == "x\"y""#).unwrap().unwrap();
        assert_eq!(e.render(), r#"(ProcessCommandLine has "a | b" and FileName == "x\"y")"#);
        assert_eq!(parse(&e.render()).unwrap().unwrap(), e, "the rendered text parses back to the same expression");
    }

    #[test]
    fn nesting_and_chains_are_bounded_not_a_stack_overflow() {
        let deep = |n: usize| format!("{}FileName == 'a'{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&deep(MAX_NESTING)).unwrap().is_some());
        let e = parse(&deep(MAX_NESTING + 1)).unwrap_err();
        assert!(e.contains("nested deeper than"), "{e}");
        // 100,000 levels: a clear error, found before recursing that deep.
        assert!(parse(&deep(100_000)).unwrap_err().contains("nested deeper than"));
        let nots = format!("{}FileName == 'a'{}", "not(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&nots).unwrap_err().contains("nested deeper than"));
        let chain = |n: usize| vec!["FileName == 'a'"; n + 1].join(" and ");
        let ok = parse(&chain(MAX_OPERATORS)).unwrap().unwrap();
        assert!(ok.render().len() > MAX_OPERATORS, "a long chain still renders");
        assert!(parse(&chain(100_000)).unwrap_err().contains("'and'/'or'"));
    }

    proptest! {
        /// Whatever string a user puts in a literal, the rendered filter parses back to the same
        /// expression: nothing in a value can end the `where`.
        #[test]
        fn any_string_value_stays_a_value(s in ".{0,40}") {
            let e = Expr::Cmp { left: Operand::Column("FileName".into()), op: Op::Eq, right: Operand::Lit(Lit::Str(s.clone())) };
            let back = parse(&e.render()).unwrap().unwrap();
            prop_assert_eq!(back, e);
        }
    }
}
