//! Table Storage keys.
//!
//! The Table service forbids `/`, `\`, `#`, `?` and the control characters U+0000–U+001F and
//! U+007F–U+009F in PartitionKey and RowKey, and takes keys of up to 1 KiB ("Understanding the
//! Table service data model", Characters disallowed in key fields:
//! <https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model#characters-disallowed-in-key-fields>).
//! Two more characters are allowed but unsafe: `%`, because the service and some clients
//! URL-decode keys in some operations (the Azure Storage team's note "PartitionKey or RowKey
//! containing the percent '%' character causes some Windows Azure Tables APIs to fail", and
//! Azurite issue 1377 for deletes), and `'`, the OData string delimiter in the
//! `Table(PartitionKey='…',RowKey='…')` addresses and `$filter` expressions (azure-sdk-for-net
//! issue 31464).
//!
//! So the encoding is: a value made only of `[A-Za-z0-9._-]` is its own key (tenant GUIDs,
//! numeric incident ids and Defender alert ids keep the keys they always had); any other value
//! becomes `~` followed by the lowercase hex of its UTF-8 bytes. A safe value never contains
//! `~`, so the two forms never collide and the encoding is injective. Every key is ASCII from
//! `[A-Za-z0-9._~-]`, so characters and bytes count the same against the 1 KiB limit.

use thiserror::Error;

/// Longest key Table Storage accepts. Keys are ASCII, so this is both characters and bytes.
pub const MAX_KEY_CHARS: usize = 1024;

/// First character of a hex-encoded key; never part of a value that passes through unchanged.
const HEX_PREFIX: char = '~';

#[derive(Debug, Error, PartialEq, Eq)]
#[error("table key is {0} characters after escaping; the limit is 1024")]
pub struct KeyTooLong(pub usize);

/// Bytes a value may be made of to be its own key.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Escapes a value for use as a PartitionKey or RowKey: unchanged when it is made only of
/// `[A-Za-z0-9._-]`, else `~` + the lowercase hex of its UTF-8 bytes. Fails when the key
/// would be longer than [`MAX_KEY_CHARS`].
pub fn escape_key(raw: &str) -> Result<String, KeyTooLong> {
    if raw.bytes().all(is_plain) {
        return if raw.len() > MAX_KEY_CHARS { Err(KeyTooLong(raw.len())) } else { Ok(raw.to_owned()) };
    }
    let len = 1 + 2 * raw.len();
    if len > MAX_KEY_CHARS {
        return Err(KeyTooLong(len));
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(len);
    out.push(HEX_PREFIX);
    for b in raw.bytes() {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    Ok(out)
}

/// Reverses [`escape_key`]. A key that is not a well-formed `~` + hex form is returned as it is,
/// after undoing the `%XX` escapes that versions before the `~` form wrote (a key from
/// [`escape_key`] never contains `%`, so this only changes keys of rows written earlier).
pub fn unescape_key(key: &str) -> String {
    if let Some(hex) = key.strip_prefix(HEX_PREFIX) {
        if let Some(s) = decode_hex(hex) {
            return s;
        }
    }
    unescape_percent(key)
}

fn decode_hex(hex: &str) -> Option<String> {
    let digits = hex.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let bytes = digits.chunks(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The earlier encoding's decoder: `%XX` → byte; anything else, including invalid escapes, kept.
fn unescape_percent(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(bytes[i + 1]) << 4 | hex(bytes[i + 2]));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The key versions before this encoding wrote (`%XX` for `/ \ # ? % '` and control characters).
/// Read only to carry rows written by them over to [`escape_key`]'s keys.
pub fn legacy_percent_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '/' | '\\' | '#' | '?' | '%' | '\'') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// True when `key` contains nothing Table Storage forbids (the documented rule; keys from
/// [`escape_key`] also avoid `%` and `'`).
pub fn is_valid_key(key: &str) -> bool {
    key.chars().count() <= MAX_KEY_CHARS && !key.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Nothing the service forbids, nothing it or a client may decode (`%`), no OData quote,
    /// and only the characters the encoding produces.
    fn is_safe_key(k: &str) -> bool {
        is_valid_key(k)
            && k.bytes().all(|b| is_plain(b) || b == b'~')
            && !k.contains(['%', '\'', '/', '\\', '#', '?'])
            && !k.chars().any(|c| c.is_control())
    }

    #[test]
    fn plain_ids_are_unchanged() {
        for id in
            ["2972395", "da637551227677560813_-961444813", "72f988bf-86f1-41af-91ab-2d7cd011db47", "alerts.v2", ""]
        {
            assert_eq!(escape_key(id).unwrap(), id);
        }
    }

    #[test]
    fn workspace_resource_ids_are_hex_encoded() {
        let id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/soc/providers/microsoft.operationalinsights/workspaces/sentinel";
        let k = escape_key(id).unwrap();
        assert_eq!(
            k,
            "~2f737562736372697074696f6e732f30303030303030302d303030302d303030302d303030302d3030303030303030303030302f\
             7265736f7572636567726f7570732f736f632f70726f7669646572732f6d6963726f736f66742e6f7065726174696f6e616c696e\
             7369676874732f776f726b7370616365732f73656e74696e656c"
        );
        assert!(is_safe_key(&k));
        assert_eq!(unescape_key(&k), id);
    }

    #[test]
    fn guest_upns_are_hex_encoded() {
        let upn = "jane_contoso.com#EXT#@fabrikam.onmicrosoft.com";
        let k = escape_key(upn).unwrap();
        assert_eq!(k, "~6a616e655f636f6e746f736f2e636f6d23455854234066616272696b616d2e6f6e6d6963726f736f66742e636f6d");
        assert!(is_safe_key(&k));
        assert_eq!(unescape_key(&k), upn);
    }

    #[test]
    fn forbidden_and_unsafe_characters_never_reach_a_key() {
        assert_eq!(escape_key("a/b").unwrap(), "~612f62");
        assert_eq!(escape_key("it's").unwrap(), "~69742773");
        assert_eq!(escape_key("50%").unwrap(), "~353025");
        assert_eq!(escape_key("tab\there").unwrap(), "~7461620968657265");
        assert_eq!(escape_key("é").unwrap(), "~c3a9");
        // A value that looks like an encoded key is encoded too: `~` is not plain.
        assert_eq!(escape_key("~612f62").unwrap(), "~7e363132663632");
    }

    #[test]
    fn keys_stay_within_1_kib() {
        assert_eq!(escape_key(&"a".repeat(1024)).unwrap().len(), 1024);
        assert_eq!(escape_key(&"a".repeat(1025)), Err(KeyTooLong(1025)));
        // `~` + 2 hex digits a byte: 511 bytes fit, 512 do not.
        assert_eq!(escape_key(&"/".repeat(511)).unwrap().len(), 1023);
        assert_eq!(escape_key(&"/".repeat(512)), Err(KeyTooLong(1025)));
        assert_eq!(escape_key(&"é".repeat(400)), Err(KeyTooLong(1601)));
    }

    #[test]
    fn keys_written_by_the_percent_encoding_still_decode() {
        assert_eq!(unescape_key("tenant%2F1"), "tenant/1");
        assert_eq!(
            unescape_key("jane_contoso.com%23EXT%23@fabrikam.onmicrosoft.com"),
            "jane_contoso.com#EXT#@fabrikam.onmicrosoft.com"
        );
        assert_eq!(unescape_key("100%"), "100%");
        assert_eq!(unescape_key("~zz"), "~zz");
        assert_eq!(unescape_key("~c3"), "~c3", "not UTF-8: kept as it is");
    }

    proptest! {
        #[test]
        fn any_string_gets_a_safe_key_that_decodes_back(
            s in "\\PC{0,200}|[\\x00-\\x1f\\x7f-\\u{9f}/#?%'\\\\~a-z]{0,100}|.{0,100}"
        ) {
            match escape_key(&s) {
                Ok(k) => {
                    prop_assert!(is_safe_key(&k), "{k:?}");
                    prop_assert_eq!(unescape_key(&k), s);
                }
                Err(KeyTooLong(n)) => prop_assert_eq!(n, 1 + 2 * s.len()),
            }
        }

        #[test]
        fn distinct_values_get_distinct_keys(a in "\\PC{0,40}|[a-z~%/]{0,8}", b in "\\PC{0,40}|[a-z~%/]{0,8}") {
            prop_assume!(a != b);
            prop_assert_ne!(escape_key(&a).unwrap(), escape_key(&b).unwrap());
        }

        #[test]
        fn plain_values_are_their_own_keys(s in "[A-Za-z0-9._-]{0,300}") {
            prop_assert_eq!(escape_key(&s).unwrap(), s);
        }
    }
}
