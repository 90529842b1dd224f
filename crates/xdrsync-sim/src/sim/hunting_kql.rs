//! The simulator's own reading of a KQL `where` predicate (the subset advanced hunting gets from
//! xdrsync: `and`/`or`/`not(…)`, parentheses, comparisons `==`, `!=`, `=~`, `!~`, `<`, `<=`, `>`,
//! `>=`, `has`, `contains`, `startswith`, `endswith` (and their `!` forms), `in`/`!in`/`in~`,
//! `isempty`/`isnotempty`/`isnull`/`isnotnull`, string, number, bool and `datetime(…)` values),
//! written apart from the product's filter code so a mistake there fails a test here.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::timefmt;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Time(OffsetDateTime),
    Sym(String),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '"' || ch == '\'' {
            let mut s = String::new();
            i += 1;
            while i < c.len() && c[i] != ch {
                if c[i] == '\\' && i + 1 < c.len() {
                    i += 1;
                    s.push(match c[i] {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        o => o,
                    });
                } else {
                    s.push(c[i]);
                }
                i += 1;
            }
            if i >= c.len() {
                return Err("unterminated string".into());
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if ch.is_ascii_alphabetic()
            || ch == '_'
            || (ch == '!' && c.get(i + 1).is_some_and(|x| x.is_ascii_alphabetic()))
        {
            let start = i;
            i += 1;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == '~') {
                i += 1;
            }
            let w: String = c[start..i].iter().collect();
            if w == "datetime" && c.get(i) == Some(&'(') {
                let close = c[i..].iter().position(|x| *x == ')').ok_or("unclosed datetime(")? + i;
                let raw: String = c[i + 1..close].iter().collect();
                out.push(Tok::Time(timefmt::parse(raw.trim())?));
                i = close + 1;
            } else {
                out.push(Tok::Word(w));
            }
        } else if ch.is_ascii_digit() || ch == '-' {
            let start = i;
            i += 1;
            while i < c.len() && (c[i].is_ascii_digit() || c[i] == '.') {
                i += 1;
            }
            let t: String = c[start..i].iter().collect();
            out.push(Tok::Num(t.parse().map_err(|_| format!("bad number {t}"))?));
        } else {
            let two: String = c[i..(i + 2).min(c.len())].iter().collect();
            if ["==", "!=", "=~", "!~", "<=", ">="].contains(&two.as_str()) {
                out.push(Tok::Sym(two));
                i += 2;
            } else if "()<>,".contains(ch) {
                out.push(Tok::Sym(ch.to_string()));
                i += 1;
            } else {
                return Err(format!("unexpected '{ch}'"));
            }
        }
    }
    Ok(out)
}

/// A parsed predicate.
#[derive(Debug, Clone)]
pub enum Pred {
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    Cmp(Term, String, Term),
    In(String, String, Vec<Term>),
    Func(String, String),
}

#[derive(Debug, Clone)]
pub enum Term {
    Col(String),
    Val(Tok2),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok2 {
    Str(String),
    Num(f64),
    Bool(bool),
    Time(OffsetDateTime),
    Null,
}

struct P {
    t: Vec<Tok>,
    i: usize,
}

impl P {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Word(x)) if x == w)
    }
    fn sym(&mut self, s: &str) -> Result<(), String> {
        match self.t.get(self.i) {
            Some(Tok::Sym(x)) if x == s => {
                self.i += 1;
                Ok(())
            }
            other => Err(format!("expected {s}, found {other:?}")),
        }
    }
    fn or(&mut self) -> Result<Pred, String> {
        let mut l = self.and()?;
        while self.peek_word("or") {
            self.i += 1;
            l = Pred::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Pred, String> {
        let mut l = self.atom()?;
        while self.peek_word("and") {
            self.i += 1;
            l = Pred::And(Box::new(l), Box::new(self.atom()?));
        }
        Ok(l)
    }
    fn atom(&mut self) -> Result<Pred, String> {
        if matches!(self.t.get(self.i), Some(Tok::Sym(s)) if s == "(") {
            self.i += 1;
            let p = self.or()?;
            self.sym(")")?;
            return Ok(p);
        }
        if self.peek_word("not") {
            self.i += 1;
            self.sym("(")?;
            let p = self.or()?;
            self.sym(")")?;
            return Ok(Pred::Not(Box::new(p)));
        }
        for f in ["isempty", "isnotempty", "isnull", "isnotnull"] {
            if self.peek_word(f) {
                self.i += 1;
                self.sym("(")?;
                let Some(Tok::Word(col)) = self.t.get(self.i).cloned() else { return Err("expected a column".into()) };
                self.i += 1;
                self.sym(")")?;
                return Ok(Pred::Func(f.into(), col));
            }
        }
        let left = self.term()?;
        let op = match self.t.get(self.i).cloned() {
            Some(Tok::Sym(s)) => s,
            Some(Tok::Word(w)) => w,
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        self.i += 1;
        if matches!(op.as_str(), "in" | "!in" | "in~") {
            let Term::Col(col) = left else { return Err("in needs a column".into()) };
            self.sym("(")?;
            let mut items = vec![self.term()?];
            while matches!(self.t.get(self.i), Some(Tok::Sym(s)) if s == ",") {
                self.i += 1;
                items.push(self.term()?);
            }
            self.sym(")")?;
            return Ok(Pred::In(col, op, items));
        }
        Ok(Pred::Cmp(left, op, self.term()?))
    }
    fn term(&mut self) -> Result<Term, String> {
        let t = self.t.get(self.i).cloned().ok_or("unexpected end")?;
        self.i += 1;
        Ok(match t {
            Tok::Word(w) if w == "true" => Term::Val(Tok2::Bool(true)),
            Tok::Word(w) if w == "false" => Term::Val(Tok2::Bool(false)),
            Tok::Word(w) => Term::Col(w),
            Tok::Str(s) => Term::Val(Tok2::Str(s)),
            Tok::Num(n) => Term::Val(Tok2::Num(n)),
            Tok::Time(t) => Term::Val(Tok2::Time(t)),
            Tok::Sym(s) => return Err(format!("unexpected {s}")),
        })
    }
}

/// Parses a predicate; any other syntax is a syntax error (the service's 400).
pub fn parse(src: &str) -> Result<Pred, String> {
    let mut p = P { t: lex(src)?, i: 0 };
    let e = p.or()?;
    if p.i != p.t.len() {
        return Err(format!("unexpected {:?}", p.t[p.i]));
    }
    Ok(e)
}

fn value(row: &Map<String, Value>, t: &Term) -> Tok2 {
    match t {
        Term::Val(v) => v.clone(),
        Term::Col(c) => match row.get(c) {
            None | Some(Value::Null) => Tok2::Null,
            Some(Value::String(s)) => Tok2::Str(s.clone()),
            Some(Value::Number(n)) => Tok2::Num(n.as_f64().unwrap_or(0.0)),
            Some(Value::Bool(b)) => Tok2::Bool(*b),
            Some(other) => Tok2::Str(other.to_string()),
        },
    }
}

fn text(v: &Tok2) -> String {
    match v {
        Tok2::Str(s) => s.clone(),
        Tok2::Num(n) => n.to_string(),
        Tok2::Bool(b) => b.to_string(),
        Tok2::Time(t) => timefmt::format(*t),
        Tok2::Null => String::new(),
    }
}

fn order(a: &Tok2, b: &Tok2) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Tok2::Time(x), Tok2::Str(s)) => timefmt::parse(s).ok().map(|y| x.cmp(&y)),
        (Tok2::Str(s), Tok2::Time(y)) => timefmt::parse(s).ok().map(|x| x.cmp(y)),
        (Tok2::Time(x), Tok2::Time(y)) => Some(x.cmp(y)),
        (Tok2::Num(x), Tok2::Num(y)) => x.partial_cmp(y),
        (Tok2::Str(x), Tok2::Num(y)) => x.parse::<f64>().ok().and_then(|x| x.partial_cmp(y)),
        (Tok2::Num(x), Tok2::Str(y)) => y.parse::<f64>().ok().and_then(|y| x.partial_cmp(&y)),
        (Tok2::Str(x), Tok2::Str(y)) => Some(x.cmp(y)),
        (Tok2::Bool(x), Tok2::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn cmp(a: &Tok2, op: &str, b: &Tok2) -> bool {
    use std::cmp::Ordering::*;
    let (x, y) = (text(a).to_lowercase(), text(b).to_lowercase());
    let term = |h: &str, n: &str| {
        h.split(|c: char| !c.is_alphanumeric()).any(|w| w == n)
            || (!n.chars().all(char::is_alphanumeric) && h.contains(n))
    };
    match op {
        "==" => *a != Tok2::Null && order(a, b) == Some(Equal),
        "!=" => order(a, b) != Some(Equal),
        "=~" => *a != Tok2::Null && x == y,
        "!~" => x != y,
        "<" => order(a, b) == Some(Less),
        "<=" => matches!(order(a, b), Some(Less | Equal)),
        ">" => order(a, b) == Some(Greater),
        ">=" => matches!(order(a, b), Some(Greater | Equal)),
        "has" => term(&x, &y),
        "!has" => !term(&x, &y),
        "contains" => x.contains(&y),
        "!contains" => !x.contains(&y),
        "contains_cs" => text(a).contains(&text(b)),
        "startswith" => x.starts_with(&y),
        "!startswith" => !x.starts_with(&y),
        "endswith" => x.ends_with(&y),
        "!endswith" => !x.ends_with(&y),
        _ => false,
    }
}

/// Whether `row` passes `p`.
pub fn eval(p: &Pred, row: &Map<String, Value>) -> bool {
    match p {
        Pred::And(a, b) => eval(a, row) && eval(b, row),
        Pred::Or(a, b) => eval(a, row) || eval(b, row),
        Pred::Not(a) => !eval(a, row),
        Pred::Cmp(l, op, r) => cmp(&value(row, l), op, &value(row, r)),
        Pred::In(col, op, items) => {
            let v = value(row, &Term::Col(col.clone()));
            let hit = items.iter().any(|i| cmp(&v, if op == "in~" { "=~" } else { "==" }, &value(row, i)));
            hit != (op == "!in")
        }
        Pred::Func(f, col) => {
            let v = value(row, &Term::Col(col.clone()));
            let empty = matches!(&v, Tok2::Null) || matches!(&v, Tok2::Str(s) if s.is_empty());
            match f.as_str() {
                "isempty" => empty,
                "isnotempty" => !empty,
                "isnull" => v == Tok2::Null,
                _ => v != Tok2::Null,
            }
        }
    }
}
