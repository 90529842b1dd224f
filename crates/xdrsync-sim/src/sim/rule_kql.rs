//! The KQL an analytics rule of the simulator may use, parsed and evaluated over ingested rows:
//! `Table`, `| where Column == <int | "string" | 'string'>`, `| project a, b, …` and
//! `| project-away a, b, …`. Anything else (other operators, `and`, functions, computed columns)
//! is refused with the part named, so a rule the simulator cannot evaluate faithfully is never
//! stored (rather than matched by a guess). Checked as Log Analytics checks a query: a column the
//! table does not have, or an `int` compared with a `string` column, is a semantic error.
//!
//! Evaluation follows KQL: `==` on strings is case-sensitive; a row without the column does not
//! match; `project` keeps the listed columns in that order (a row lacking one shows it empty,
//! here: absent); `project-away` removes the listed ones.

use serde_json::{Map, Value};

/// A literal on the right of `==`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Where(String, Literal),
    Project(Vec<String>),
    ProjectAway(Vec<String>),
}

/// A parsed rule query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub table: String,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Str(String),
    Pipe,
    Comma,
    EqEq,
    Other(String),
}

fn tokens(q: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            // `project-away` is one operator name.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Tok::Int(text.parse().map_err(|_| format!("`{text}` is not an int literal"))?));
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a string literal is not closed".into()),
                    Some('\\') => {
                        s.push(*chars.get(i + 1).ok_or("a string literal is not closed")?);
                        i += 2;
                    }
                    Some(&d) if d == c => {
                        i += 1;
                        break;
                    }
                    Some(&d) => {
                        s.push(d);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c == '|' {
            out.push(Tok::Pipe);
            i += 1;
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == '=' && chars.get(i + 1) == Some(&'=') {
            out.push(Tok::EqEq);
            i += 2;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push(Tok::Other(chars[start..i.max(start + 1)].iter().collect()));
        }
    }
    Ok(out)
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Other(s) => s.clone(),
        Tok::Int(n) => n.to_string(),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Pipe => "|".into(),
        Tok::Comma => ",".into(),
        Tok::EqEq => "==".into(),
    }
}

fn unsupported(what: &str) -> String {
    format!("the query uses `{what}`, which is outside the KQL the simulator evaluates (Table, where Column == literal, project, project-away)")
}

/// A comma-separated list of column names up to the next `|`.
fn columns(toks: &[Tok], at: &mut usize) -> Result<Vec<String>, String> {
    let mut cols = Vec::new();
    loop {
        match toks.get(*at) {
            Some(Tok::Ident(c)) => cols.push(c.clone()),
            Some(t) => return Err(unsupported(&show(t))),
            None => return Err("a column list is empty".into()),
        }
        *at += 1;
        match toks.get(*at) {
            Some(Tok::Comma) => *at += 1,
            None | Some(Tok::Pipe) => return Ok(cols),
            Some(t) => return Err(unsupported(&show(t))),
        }
    }
}

/// Parses `q`, or names the part outside the subset.
pub fn parse(q: &str) -> Result<Query, String> {
    let toks = tokens(q)?;
    let table = match toks.first() {
        Some(Tok::Ident(t)) if !t.contains('-') => t.clone(),
        Some(t) => return Err(unsupported(&show(t))),
        None => return Err("the query is empty".into()),
    };
    let mut ops = Vec::new();
    let mut at = 1;
    while at < toks.len() {
        if toks[at] != Tok::Pipe {
            return Err(unsupported(&show(&toks[at])));
        }
        at += 1;
        let op = match toks.get(at) {
            Some(Tok::Ident(op)) => op.clone(),
            Some(t) => return Err(unsupported(&show(t))),
            None => return Err("the query ends with `|`".into()),
        };
        at += 1;
        match op.as_str() {
            "where" => {
                let (Some(Tok::Ident(col)), Some(Tok::EqEq)) = (toks.get(at), toks.get(at + 1)) else {
                    return Err(unsupported(&format!(
                        "where {}",
                        toks.get(at..(at + 2).min(toks.len()))
                            .unwrap_or(&[])
                            .iter()
                            .map(show)
                            .collect::<Vec<_>>()
                            .join(" ")
                    )));
                };
                let lit = match toks.get(at + 2) {
                    Some(Tok::Int(n)) => Literal::Int(*n),
                    Some(Tok::Str(s)) => Literal::Str(s.clone()),
                    Some(t) => return Err(unsupported(&format!("where {col} == {}", show(t)))),
                    None => return Err("`where` lacks its literal".into()),
                };
                at += 3;
                if let Some(t) = toks.get(at).filter(|t| **t != Tok::Pipe) {
                    return Err(unsupported(&show(t)));
                }
                ops.push(Op::Where(col.clone(), lit));
            }
            "project" => ops.push(Op::Project(columns(&toks, &mut at)?)),
            "project-away" => ops.push(Op::ProjectAway(columns(&toks, &mut at)?)),
            other => return Err(unsupported(other)),
        }
    }
    Ok(Query { table, ops })
}

impl Query {
    /// The columns the query returns over a table of `schema` (`(column, type)`), or the
    /// semantic error Log Analytics would report.
    pub fn output_columns(&self, schema: &[(String, String)]) -> Result<Vec<String>, String> {
        let mut cols: Vec<(String, String)> = schema.to_vec();
        let find = |cols: &[(String, String)], c: &str| cols.iter().find(|(n, _)| n == c).cloned();
        let missing = |c: &str| format!("Failed to resolve scalar expression named '{c}'");
        for op in &self.ops {
            match op {
                Op::Where(c, lit) => {
                    let (_, ty) = find(&cols, c).ok_or_else(|| missing(c))?;
                    let numeric = ["int", "long", "real"].contains(&ty.as_str());
                    let ok = match lit {
                        Literal::Int(_) => numeric,
                        Literal::Str(_) => ty == "string",
                    };
                    if !ok {
                        return Err(format!("Cannot compare column '{c}' of type {ty} with {lit:?}"));
                    }
                }
                Op::Project(list) => {
                    cols = list.iter().map(|c| find(&cols, c).ok_or_else(|| missing(c))).collect::<Result<_, _>>()?;
                }
                Op::ProjectAway(list) => {
                    if let Some(c) = list.iter().find(|c| find(&cols, c).is_none()) {
                        return Err(missing(c));
                    }
                    cols.retain(|(n, _)| !list.contains(n));
                }
            }
        }
        Ok(cols.into_iter().map(|(n, _)| n).collect())
    }

    /// The query's results over `rows` (the table's rows of one run), in row order.
    pub fn eval<'a>(&self, rows: impl IntoIterator<Item = &'a Map<String, Value>>) -> Vec<Map<String, Value>> {
        rows.into_iter()
            .filter_map(|row| {
                let mut row = row.clone();
                for op in &self.ops {
                    match op {
                        Op::Where(c, lit) => {
                            let hit = match (lit, row.get(c)) {
                                (Literal::Int(n), Some(v)) => v.as_i64() == Some(*n) || v.as_f64() == Some(*n as f64),
                                (Literal::Str(s), Some(Value::String(v))) => v == s,
                                _ => false,
                            };
                            if !hit {
                                return None;
                            }
                        }
                        Op::Project(list) => {
                            row = list.iter().filter_map(|c| row.get(c).map(|v| (c.clone(), v.clone()))).collect();
                        }
                        Op::ProjectAway(list) => row.retain(|k, _| !list.contains(k)),
                    }
                }
                Some(row)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Vec<(String, String)> {
        [("TimeGenerated", "datetime"), ("RuleShard", "int"), ("TriggerId", "string"), ("Big", "string")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn rows() -> Vec<Map<String, Value>> {
        [
            json!({"RuleShard": 1, "TriggerId": "a", "Big": "x"}),
            json!({"RuleShard": 2, "TriggerId": "b", "Big": "y"}),
            json!({"RuleShard": 1, "TriggerId": "C", "Big": "z"}),
            json!({"TriggerId": "d"}),
        ]
        .into_iter()
        .map(|v| v.as_object().cloned().unwrap())
        .collect()
    }

    #[test]
    fn where_project_and_project_away_evaluate_as_kql_does() {
        let q = parse("T_CL\n| where RuleShard == 1\n| project TriggerId, Big").unwrap();
        assert_eq!(q.table, "T_CL");
        assert_eq!(q.output_columns(&schema()).unwrap(), ["TriggerId", "Big"]);
        let out = q.eval(&rows());
        assert_eq!(out.len(), 2);
        assert_eq!(Value::Object(out[1].clone()), json!({"TriggerId": "C", "Big": "z"}));

        let q = parse("T_CL | where TriggerId == 'c' | project-away Big").unwrap();
        assert!(q.eval(&rows()).is_empty(), "== on strings is case-sensitive");
        let q = parse(r#"T_CL | where TriggerId == "d" | project-away Big"#).unwrap();
        assert_eq!(q.output_columns(&schema()).unwrap(), ["TimeGenerated", "RuleShard", "TriggerId"]);
        assert_eq!(Value::Object(q.eval(&rows())[0].clone()), json!({"TriggerId": "d"}));
        assert_eq!(parse("T_CL").unwrap().eval(&rows()).len(), 4);
    }

    #[test]
    fn anything_outside_the_subset_is_refused_with_the_part_named() {
        for (q, part) in [
            ("T_CL | extend X = 1", "extend"),
            ("T_CL | where RuleShard == 1 and TriggerId == 'a'", "and"),
            ("T_CL | where RuleShard != 1", "where RuleShard"),
            ("T_CL | where true", "where true"),
            ("T_CL | project X = TriggerId", "="),
            ("T_CL | where isnotempty(TriggerId)", "where isnotempty"),
            ("T_CL | take 1", "take"),
            ("union A_CL, B_CL", "A_CL"),
        ] {
            let err = parse(q).expect_err(q);
            assert!(err.contains(part), "{q}: {err}");
        }
    }

    #[test]
    fn unknown_columns_and_mismatched_types_are_semantic_errors() {
        let err = parse("T_CL | project Nope").unwrap().output_columns(&schema()).unwrap_err();
        assert!(err.contains("'Nope'"), "{err}");
        let err = parse("T_CL | project TriggerId | where RuleShard == 1").unwrap().output_columns(&schema());
        assert!(err.unwrap_err().contains("'RuleShard'"), "projected away before the where");
        assert!(parse("T_CL | where TriggerId == 1").unwrap().output_columns(&schema()).is_err());
        assert!(parse("T_CL | where RuleShard == '1'").unwrap().output_columns(&schema()).is_err());
        assert!(parse("T_CL | project-away Nope").unwrap().output_columns(&schema()).is_err());
    }
}
