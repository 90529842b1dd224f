//! Logs Ingestion batching (ARCHITECTURE.md: “Logs Ingestion”), pure: JSON rows packed into arrays of at most
//! `max_bytes` *before* compression (the service counts uncompressed bytes too), in order,
//! losing nothing. A row that alone exceeds the limit is reported, not silently dropped. Every
//! row keeps its index in the input, so the caller learns exactly which rows a request carried.

/// One request body's worth of already-serialized JSON rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    rows: Vec<String>,
    /// `indexes[i]` is the position of `rows[i]` in the input of [`pack`].
    indexes: Vec<usize>,
    bytes: usize,
}

impl Batch {
    fn new() -> Self {
        Self { rows: Vec::new(), indexes: Vec::new(), bytes: 2 }
    }

    fn push(&mut self, index: usize, row: String) {
        self.bytes += row.len() + usize::from(!self.rows.is_empty());
        self.rows.push(row);
        self.indexes.push(index);
    }

    fn cost_of(&self, row: &str) -> usize {
        self.bytes + row.len() + usize::from(!self.rows.is_empty())
    }

    /// Rows in this batch, in input order.
    pub fn rows(&self) -> &[String] {
        &self.rows
    }

    /// The input positions of [`Batch::rows`], in the same order.
    pub fn indexes(&self) -> &[usize] {
        &self.indexes
    }

    /// Size of [`Batch::body`] in bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// The JSON array request body.
    pub fn body(&self) -> String {
        let mut s = String::with_capacity(self.bytes);
        s.push('[');
        for (i, r) in self.rows.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(r);
        }
        s.push(']');
        s
    }

    /// Splits into two halves (for a 413 answer); `None` when it holds one row.
    pub fn split(self) -> Option<(Batch, Batch)> {
        if self.rows.len() < 2 {
            return None;
        }
        let mid = self.rows.len() / 2;
        let mut first = Batch::new();
        let mut second = Batch::new();
        for (i, (index, r)) in self.indexes.into_iter().zip(self.rows).enumerate() {
            if i < mid {
                first.push(index, r)
            } else {
                second.push(index, r)
            }
        }
        Some((first, second))
    }
}

/// The outcome of packing: batches to send, and the indexes of rows too big to send at all.
#[derive(Debug, Default)]
pub struct Packed {
    pub batches: Vec<Batch>,
    pub oversize: Vec<usize>,
}

/// Packs serialized rows greedily into batches of at most `max_bytes`.
pub fn pack(rows: impl IntoIterator<Item = String>, max_bytes: usize) -> Packed {
    let mut packed = Packed::default();
    let mut current = Batch::new();
    for (i, row) in rows.into_iter().enumerate() {
        if row.len() + 2 > max_bytes {
            packed.oversize.push(i);
            continue;
        }
        if current.cost_of(&row) > max_bytes {
            packed.batches.push(std::mem::replace(&mut current, Batch::new()));
        }
        current.push(i, row);
    }
    if !current.rows.is_empty() {
        packed.batches.push(current);
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn body_is_a_json_array_of_the_rows() {
        let p = pack(vec!["{\"a\":1}".to_string(), "{\"b\":2}".to_string()], 1000);
        assert_eq!(p.batches.len(), 1);
        assert_eq!(p.batches[0].body(), "[{\"a\":1},{\"b\":2}]");
        assert_eq!(p.batches[0].len_bytes(), p.batches[0].body().len());
    }

    #[test]
    fn a_row_bigger_than_the_limit_is_reported() {
        let p = pack(vec!["x".repeat(50), "y".repeat(5)], 20);
        assert_eq!(p.oversize, vec![0]);
        assert_eq!(p.batches.len(), 1);
    }

    #[test]
    fn split_halves_keep_order() {
        let p = pack((0..5).map(|i| i.to_string()), 1000);
        let (a, b) = p.batches.into_iter().next().unwrap().split().unwrap();
        assert_eq!(a.body(), "[0,1]");
        assert_eq!(b.body(), "[2,3,4]");
        assert_eq!((a.indexes(), b.indexes()), (&[0, 1][..], &[2, 3, 4][..]));
    }

    proptest! {
        #[test]
        fn never_over_limit_loses_nothing_keeps_order(
            sizes in proptest::collection::vec(1usize..400, 0..200),
            max in 10usize..2000,
        ) {
            let rows: Vec<String> = sizes.iter().enumerate()
                .map(|(i, n)| format!("{i:0>width$}", width = *n)).collect();
            let p = pack(rows.clone(), max);
            let mut out = Vec::new();
            for b in &p.batches {
                prop_assert!(b.body().len() <= max);
                prop_assert_eq!(b.body().len(), b.len_bytes());
                out.extend(b.rows().iter().cloned());
                for (index, row) in b.indexes().iter().zip(b.rows()) {
                    prop_assert_eq!(&rows[*index], row, "each row keeps its input position");
                }
            }
            let expected: Vec<String> = rows.iter().enumerate()
                .filter(|(i, _)| !p.oversize.contains(i)).map(|(_, r)| r.clone()).collect();
            prop_assert_eq!(out, expected);
            for i in &p.oversize { prop_assert!(rows[*i].len() + 2 > max); }
        }
    }
}
