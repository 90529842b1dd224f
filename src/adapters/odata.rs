//! OData helpers shared by the Graph and ARM adapters: query encoding, string literals, and
//! following `@odata.nextLink`/`nextLink` verbatim with a guard against servers that loop.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::http::{Call, ServiceClient};
use crate::error::PortError;

/// Characters escaped in query values (space, quotes, and URL delimiters).
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'=')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Characters escaped in a path segment (a UPN may hold `#EXT#`).
const PATH_SEGMENT: &AsciiSet = &QUERY_VALUE.add(b'/').add(b'\\');

pub fn encode_query_value(v: &str) -> String {
    utf8_percent_encode(v, QUERY_VALUE).to_string()
}

pub fn encode_path_segment(v: &str) -> String {
    utf8_percent_encode(v, PATH_SEGMENT).to_string()
}

/// An OData string literal: single quotes doubled.
pub fn string_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", alias = "nextLink", default)]
    next_link: Option<String>,
}

/// GETs one page: its items and its `nextLink`.
pub async fn get_page<T: DeserializeOwned>(
    client: &ServiceClient,
    call: &Call,
) -> Result<(Vec<T>, Option<String>), PortError> {
    let page: Page<T> = client.send(call).await?.json(client.service)?;
    Ok((page.value, page.next_link.filter(|l| !l.is_empty())))
}

/// Most pages one listing will follow; a server that keeps returning nextLinks past this is
/// treated as broken rather than looped on forever.
const MAX_PAGES: usize = 20_000;

/// GETs `first` and every `nextLink` after it, concatenating `value` arrays.
pub async fn get_all_pages<T: DeserializeOwned>(client: &ServiceClient, first: Call) -> Result<Vec<T>, PortError> {
    let mut out = Vec::new();
    let mut call = first;
    let mut seen_links = std::collections::HashSet::new();
    for _ in 0..MAX_PAGES {
        let page: Page<T> = client.send(&call).await?.json(client.service)?;
        out.extend(page.value);
        match page.next_link.filter(|l| !l.is_empty()) {
            Some(next) => {
                if !seen_links.insert(next.clone()) {
                    return Err(PortError::decode(client.service, "nextLink repeated an earlier page"));
                }
                call = Call { url: next, ..call };
            }
            None => return Ok(out),
        }
    }
    Err(PortError::decode(client.service, "more than 20000 pages"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_encoding() {
        assert_eq!(string_literal("O'Brien"), "'O''Brien'");
        assert_eq!(encode_query_value("incidentId eq '29'"), "incidentId%20eq%20%2729%27");
        assert_eq!(encode_path_segment("ann_contoso.com#EXT#@fabrikam.com"), "ann_contoso.com%23EXT%23@fabrikam.com");
    }
}
