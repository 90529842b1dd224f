//! The subset of OData `$filter` the simulated lists accept: `prop op literal` clauses joined by
//! `and`; ops eq, ne, gt, ge, lt, le; literals 'string', unquoted DateTimeOffset, numbers,
//! true/false/null. Anything else is a 400, as a real service would answer an unsupported filter.

use std::cmp::Ordering;

use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Time(OffsetDateTime),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub prop: String,
    pub op: Op,
    pub value: Lit,
}

fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut lit = String::from("'");
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            lit.push('\'');
                        }
                        Some('\'') => break,
                        Some(ch) => lit.push(ch),
                        None => return Err("unterminated string literal".into()),
                    }
                }
                out.push(lit);
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '(' | ')' => return Err("parentheses are not supported".into()),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn literal(tok: &str) -> Result<Lit, String> {
    if let Some(s) = tok.strip_prefix('\'') {
        return Ok(Lit::Str(s.to_string()));
    }
    match tok.to_ascii_lowercase().as_str() {
        "true" => return Ok(Lit::Bool(true)),
        "false" => return Ok(Lit::Bool(false)),
        "null" => return Ok(Lit::Null),
        _ => {}
    }
    if let Ok(t) = super::timefmt::parse(tok) {
        return Ok(Lit::Time(t));
    }
    tok.parse::<f64>().map(Lit::Num).map_err(|_| format!("'{tok}' is not a valid literal"))
}

/// Parses a filter expression.
pub fn parse(expr: &str) -> Result<Vec<Clause>, String> {
    let toks = tokens(expr)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks.len() < i + 3 {
            return Err(format!("incomplete clause near '{}'", toks[i..].join(" ")));
        }
        let op = match toks[i + 1].to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(format!("operator '{other}' is not supported")),
        };
        clauses.push(Clause { prop: toks[i].clone(), op, value: literal(&toks[i + 2])? });
        i += 3;
        if i < toks.len() {
            if !toks[i].eq_ignore_ascii_case("and") {
                return Err(format!("'{}' is not supported; only 'and' joins clauses", toks[i]));
            }
            i += 1;
            if i == toks.len() {
                return Err("filter ends with 'and'".into());
            }
        }
    }
    Ok(clauses)
}

fn compare(actual: &Lit, wanted: &Lit) -> Option<Ordering> {
    match (actual, wanted) {
        (Lit::Str(a), Lit::Str(b)) => Some(a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase())),
        (Lit::Time(a), Lit::Time(b)) => Some(a.cmp(b)),
        (Lit::Num(a), Lit::Num(b)) => a.partial_cmp(b),
        (Lit::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Lit::Null, Lit::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

/// Whether `actual` satisfies the clause; values of different types never match (except ne).
pub fn matches(clause: &Clause, actual: &Lit) -> bool {
    match compare(actual, &clause.value) {
        None => clause.op == Op::Ne,
        Some(o) => match clause.op {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_graph_and_arm_forms() {
        let c =
            parse("lastUpdateDateTime ge 2025-02-07T19:01:26Z and lastUpdateDateTime lt 2025-02-08T00:00:00.1234567Z")
                .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].op, Op::Lt);
        let c = parse("incidentId eq 'O''Brien 1'").unwrap();
        assert_eq!(c[0].value, Lit::Str("O'Brien 1".into()));
        let c = parse("properties/lastModifiedTimeUtc ge 2024-01-01T00:00:00Z").unwrap();
        assert_eq!(c[0].prop, "properties/lastModifiedTimeUtc");
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        assert!(parse("status eq 'active' or status eq 'resolved'").is_err());
        assert!(parse("contains(displayName, 'x')").is_err());
        assert!(parse("status eq").is_err());
        assert!(parse("status like 'x'").is_err());
    }

    #[test]
    fn evaluates() {
        let c = &parse("severity eq 'High'").unwrap()[0];
        assert!(matches(c, &Lit::Str("high".into())));
        assert!(!matches(c, &Lit::Null));
    }
}
