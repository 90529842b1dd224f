//! The fuzz's seeded generator: valid envelopes and bodies (what Sentinel's automation and the
//! Functions host send), mutated at the JSON level (nodes replaced, dropped, re-typed, quoted
//! again, nested deep) or the byte level (flips, cuts, splices), or random bytes.

use serde_json::{json, Value};
use xdrsync::domain::work::{ChangeHint, WorkItem};

/// The webhook key of the test settings (`tests/support`).
pub const KEY: &str = "test-webhook-key-0123456789";

/// SplitMix64: a seeded, reproducible stream (the same seed gives the same cases).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Up to `max` - 1 random bytes.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    StandaloneWebhook,
    Function(&'static str),
}

pub const FUNCTIONS: [&str; 7] = [
    "IncidentPoller",
    "IncidentSync",
    "Health",
    "SentinelWebhook",
    "HuntingExport",
    "HuntingEventHub",
    "HuntingStorageExport",
];

/// The valid inputs mutated: what Sentinel's automation and the Functions host send.
pub struct Templates {
    pub webhook: Value,
    pub work_item: String,
    pub events: Value,
    pub tenant: String,
}

/// Incident ids a work item may carry that no Defender incident has: empty, path and query
/// characters, control characters, longer than a Table key may be.
pub fn odd_incident_id(rng: &mut Rng) -> String {
    let ids = ["", " ", "../../x", "a/b", "a#b?c", "%2F", "7\n8", "\u{0}", "'; drop", "😀", "7 ", "-1"];
    match rng.below(ids.len() + 2) {
        i if i < ids.len() => ids[i].to_string(),
        i if i == ids.len() => "9".repeat(1 + rng.below(2_000)),
        _ => "x".repeat(70_000),
    }
}

impl Templates {
    pub fn envelope(&self, function: &str) -> Value {
        let http = |body: &Value| {
            json!({"req": {"Url": "http://localhost:7071/api/sentinel/incidents", "Method": "POST",
                "Query": {}, "Headers": {"Content-Type": ["application/json"], "X-Xdrsync-Key": [KEY]},
                "Params": {}, "Body": body.to_string()}})
        };
        let timer = json!({"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}});
        let data = match function {
            "IncidentSync" => json!({"msg": Value::String(Value::String(self.work_item.clone()).to_string())}),
            "Health" => json!({"req": {"Url": "http://localhost:7071/api/health", "Method": "GET", "Query": {},
                "Headers": {"X-Xdrsync-Key": [KEY]}, "Params": {}}}),
            "SentinelWebhook" => http(&self.webhook),
            "HuntingEventHub" => json!({"events": self.events.clone()}),
            _ => timer,
        };
        let metadata = match function {
            "IncidentSync" => json!({"DequeueCount": 1, "Id": "\"5e1d4f29-8bd6-4f23-9e8f-1b8f0c2c1a11\"",
                "sys": {"MethodName": "IncidentSync"}}),
            other => json!({"sys": {"MethodName": other, "UtcNow": "2026-12-07T10:00:00Z"}}),
        };
        json!({"Data": data, "Metadata": metadata})
    }
}

/// A random JSON value: scalars, huge strings, deep nesting, wrong types.
pub fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 7 } else { 10 }) {
        0 => Value::Null,
        1 => json!(rng.chance(2)),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from_bits(rng.next()).is_finite().then(|| (rng.next() % 1000) as f64 / 7.0)),
        4 => Value::String(String::from_utf8_lossy(&rng.some_bytes(40)).into_owned()),
        5 => Value::String("x".repeat(rng.below(70_000))),
        6 => Value::String(format!("\"{}\"", rng.next())),
        7 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        8 => {
            let keys = ["Data", "Metadata", "msg", "req", "Body", "Headers", "events", "records", "object", "id"];
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                m.insert(keys[rng.below(keys.len())].to_string(), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => {
            // Nested past serde_json's recursion limit (128) or just under it.
            let n = [100, 127, 129, 5_000][rng.below(4)];
            let text = format!("{}1{}", "[".repeat(n), "]".repeat(n));
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }
}

/// Replaces, drops or re-types one random node of `v`.
pub fn mutate_json(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() && !rng.chance(4) => {
            let key = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
            match rng.below(5) {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    let val = m.remove(&key).unwrap_or(Value::Null);
                    m.insert(format!("{key}{}", rng.below(3)), val);
                }
                _ => mutate_json(rng, m.get_mut(&key).expect("key present")),
            }
        }
        Value::Array(a) if !a.is_empty() && !rng.chance(4) => {
            let i = rng.below(a.len());
            if rng.chance(4) {
                a.remove(i);
            } else {
                mutate_json(rng, &mut a[i]);
            }
        }
        Value::String(s) if rng.chance(2) => {
            // Text inside text: mutate what it holds (a quoted message, a body), or quote it again.
            match serde_json::from_str::<Value>(s) {
                Ok(mut inner) if !rng.chance(4) => {
                    mutate_json(rng, &mut inner);
                    *s = inner.to_string();
                }
                _ => *s = Value::String(s.clone()).to_string(),
            }
        }
        other => *other = random_value(rng, 0),
    }
}

/// Byte-level damage: flips, cuts, splices, random insertions.
pub fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.extend(rng.bytes(8));
        }
        let at = rng.below(b.len());
        match rng.below(5) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b.truncate(at),
            2 => {
                let n = rng.below(16).min(b.len() - at);
                b.drain(at..at + n);
            }
            3 => {
                let junk = rng.some_bytes(16);
                b.splice(at..at, junk);
            }
            _ => {
                let n = rng.below(32).min(b.len() - at);
                let piece = b[at..at + n].to_vec();
                b.splice(at..at, piece);
            }
        }
    }
}

/// One generated case: where it goes, its body and (the webhook) headers.
pub struct Case {
    pub target: Target,
    pub body: Vec<u8>,
    pub key: Option<String>,
    pub content_type: Option<String>,
}

pub fn generate(rng: &mut Rng, t: &Templates) -> Case {
    let target =
        if rng.chance(8) { Target::StandaloneWebhook } else { Target::Function(FUNCTIONS[rng.below(FUNCTIONS.len())]) };
    let template = match target {
        Target::StandaloneWebhook => t.webhook.clone(),
        Target::Function(f) => t.envelope(f),
    };
    let body = match rng.below(11) {
        0 => rng.some_bytes(300),
        10 if target == Target::Function("IncidentSync") => {
            // A well-formed work item naming an incident (or tenant) that cannot exist.
            let tenant = if rng.chance(3) { "72f988bf-0000-0000-0000-000000000000" } else { t.tenant.as_str() };
            let item = WorkItem::reconcile(tenant, &odd_incident_id(rng), ChangeHint::Defender).to_json();
            let data = json!({"msg": Value::String(Value::String(item).to_string())});
            json!({"Data": data, "Metadata": {"DequeueCount": 1 + rng.below(6), "Id": "\"m\""}})
                .to_string()
                .into_bytes()
        }
        10 => template.to_string().into_bytes(),
        1..=4 => {
            let mut v = template;
            for _ in 0..1 + rng.below(3) {
                mutate_json(rng, &mut v);
            }
            v.to_string().into_bytes()
        }
        5..=8 => {
            let mut b = template.to_string().into_bytes();
            mutate_bytes(rng, &mut b);
            b
        }
        _ => template.to_string().into_bytes(),
    };
    let key = match rng.below(6) {
        0 => None,
        1 => Some(format!("{KEY}x")),
        _ => Some(KEY.to_string()),
    };
    let content_type = match rng.below(6) {
        0 => None,
        1 => Some("text/plain".to_string()),
        2 => Some("application/json; charset=utf-8".to_string()),
        _ => Some("application/json".to_string()),
    };
    Case { target, body, key, content_type }
}
