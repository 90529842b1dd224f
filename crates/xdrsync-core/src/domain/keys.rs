//! Table Storage key escaping. PartitionKey/RowKey may not contain `/ \ # ?`, control characters
//! (U+0000–U+001F, U+007F–U+009F) and must stay ≤ 1 KiB; we percent-encode those (and `%` itself)
//! so any input maps to a valid key and back.

use thiserror::Error;

/// Longest key Table Storage accepts, in characters.
pub const MAX_KEY_CHARS: usize = 1024;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("table key is {0} characters after escaping; the limit is 1024")]
pub struct KeyTooLong(pub usize);

fn must_escape(c: char) -> bool {
    matches!(c, '/' | '\\' | '#' | '?' | '%' | '\'') || c.is_control()
}

/// Escapes a value for use as a PartitionKey or RowKey.
pub fn escape_key(raw: &str) -> Result<String, KeyTooLong> {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if must_escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    let len = out.chars().count();
    if len > MAX_KEY_CHARS {
        return Err(KeyTooLong(len));
    }
    Ok(out)
}

/// Reverses [`escape_key`]. Invalid escapes are kept literally.
pub fn unescape_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = [bytes[i + 1], bytes[i + 2]];
            // Both bytes are ASCII hex digits, so this cannot fail.
            let b = u8::from_str_radix(std::str::from_utf8(&hex).unwrap_or("00"), 16).unwrap_or(0);
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `key` contains nothing Table Storage forbids.
pub fn is_valid_key(key: &str) -> bool {
    key.chars().count() <= MAX_KEY_CHARS && !key.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_forbidden_characters() {
        assert_eq!(escape_key("a/b\\c#d?e%f").unwrap(), "a%2Fb%5Cc%23d%3Fe%25f");
        assert_eq!(escape_key("tab\there").unwrap(), "tab%09here");
        assert_eq!(escape_key("it's").unwrap(), "it%27s");
    }

    #[test]
    fn plain_ids_are_unchanged() {
        assert_eq!(escape_key("2972395").unwrap(), "2972395");
        assert_eq!(escape_key("da637551227677560813_-961444813").unwrap(), "da637551227677560813_-961444813");
    }

    #[test]
    fn rejects_keys_over_the_limit() {
        assert_eq!(escape_key(&"/".repeat(400)), Err(KeyTooLong(1200)));
    }

    proptest! {
        #[test]
        fn escaped_keys_are_valid_and_round_trip(s in "\\PC{0,200}|[\\x00-\\x1f/#?%\\\\a-z\u{80}-\u{9f}]{0,100}") {
            let k = escape_key(&s).unwrap();
            prop_assert!(is_valid_key(&k));
            prop_assert_eq!(unescape_key(&k), s);
        }
    }
}
