//! Evaluating a parsed filter ([`Expr`]) on a row, for the stream sources (the query source sends
//! the filter to Defender instead). Values are compared as KQL does where a side says its type
//! (a `datetime(…)` or a number turns the other side into one); `has` is a case-insensitive
//! whole-term match; a missing column is null.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::filter::{EmptyFn, Expr, Lit, Op, Operand};
use crate::domain::time_fmt;

impl Expr {
    /// Whether `row` passes.
    pub fn matches(&self, row: &Map<String, Value>) -> bool {
        match self {
            Expr::And(a, b) => a.matches(row) && b.matches(row),
            Expr::Or(a, b) => a.matches(row) || b.matches(row),
            Expr::Not(e) => !e.matches(row),
            Expr::Cmp { left, op, right } => compare(&resolve(left, row), *op, &resolve(right, row)),
            Expr::In { column, items, negated, ci } => {
                let v = lookup(row, column);
                let hit = items.iter().any(|l| {
                    let lit = Val::of_lit(l);
                    if *ci {
                        compare(&v, Op::EqCi, &lit)
                    } else {
                        compare(&v, Op::Eq, &lit)
                    }
                });
                hit != *negated
            }
            Expr::Empty { column, func } => {
                let v = lookup(row, column);
                let null = matches!(v, Val::Null);
                let empty = null || matches!(&v, Val::Str(s) if s.is_empty());
                match func {
                    EmptyFn::IsEmpty => empty,
                    EmptyFn::IsNotEmpty => !empty,
                    EmptyFn::IsNull => null,
                    EmptyFn::IsNotNull => !null,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Str(String),
    Num(f64),
    Bool(bool),
    Time(OffsetDateTime),
}

impl Val {
    fn of_lit(l: &Lit) -> Val {
        match l {
            Lit::Str(s) => Val::Str(s.clone()),
            Lit::Num(n) => n.parse().map(Val::Num).unwrap_or(Val::Null),
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Time(t) => Val::Time(*t),
        }
    }
    fn text(&self) -> String {
        match self {
            Val::Null => String::new(),
            Val::Str(s) => s.clone(),
            Val::Num(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Time(t) => time_fmt::format(*t),
        }
    }
}

fn lookup(row: &Map<String, Value>, column: &str) -> Val {
    let v = row.get(column).or_else(|| row.iter().find(|(k, _)| k.eq_ignore_ascii_case(column)).map(|(_, v)| v));
    match v {
        None | Some(Value::Null) => Val::Null,
        Some(Value::String(s)) => Val::Str(s.clone()),
        Some(Value::Number(n)) => n.as_f64().map(Val::Num).unwrap_or(Val::Null),
        Some(Value::Bool(b)) => Val::Bool(*b),
        Some(other) => Val::Str(other.to_string()),
    }
}

fn resolve(o: &Operand, row: &Map<String, Value>) -> Val {
    match o {
        Operand::Column(c) => lookup(row, c),
        Operand::Lit(l) => Val::of_lit(l),
    }
}

/// Brings both sides to one type where one side says what it is (a time, a number).
fn coerce(a: &Val, b: &Val) -> (Val, Val) {
    let time = |v: &Val| match v {
        Val::Str(s) => time_fmt::parse(s).map(Val::Time).unwrap_or(Val::Null),
        other => other.clone(),
    };
    let num = |v: &Val| match v {
        Val::Str(s) => s.parse().map(Val::Num).unwrap_or(Val::Null),
        other => other.clone(),
    };
    match (a, b) {
        (Val::Time(_), _) => (a.clone(), time(b)),
        (_, Val::Time(_)) => (time(a), b.clone()),
        (Val::Num(_), _) => (a.clone(), num(b)),
        (_, Val::Num(_)) => (num(a), b.clone()),
        _ => (a.clone(), b.clone()),
    }
}

fn has_term(haystack: &str, term: &str) -> bool {
    let (h, t) = (haystack.to_lowercase(), term.to_lowercase());
    if t.is_empty() {
        return true;
    }
    if !t.chars().all(char::is_alphanumeric) {
        return h.contains(&t);
    }
    h.split(|c: char| !c.is_alphanumeric()).any(|w| w == t)
}

fn compare(a: &Val, op: Op, b: &Val) -> bool {
    use std::cmp::Ordering;
    let (a, b) = coerce(a, b);
    let ord = || -> Option<Ordering> {
        match (&a, &b) {
            (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
            (Val::Time(x), Val::Time(y)) => Some(x.cmp(y)),
            (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
            (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
            _ => None,
        }
    };
    let (at, bt) = (a.text(), b.text());
    match op {
        Op::Eq => a != Val::Null && ord() == Some(Ordering::Equal),
        Op::Ne => ord() != Some(Ordering::Equal),
        Op::EqCi => a != Val::Null && at.to_lowercase() == bt.to_lowercase(),
        Op::NeCi => a == Val::Null || at.to_lowercase() != bt.to_lowercase(),
        Op::Lt => ord() == Some(Ordering::Less),
        Op::Le => matches!(ord(), Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => ord() == Some(Ordering::Greater),
        Op::Ge => matches!(ord(), Some(Ordering::Greater | Ordering::Equal)),
        Op::Has => has_term(&at, &bt),
        Op::NotHas => !has_term(&at, &bt),
        Op::Contains => at.to_lowercase().contains(&bt.to_lowercase()),
        Op::NotContains => !at.to_lowercase().contains(&bt.to_lowercase()),
        Op::ContainsCs => at.contains(&bt),
        Op::StartsWith => at.to_lowercase().starts_with(&bt.to_lowercase()),
        Op::NotStartsWith => !at.to_lowercase().starts_with(&bt.to_lowercase()),
        Op::EndsWith => at.to_lowercase().ends_with(&bt.to_lowercase()),
        Op::NotEndsWith => !at.to_lowercase().ends_with(&bt.to_lowercase()),
    }
}
