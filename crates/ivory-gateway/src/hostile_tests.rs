//! Hostile input (issue 9 item 5): a property-based fuzz of every endpoint through the real
//! router over `LocalBackend`. Each case seeds a little stock and a hold, then sends 1 to 4
//! requests of one endpoint with well-formed, malformed and adversarial bodies, paths, queries,
//! headers and tokens, and checks after each one:
//!
//! - no panic, and no 5xx but the documented, retryable 503 with `Retry-After` (only while
//!   the backend is made to fail);
//! - every non-2xx body is `{code, message, statusCode}` with a code from the documented list;
//! - a refusal changed nothing: the shards' state hashes are equal before and after (the clock
//!   is frozen so a refused proposal cannot move it). Refusals that the design remembers (409,
//!   404 `reservation.not_found`: the answer is kept under the id) or that leave a refused
//!   cross-shard hold's released parts behind are checked on the stock instead: every
//!   partition's quantities are equal before and after.
//!
//! Cases per endpoint: `IVORY_FUZZ_CASES` (default 128: about 15 s for every endpoint on 2 cores;
//! the decoding smoke test in `fuzzing` runs 40 times as many).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use ivory_core::model::BASE_DIMENSIONS;
use ivory_core::{Qty, Query, ReadRequest, ReadResponse};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::local::LocalBackend;
use crate::{Backend, GatewayConfig, router};

const ENV: &str = "fz";
const KEY: &[u8] = b"hostile signing key";
const SHARDS: u32 = 4;
/// Small enough that an oversize body is cheap to build; a 513-item bulk still fits.
const BODY_LIMIT: usize = 256 * 1024;

/// Every code the gateway documents (crates/ivory-gateway/README.md), plus the injected
/// backend failures.
const KNOWN_CODES: &[&str] = &[
    "body.malformed",
    "body.not_object",
    "body.not_array",
    "body.unreadable",
    "body.too_large",
    "field.missing",
    "field.empty",
    "field.bad_type",
    "field.bad_number",
    "field.bad_value",
    "field.too_long",
    "field.duplicate",
    "field.bad_dimensions",
    "field.bad_dimension",
    "field.bad_timestamp",
    "limit.bulk_items",
    "limit.products",
    "limit.locations",
    "limit.organizations",
    "limit.tuples",
    "limit.page_size",
    "limit.hold_lines",
    "header.api_version",
    "config.invalid",
    "command.invalid",
    "query.invalid",
    "token.missing_context",
    "token.bad_context",
    "token.missing_secret",
    "auth.missing_token",
    "auth.invalid_token",
    "auth.expired_token",
    "auth.invalid_client",
    "auth.wrong_environment",
    "reservation.not_found",
    "route.not_found",
    "route.method_not_allowed",
    "metrics.disabled",
    "stock.insufficient",
    "event.conflict",
    "command.refused",
    "config.partition_mode_locked",
    "hold.invalid",
    "hold.not_found",
    "hold.insufficient",
    "hold.conflict",
    "raft.no_quorum",
];

/// Refusals whose answer the shard remembers under the client's id (exactly once), or whose
/// cross-shard protocol leaves released parts behind: the stock must not change.
const REMEMBERED: &[&str] = &[
    "stock.insufficient",
    "event.conflict",
    "reservation.not_found",
    "command.refused",
    "hold.insufficient",
    "hold.conflict",
    "hold.invalid",
];

pub(crate) fn fuzz_cases() -> u32 {
    std::env::var("IVORY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

// ---- requests ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Auth {
    Good,
    Missing,
    Garbage(String),
    OtherEnvironment,
    Expired,
}

#[derive(Clone)]
struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    auth: Auth,
    /// Retryable backend failures to inject before this request.
    fail_calls: u32,
}

impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.body.as_ref().map(|b| {
            let text = String::from_utf8_lossy(b);
            if text.len() > 600 {
                format!("{}... ({} bytes)", &text[..text.floor_char_boundary(600)], b.len())
            } else {
                text.into_owned()
            }
        });
        f.debug_struct("Req")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("auth", &self.auth)
            .field("fail_calls", &self.fail_calls)
            .field("body", &body)
            .finish()
    }
}

// ---- values -------------------------------------------------------------------------------------

const PRODUCTS: &[&str] = &["P1", "P2", "Ünï-😀"];
const SITES: &[&str] = &["1", "2"];
const LOCATIONS: &[&str] = &["11", "12"];
const COLORS: &[&str] = &["red", "blue", ""];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(list).prop_map(str::to_string)
}

/// Strings a parser should refuse or survive.
const NASTY_STRINGS: &[&str] = &[
    "",
    "   ",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e400",
    "-1e400",
    "1e-400",
    "1e15",
    "1000000000000001",
    "0.000000001",
    "99999999999999999999999999999999",
    "1e4294967296",
    "1e-4294967296",
    "1E+9223372036854775807",
    "0x10",
    "1_000",
    " 12 ",
    "+5",
    "-0",
    "--1",
    ".",
    "e5",
    "١٢٣",
    "１２",
    "true",
    "FALSE",
    "null",
    "2023-02-30",
    "2023-02-31T00:00:00Z",
    "2023-13-01",
    "0000-00-00T00:00:00Z",
    "9999-12-31T23:59:60Z",
    "2023-09-26T25:00:00Z",
    "2023-09-26T00:00:00+05:00",
    "2023-09-26T00:00:00.9999999999999999999Z",
    "-2023-01-01",
    "+2023-01-01T00:00:00Z",
    "2023-1-1",
    "Tue Sep 31 2023",
    "Foo Bar 2023",
    "Sep 26 99999999999",
    "Tue Sep 26 9223372036854775807",
    "Feb 1 -9223372036854775808",
    "١٩٧٠-٠١-٠١",
    "\u{0}",
    "a\u{7f}b",
    "\u{85}",
    "\u{202e}evil",
    "zero\u{200b}width",
    "e\u{301}\u{301}\u{301}",
    "𝕏😀👩‍👩‍👧",
    "~",
    "a~b~c",
    "../..",
    "%00",
    "%FF",
    "\\u0000",
    "0:1,1:",
    "4294967296:1",
    "0:18446744073709551616",
];

/// Dates a schedule key, an ATP window or `modifiedDateTimeUTC` may carry.
const BAD_DATES: &[&str] = &[
    "2023-02-30",
    "2023-02-29",
    "2024-02-30T00:00:00Z",
    "2023-13-01",
    "2023-00-10",
    "0000-00-00",
    "9999-12-31",
    "-001-01-01",
    "+2023-01-01",
    "2023-09-26T25:61:61Z",
    "2023-09-26T00:00:00.Z",
    "2023-09-26T00:00:00+01:00",
    "2023/9/26",
    "26/09/2023",
    "Tue Sep 31 2023",
    "Sep 26 0",
    "Sep 26 99999999999",
    "Tue Sep 26 9223372036854775807",
    "Feb 1 -9223372036854775808",
    "Sep -26 2023",
    "Septembre 26 2023",
    "٢٠٢٣-٠٩-٢٦",
    "2023-09-26\u{0}",
    "1e10",
    "",
];

fn date_text() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => (0i64..10).prop_map(|days| ivory_core::date::format_day(crate::queries::today() + days)),
        2 => proptest::sample::select(BAD_DATES).prop_map(str::to_string),
        1 => "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,4})?Z?)?",
    ]
}

/// JSON numbers at the edges of what serde_json and rust_decimal read.
const NASTY_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-0.0",
    "1e15",
    "1000000000000000.5",
    "-1000000000000001",
    "0.00000001",
    "0.000000001",
    "1e-9",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1.7976931348623157e308",
    "5e-324",
    "123456789012345678901234567890",
    "1e28",
    "79228162514264337593543950336",
];

fn nasty_number() -> impl Strategy<Value = Value> {
    proptest::sample::select(NASTY_NUMBERS).prop_map(|t| serde_json::from_str(t).unwrap_or(Value::Null))
}

fn long_string() -> impl Strategy<Value = String> {
    prop_oneof![
        (250usize..270).prop_map(|n| "x".repeat(n)),
        (60usize..70).prop_map(|n| "😀".repeat(n)),
        Just("y".repeat(20_000)),
    ]
}

/// A scalar of any JSON type, including ones no field takes.
fn adversarial_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => proptest::sample::select(NASTY_STRINGS).prop_map(|s| json!(s)),
        2 => nasty_number(),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        1 => "\\PC{0,12}".prop_map(Value::String),
        1 => any::<String>().prop_map(Value::String),
        1 => long_string().prop_map(Value::String),
    ]
}

/// A value of any JSON type: a scalar, or arrays and objects of them.
fn adversarial_value() -> impl Strategy<Value = Value> {
    adversarial_leaf().prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (1i64..20).prop_map(|n| json!(n)),
        1 => (1i64..20).prop_map(|n| json!(n.to_string())),
        1 => Just(json!(0.5)),
        1 => Just(json!(-3)),
    ]
}

fn dims() -> impl Strategy<Value = Value> {
    (pick(SITES), pick(LOCATIONS), pick(COLORS))
        .prop_map(|(s, l, c)| json!({"siteId": s, "locationId": l, "colorId": c}))
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-c][0-3]", 1 => "\\PC{1,6}"]
}

/// A well-formed item of a write (it may still be refused for stock).
fn write_item(kind: &'static str) -> BoxedStrategy<Value> {
    let base = (id(), pick(PRODUCTS), dims(), quantity());
    match kind {
        "change" | "set" => (
            base,
            prop::option::of(prop_oneof![Just("2024-01-31T12:00:00Z".to_string()), date_text()]),
        )
            .prop_map(move |((id, p, d, q), time)| {
                let mut v = json!({"id": id, "organizationId": "usmf", "productId": p, "dimensions": d,
                    "quantities": {"pos": {"inbound": q}}});
                if let (true, Some(t)) = (kind == "set", time) {
                    v["modifiedDateTimeUTC"] = json!(t);
                }
                v
            })
            .boxed(),
        "reserve" => (base, any::<bool>())
            .prop_map(|((id, p, d, q), checked)| {
                json!({"id": id, "organizationId": "usmf", "productId": p, "dimensions": d,
                    "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": q,
                    "ifCheckAvailForReserv": checked})
            })
            .boxed(),
        "unreserve" => (base, prop_oneof![Just("seed-reservation".to_string()), id()])
            .prop_map(|((id, p, d, q), rid)| {
                json!({"id": id, "organizationId": "usmf", "productId": p, "dimensions": d,
                    "reservationId": rid, "OffsetQty": q})
            })
            .boxed(),
        "schedule" => (base, date_text())
            .prop_map(|((id, p, d, q), day)| {
                json!({"id": id, "organizationId": "usmf", "productId": p, "dimensions": d,
                    "quantitiesByDate": {day: {"pos": {"inbound": q}}}})
            })
            .boxed(),
        "allocate" | "unallocate" | "consume" => (base, pick(&["Online", "Store"]))
            .prop_map(move |((id, p, d, q), channel)| {
                let mut v = json!({"id": id, "organizationId": "usmf", "productId": p, "dimensions": d,
                    "groups": {"channel": channel, "customerGroup": "VIP"}, "quantity": q});
                if kind == "consume" {
                    v["physicalMeasures"] = json!({"iv": {"softreservphysical": "Addition"}});
                }
                v
            })
            .boxed(),
        "reallocate" => base
            .prop_map(|(id, p, d, q)| {
                json!({"id": id, "organizationId": "usmf", "productId": p, "dimensions": d,
                    "sourceGroups": {"channel": "Online", "customerGroup": "VIP"},
                    "groups": {"channel": "Store", "customerGroup": "VIP"}, "quantity": q})
            })
            .boxed(),
        _ => unreachable!("no write kind {kind}"),
    }
}

fn hold_item() -> impl Strategy<Value = Value> {
    (pick(PRODUCTS), dims(), quantity(), any::<bool>()).prop_map(
        |(p, d, q, oversell)| json!({"productId": p, "dimensions": d, "quantity": q, "allowOversell": oversell}),
    )
}

fn index_query_body() -> impl Strategy<Value = Value> {
    (
        proptest::sample::subsequence(PRODUCTS, 0..=3),
        proptest::sample::subsequence(SITES, 0..=2),
        proptest::sample::subsequence(LOCATIONS, 0..=2),
        any::<bool>(),
        prop::option::of((prop::option::of(date_text()), prop::option::of(date_text()))),
    )
        .prop_map(|(p, s, l, group, atp)| {
            let mut v = json!({"filters": {"organizationId": ["usmf"], "productId": p, "siteId": s, "locationId": l},
                "groupByValues": if group { json!(["colorId", "sizeId"]) } else { json!([]) },
                "returnNegative": true});
            if let Some((from, to)) = atp {
                v["QueryATP"] = json!(true);
                v["groupByValues"] = json!(["colorId", "sizeId"]);
                v["ATPFromDate"] = json!(from);
                v["ATPToDate"] = json!(to);
            }
            v
        })
}

fn exact_query_body() -> impl Strategy<Value = Value> {
    (pick(PRODUCTS), pick(SITES), pick(LOCATIONS), pick(COLORS)).prop_map(|(p, s, l, c)| {
        json!({"filters": {"organizationId": ["usmf"], "productId": [p],
            "dimensions": ["siteId", "locationId", "colorId"], "values": [[s, l, c]]}, "returnNegative": true})
    })
}

/// Follows `selector` down into `v` (indexes taken modulo the children) and replaces what it
/// reaches, removes it, or renames it.
fn mutate(v: &mut Value, selector: &[usize], action: &Mutation) {
    let (first, rest) = match selector.split_first() {
        Some(x) => x,
        None => {
            if let Mutation::Replace(new) = action {
                *v = new.clone();
            }
            return;
        }
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(first % map.len()).cloned().unwrap_or_default();
            if rest.is_empty() {
                match action {
                    Mutation::Replace(new) => {
                        map.insert(key, new.clone());
                    }
                    Mutation::Remove => {
                        map.remove(&key);
                    }
                    Mutation::Rename(style) => {
                        if let Some(old) = map.remove(&key) {
                            map.insert(style.apply(&key), old);
                        }
                    }
                    Mutation::Rekey(new_key) => {
                        if let Some(old) = map.remove(&key) {
                            map.insert(new_key.clone(), old);
                        }
                    }
                }
            } else if let Some(child) = map.get_mut(&key) {
                mutate(child, rest, action);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = first % items.len();
            if rest.is_empty() {
                match action {
                    Mutation::Replace(new) => items[i] = new.clone(),
                    Mutation::Remove => {
                        items.remove(i);
                    }
                    Mutation::Rename(_) | Mutation::Rekey(_) => {}
                }
            } else {
                mutate(&mut items[i], rest, action);
            }
        }
        _ => {
            if let Mutation::Replace(new) = action {
                *v = new.clone();
            }
        }
    }
}

#[derive(Clone, Debug)]
enum KeyStyle {
    Upper,
    Lower,
    Padded,
}

impl KeyStyle {
    fn apply(&self, key: &str) -> String {
        match self {
            KeyStyle::Upper => key.to_uppercase(),
            KeyStyle::Lower => key.to_lowercase(),
            KeyStyle::Padded => format!(" {key}"),
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Replace(Value),
    Remove,
    Rename(KeyStyle),
    /// A key (a date of `quantitiesByDate`, a data source, a dimension) becomes another.
    Rekey(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        // Mostly a scalar of the wrong type or range in place of a field's value.
        4 => adversarial_leaf().prop_map(Mutation::Replace),
        1 => adversarial_value().prop_map(Mutation::Replace),
        2 => Just(Mutation::Remove),
        1 => prop_oneof![Just(KeyStyle::Upper), Just(KeyStyle::Lower), Just(KeyStyle::Padded)]
            .prop_map(Mutation::Rename),
        1 => prop_oneof![proptest::sample::select(NASTY_STRINGS).prop_map(str::to_string), "\\PC{0,12}"]
            .prop_map(Mutation::Rekey),
    ]
}

/// A well-formed value, or the same with 1 to 3 mutations anywhere in it.
fn mutated(valid: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    let edits = proptest::collection::vec((proptest::collection::vec(any::<usize>(), 1..4), mutation()), 1..4);
    prop_oneof![
        2 => valid.clone(),
        3 => (valid, edits).prop_map(|(mut v, edits)| {
            for (selector, m) in &edits {
                mutate(&mut v, selector, m);
            }
            v
        }),
    ]
    .boxed()
}

/// Bodies that are not JSON, or are JSON no parser should have to walk.
fn raw_junk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"   \n".to_vec()),
        Just(b"null".to_vec()),
        Just(b"\xef\xbb\xbf{}".to_vec()),
        Just(b"{\"id\": \"\xff\xfe\"}".to_vec()),
        Just(b"{\"id\": \"\\ud800\"}".to_vec()),
        Just(b"{\"quantity\": 1e999999}".to_vec()),
        Just(format!("{{\"quantity\": {}}}", "9".repeat(500)).into_bytes()),
        Just(b"{\"id\":\"a\",\"ID\":\"b\",\"Id\":\"c\",\"id\":\"d\"}".to_vec()),
        Just(b"{\"id\":\"a\",\"organizationid\":\"usmf\",\"OrganizationId\":\"other\"}".to_vec()),
        (1usize..400).prop_map(|n| "[".repeat(n).into_bytes()),
        (120usize..140).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        (100usize..127).prop_map(|n| format!("{}{}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..64),
        "\\PC{0,40}".prop_map(String::into_bytes),
        Just(vec![b' '; BODY_LIMIT + 1]),
    ]
}

/// A body: mostly well-formed or mutated JSON, sometimes a truncated or junk text.
fn body_of(valid: BoxedStrategy<Value>) -> BoxedStrategy<Vec<u8>> {
    let json = mutated(valid);
    prop_oneof![
        8 => json.clone().prop_map(|v| v.to_string().into_bytes()),
        1 => (json, any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = v.to_string().into_bytes();
            let n = cut.index(text.len().max(1));
            text[..n].to_vec()
        }),
        2 => raw_junk(),
    ]
    .boxed()
}

/// A bulk: a few items (some broken), or exactly 512, 513 or more copies of one item.
fn bulk_of(item: BoxedStrategy<Value>) -> BoxedStrategy<Vec<u8>> {
    let few = proptest::collection::vec(mutated(item.clone()), 0..6).prop_map(|items| Value::Array(items).to_string());
    let many = (item, prop_oneof![Just(512usize), Just(513usize), Just(600usize)]).prop_map(|(v, n)| {
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let mut v = v.clone();
                if v.is_object() {
                    v["id"] = json!(format!("bulk-{i}"));
                }
                v
            })
            .collect();
        Value::Array(items).to_string()
    });
    prop_oneof![
        6 => few.prop_map(String::into_bytes),
        1 => many.prop_map(String::into_bytes),
        1 => mutated(adversarial_value().boxed()).prop_map(|v| v.to_string().into_bytes()),
        1 => raw_junk(),
    ]
    .boxed()
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        20 => Just(Auth::Good),
        1 => Just(Auth::Missing),
        1 => prop_oneof![
            Just("a.b".to_string()),
            Just(".".to_string()),
            Just("x".repeat(5000)),
            "\\PC{0,30}",
            "[A-Za-z0-9_-]{10,40}\\.[A-Za-z0-9_-]{10,40}",
        ]
        .prop_map(Auth::Garbage),
        1 => Just(Auth::OtherEnvironment),
        1 => Just(Auth::Expired),
    ]
}

/// The path as a client might spell it: case and a trailing slash do not matter.
fn spell(path: String) -> impl Strategy<Value = String> {
    (any::<bool>(), any::<bool>()).prop_map(move |(upper, slash)| {
        let mut p = if upper {
            // The environment id and a hold id keep their case; shout the rest.
            path.split('/')
                .enumerate()
                .map(|(i, s)| {
                    if i == 3 || i == 5 {
                        s.to_string()
                    } else {
                        s.to_uppercase()
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        } else {
            path.clone()
        };
        if slash {
            p.push('/');
        }
        p
    })
}

fn hold_id() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("seed-hold".to_string()),
        2 => Just("h1".to_string()),
        1 => proptest::sample::select(&[
            "%E2%9C%93", "%FF", "%C0%AF", "a%2Fb", "..", "%00", "%20", "a%20b", "%F0%9F%98%80", "-", "~",
        ][..])
        .prop_map(str::to_string),
        1 => (250usize..270).prop_map(|n| "h".repeat(n)),
    ]
}

fn org_query() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("?organizationId=usmf".to_string()),
        1 => Just(String::new()),
        1 => Just("?ORGANIZATIONID=usmf".to_string()),
        1 => proptest::sample::select(&["?organizationId=", "?organizationId=%FF", "?organizationId=%00", "?organizationId=a&organizationId=b", "?=&&=", "?organizationId"][..])
            .prop_map(str::to_string),
    ]
}

fn api(path: &str) -> String {
    format!("/api/environment/{ENV}/{path}")
}

/// Every endpoint the router has, by name.
const ENDPOINTS: &[&str] = &[
    "onhand",
    "onhand_bulk",
    "setonhand_bulk",
    "reserve",
    "reserve_bulk",
    "unreserve",
    "unreserve_bulk",
    "changeschedule",
    "changeschedule_bulk",
    "allocate",
    "unallocate",
    "reallocate",
    "consume",
    "allocation_query",
    "indexquery",
    "exactquery",
    "get_onhand",
    "configuration",
    "hardupdate",
    "allpartitionids",
    "cleanup",
    "holds_create",
    "holds_get",
    "holds_release",
    "holds_patch",
    "holds_extend",
    "holds_confirm",
    "holds_consume",
    "events",
    "token",
    "operations",
];

/// Percent-encodes what a URI cannot carry as is; `%` is kept so that junk escapes get through.
fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%' | b',' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

/// Method, path and query, headers, body.
type RequestParts = (Method, String, Vec<(String, String)>, Option<Vec<u8>>);

/// The request strategy of one endpoint: method, path spellings, query, headers, body.
fn endpoint(name: &'static str) -> BoxedStrategy<RequestParts> {
    let post_body = move |path: &'static str, body: BoxedStrategy<Vec<u8>>| {
        (spell(api(path)), body)
            .prop_map(move |(p, b)| (Method::POST, p, json_headers(), Some(b)))
            .boxed()
    };
    let single = |path: &'static str, kind: &'static str| post_body(path, body_of(write_item(kind)));
    let bulk = |path: &'static str, kind: &'static str| post_body(path, bulk_of(write_item(kind)));
    let api_version = prop_oneof![
        4 => Just(None),
        2 => Just(Some("2.0")),
        1 => proptest::sample::select(&["1.0", "1", "2", "\"2.0\"", "3.0", "", "２.０", "2.0, 1.0"][..]).prop_map(Some),
    ];
    let paging = prop_oneof![
        3 => Just(String::new()),
        1 => proptest::sample::select(&[
            "?pageNumber=2&pageSize=1", "?pageSize=0", "?pageSize=1001", "?pageNumber=-1", "?pageNumber=99999999999999999999",
            "?pageNumber=18446744073709551615&pageSize=1000", "?pagesize=%FF", "?pageNumber=1&pageNumber=2",
        ][..])
        .prop_map(str::to_string),
    ];
    let query = move |path: &'static str, body: BoxedStrategy<Value>| {
        (spell(api(path)), paging.clone(), api_version.clone(), body_of(body))
            .prop_map(|(p, q, v, b)| {
                let mut h = json_headers();
                if let Some(v) = v {
                    h.push(("api-version".into(), v.to_string()));
                }
                (Method::POST, format!("{p}{q}"), h, Some(b))
            })
            .boxed()
    };
    let hold_path = |suffix: &'static str| {
        (hold_id(), org_query()).prop_map(move |(id, q)| format!("{}{suffix}{q}", api(&format!("holds/{id}"))))
    };
    let hold_create = (id(), proptest::collection::vec(hold_item(), 1..4), prop_oneof![Just(json!(900)), Just(json!(null)), adversarial_value()], any::<bool>())
        .prop_map(|(id, items, ttl, aon)| json!({"id": id, "organizationId": "usmf", "items": items, "expiresInSeconds": ttl, "allOrNothing": aon}))
        .boxed();
    match name {
        "onhand" => single("onhand", "change"),
        "onhand_bulk" => bulk("onhand/bulk", "change"),
        "setonhand_bulk" => (
            prop_oneof![Just("fno"), Just("%FF"), Just("x")],
            bulk_of(write_item("set")),
        )
            .prop_map(|(sys, b)| (Method::POST, api(&format!("setonhand/{sys}/bulk")), json_headers(), Some(b)))
            .boxed(),
        "reserve" => single("onhand/reserve", "reserve"),
        "reserve_bulk" => bulk("onhand/reserve/bulk", "reserve"),
        "unreserve" => single("onhand/unreserve", "unreserve"),
        "unreserve_bulk" => bulk("onhand/unreserve/bulk", "unreserve"),
        "changeschedule" => single("onhand/changeschedule", "schedule"),
        "changeschedule_bulk" => bulk("onhand/changeschedule/bulk", "schedule"),
        "allocate" => single("allocation/allocate", "allocate"),
        "unallocate" => single("allocation/unallocate", "unallocate"),
        "reallocate" => single("allocation/reallocate", "reallocate"),
        "consume" => single("allocation/consume", "consume"),
        "allocation_query" => post_body(
            "allocation/query",
            body_of(
                (pick(PRODUCTS), dims())
                    .prop_map(|(p, d)| json!({"organizationId": "usmf", "productId": p, "dimensions": d, "groups": {"channel": "Online"}}))
                    .boxed(),
            ),
        ),
        "indexquery" => prop_oneof![
            query("onhand/indexquery", index_query_body().boxed()),
            query("indexquery", index_query_body().boxed()),
        ]
        .boxed(),
        "exactquery" => query("onhand/exactquery", exact_query_body().boxed()),
        "get_onhand" => (
            spell(api("onhand")),
            proptest::collection::vec(
                (
                    proptest::sample::select(&["organizationId", "productId", "siteId", "locationId", "colorId", "groupBy", "returnNegative", "QueryATP", "ATPFromDate", "ATPToDate", "dimensionDataSource", "nosuchdim", "%FF", ""][..]),
                    prop_oneof![pick(&["usmf", "P1", "1", "11", "red", "colorId,sizeId", "true", "%FF", "%", "a%2Cb", "2023-02-30"]), "\\PC{0,8}"],
                ),
                0..7,
            ),
        )
            .prop_map(|(p, pairs)| {
                let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", encode_query(v))).collect();
                (Method::GET, format!("{p}?{}", q.join("&")), Vec::new(), None)
            })
            .boxed(),
        "configuration" => spell(api("configuration")).prop_map(|p| (Method::GET, p, Vec::new(), None)).boxed(),
        "hardupdate" => post_body(
            "configuration/hardupdate",
            body_of(Just(serde_json::from_str::<Value>(&ivory_core::Config::default_config().to_json()).unwrap_or(Value::Null)).boxed()),
        ),
        "allpartitionids" => spell(api("allpartitionids")).prop_map(|p| (Method::GET, p, Vec::new(), None)).boxed(),
        "cleanup" => (
            prop_oneof![Just("partitions/cleanupalldata"), Just("cleanupalldata")],
            body_of(
                proptest::sample::subsequence(&["usmf~1~11", "usmf~2~12", "usmf~1~12", "x~y", "~~", "a~b~c~d"][..], 0..3)
                    .prop_map(|ids| json!(ids))
                    .boxed(),
            ),
        )
            .prop_map(move |(p, b)| (Method::DELETE, api(p), json_headers(), Some(b)))
            .boxed(),
        "holds_create" => post_body("holds", body_of(hold_create)),
        "holds_get" => hold_path("").prop_map(|p| (Method::GET, p, Vec::new(), None)).boxed(),
        "holds_release" => (hold_path(""), prop::option::of(body_of(Just(json!({})).boxed())))
            .prop_map(move |(p, b)| (Method::DELETE, p, json_headers(), b))
            .boxed(),
        "holds_patch" => (
            hold_path("/items"),
            body_of(
                (proptest::collection::vec(hold_item(), 1..4), prop_oneof![Just(json!(600)), adversarial_value()])
                    .prop_map(|(items, ttl)| json!({"items": items, "expiresInSeconds": ttl}))
                    .boxed(),
            ),
        )
            .prop_map(move |(p, b)| (Method::PATCH, p, json_headers(), Some(b)))
            .boxed(),
        "holds_extend" => (
            hold_path("/extend"),
            body_of(prop_oneof![Just(json!(300)), adversarial_value()].prop_map(|t| json!({"expiresInSeconds": t})).boxed()),
        )
            .prop_map(move |(p, b)| (Method::POST, p, json_headers(), Some(b)))
            .boxed(),
        "holds_confirm" => (hold_path("/confirm"), prop::option::of(body_of(Just(json!({})).boxed())))
            .prop_map(move |(p, b)| (Method::POST, p, json_headers(), b))
            .boxed(),
        "holds_consume" => (
            hold_path("/consume"),
            prop::option::of(body_of(
                prop_oneof![Just(json!({})), Just(json!({"lineIds": ["1"]})), Just(json!({"lineIds": ["9"]}))].boxed(),
            )),
        )
            .prop_map(move |(p, b)| (Method::POST, p, json_headers(), b))
            .boxed(),
        "events" => (
            prop_oneof![
                4 => Just("?wait=false".to_string()),
                2 => proptest::sample::select(&[
                    "?wait=false&from=0:0,1:0", "?wait=false&limit=0", "?wait=false&limit=10001", "?wait=false&limit=-1",
                    "?wait=false&from=9:1", "?wait=false&from=4294967296:0", "?wait=false&from=0:18446744073709551615",
                    "?wait=FALSE&from=%FF", "?wait=0&from=,,,", "?wait=false&from=0:1:2", "?wait=false&limit=99999999999999999999",
                    "?wait=false&from=0:%20", "?WAIT=false&FROM=1:1",
                ][..])
                .prop_map(str::to_string),
                1 => "\\PC{0,10}".prop_map(|s| format!("?wait=false&from={}", encode_query(&s))),
            ],
            prop::option::of(prop_oneof![Just("0:1".to_string()), Just("garbage".to_string()), Just("9:9,%FF".to_string())]),
        )
            .prop_map(|(q, last)| {
                let mut h = Vec::new();
                if let Some(l) = last {
                    h.push(("last-event-id".to_string(), l));
                }
                (Method::GET, format!("{}{q}", api("events")), h, None)
            })
            .boxed(),
        "token" => (
            prop_oneof![
                3 => body_of(Just(json!({"client_id": "client", "client_secret": "s3cret", "context": ENV})).boxed()),
                1 => body_of(Just(json!({"grant_type": "client_credentials", "client_assertion": "s3cret", "context": ENV, "scope": "x"})).boxed()),
                1 => proptest::sample::select(&[
                    "client_id=client&client_secret=s3cret&context=fz", "client_secret=s3cret&context=a%2Fb", "client_secret=%FF%FE&context=%",
                    "context=&client_secret=s3cret", "=&=&&", "client_secret=s3cret&context=%F0%9F%98%80",
                ][..])
                .prop_map(|s| s.as_bytes().to_vec()),
            ],
            prop_oneof![Just("application/json"), Just("application/x-www-form-urlencoded"), Just("text/plain")],
        )
            .prop_map(|(b, ct)| (Method::POST, "/token".to_string(), vec![("content-type".to_string(), ct.to_string())], Some(b)))
            .boxed(),
        "operations" => prop_oneof![
            Just((Method::GET, "/healthz".to_string())),
            Just((Method::GET, "/health/ping".to_string())),
            Just((Method::GET, "/metrics".to_string())),
            Just((Method::GET, "/openapi.json".to_string())),
            Just((Method::PUT, api("onhand"))),
            Just((Method::GET, api("onhand/reserve"))),
            Just((Method::POST, "/nowhere".to_string())),
            Just((Method::GET, "/api/environment/".to_string())),
            Just((Method::GET, "/api/environment/%FF/configuration".to_string())),
            Just((Method::DELETE, "/openapi.json".to_string())),
        ]
        .prop_map(|(m, p)| (m, p, Vec::new(), None))
        .boxed(),
        _ => unreachable!("no endpoint {name}"),
    }
}

fn request(name: &'static str) -> impl Strategy<Value = Req> {
    (endpoint(name), auth(), prop_oneof![12 => Just(0u32), 1 => 1u32..10]).prop_map(
        |((method, path, headers, body), auth, fail_calls)| Req {
            method,
            path,
            headers,
            body,
            auth,
            fail_calls,
        },
    )
}

// ---- the harness ----------------------------------------------------------------------------------

struct Harness {
    app: Router,
    backend: Arc<LocalBackend>,
    clock_ms: u64,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Harness {
    async fn new() -> Harness {
        let backend = Arc::new(LocalBackend::new(SHARDS));
        let clock_ms = crate::holds::now_ms();
        backend.clock_ms.store(clock_ms, Ordering::SeqCst);
        let mut config = GatewayConfig::new("client", "s3cret", KEY.to_vec());
        config.body_limit_bytes = BODY_LIMIT;
        config.backend_backoff_max_ms = 1;
        let h = Harness {
            app: router(backend.clone(), config),
            backend,
            clock_ms,
        };
        // An empty entry in every shard brings each clock to the frozen time: a shard's first
        // proposal must not be what moves it.
        for shard in 0..SHARDS {
            h.backend.propose(shard, Vec::new()).await.expect("sweep");
        }
        h.seed().await;
        h
    }

    /// Stock in every (product, site, location), a reservation and a hold, so that valid
    /// requests can succeed.
    async fn seed(&self) {
        let mut items = Vec::new();
        for p in PRODUCTS {
            for s in SITES {
                for l in LOCATIONS {
                    items.push(
                        json!({"id": format!("seed-{p}-{s}-{l}"), "organizationId": "usmf", "productId": p,
                        "dimensions": {"siteId": s, "locationId": l, "colorId": "red"},
                        "quantities": {"pos": {"inbound": 50}}}),
                    );
                }
            }
        }
        let seeds = [
            ("onhand/bulk", Value::Array(items)),
            (
                "onhand/reserve",
                json!({"id": "seed-r", "organizationId": "usmf", "productId": "P1",
                    "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                    "modifier": "softreservphysical", "quantity": 5}),
            ),
            (
                "allocation/allocate",
                json!({"id": "seed-a", "organizationId": "usmf", "productId": "P1",
                    "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                    "groups": {"channel": "Online", "customerGroup": "VIP"}, "quantity": 10}),
            ),
            (
                "holds",
                json!({"id": "seed-hold", "organizationId": "usmf", "items": [
                    {"lineId": "1", "productId": "P2", "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"}, "quantity": 2},
                    {"lineId": "2", "productId": "P2", "dimensions": {"siteId": "2", "locationId": "12", "colorId": "red"}, "quantity": 1}]}),
            ),
        ];
        for (path, body) in seeds {
            let r = self
                .send(&Req {
                    method: Method::POST,
                    path: api(path),
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Some(body.to_string().into_bytes()),
                    auth: Auth::Good,
                    fail_calls: 0,
                })
                .await
                .expect("a valid request");
            assert!(
                r.status.is_success(),
                "seed {path}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }

    fn token(&self, auth: &Auth) -> Option<String> {
        let valid_until = self.clock_ms / 1000 + 3600;
        match auth {
            Auth::Good => Some(crate::auth::issue_token(KEY, ENV, "client", valid_until)),
            Auth::Missing => None,
            Auth::Garbage(t) => Some(t.clone()),
            Auth::OtherEnvironment => Some(crate::auth::issue_token(KEY, "other", "client", valid_until)),
            Auth::Expired => Some(crate::auth::issue_token(KEY, ENV, "client", 1)),
        }
    }

    /// `None` when the request is not valid HTTP (a URI or header the `http` crate refuses):
    /// no server ever sees it.
    async fn send(&self, req: &Req) -> Option<Reply> {
        let mut builder = Request::builder().method(req.method.clone()).uri(&req.path);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(t) = self.token(&req.auth) {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        let body = req.body.clone().map(Body::from).unwrap_or_else(Body::empty);
        let request = builder.body(body).ok()?;
        let response = match self.app.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let headers = response.headers().clone();
        let is_stream = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        // An event stream never ends; its status and headers are the answer.
        let body = if is_stream {
            Vec::new()
        } else {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default()
        };
        Some(Reply { status, headers, body })
    }

    /// Every partition's quantities, zeros left out (a released hold leaves `0` where there
    /// was nothing): what a client can see of the stock.
    async fn stock(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let group_by: Vec<String> = BASE_DIMENSIONS
            .iter()
            .filter(|d| !matches!(**d, "siteid" | "locationid"))
            .map(|d| (*d).to_string())
            .collect();
        for shard in 0..SHARDS {
            let Ok(ReadResponse::Partitions(partitions)) = self
                .backend
                .read(
                    shard,
                    ReadRequest::Partitions {
                        environment: ENV.into(),
                    },
                )
                .await
            else {
                panic!("partitions read failed");
            };
            for p in partitions {
                let query = Query {
                    environment: ENV.into(),
                    organization: p.organization.clone(),
                    locations: Some(vec![(p.site.clone(), p.location.clone())]),
                    products: Vec::new(),
                    filters: BTreeMap::new(),
                    exact: None,
                    group_by: group_by.clone(),
                    return_negative: true,
                    atp: None,
                };
                let Ok(ReadResponse::Records(records)) = self.backend.read(shard, ReadRequest::Query(query)).await
                else {
                    panic!("stock read failed");
                };
                for r in records {
                    let quantities: Vec<String> = r
                        .quantities
                        .iter()
                        .flat_map(|(ds, m)| {
                            m.iter()
                                .filter(|(_, q)| **q != Qty::ZERO)
                                .map(move |(name, q)| format!("{ds}.{name}={q}"))
                        })
                        .collect();
                    if !quantities.is_empty() {
                        let key = format!(
                            "{}~{}~{}|{}|{:?}",
                            p.organization, p.site, p.location, r.product, r.dims
                        );
                        out.insert(key, quantities.join(","));
                    }
                }
            }
        }
        out
    }
}

fn error_shape(reply: &Reply) -> Result<String, TestCaseError> {
    let body: Value = serde_json::from_slice(&reply.body).map_err(|e| {
        TestCaseError::fail(format!(
            "{} answered a body that is not JSON ({e}): {:?}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ))
    })?;
    let code = body["code"].as_str().unwrap_or_default().to_string();
    prop_assert!(
        KNOWN_CODES.contains(&code.as_str()),
        "{} with an undocumented code: {body}",
        reply.status
    );
    prop_assert!(body["message"].is_string(), "no message: {body}");
    prop_assert!(body["statusCode"].is_u64(), "no statusCode: {body}");
    let content_type = reply.headers.get("content-type").map(|v| v.as_bytes().to_vec());
    prop_assert_eq!(content_type.as_deref(), Some(&b"application/json"[..]), "{}", body);
    Ok(code)
}

/// For a bulk answered 200: whether no item was applied, and whether every item was refused
/// as invalid before reaching a shard.
fn bulk_refused(reply: &Reply) -> Option<(bool, bool)> {
    let body: Value = serde_json::from_slice(&reply.body).ok()?;
    let applied = ["success", "partialSuccess", "unknown"]
        .iter()
        .any(|b| body[*b].as_array().is_some_and(|a| !a.is_empty()));
    let all_400 = ["success", "partialSuccess", "unknown", "conflict", "notFound"]
        .iter()
        .all(|b| body[*b].as_array().is_some_and(Vec::is_empty))
        && body["failure"]
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i["statusCode"] == 400));
    Some((!applied, all_400))
}

/// Sends one request and checks the answer and what it changed.
async fn check(h: &Harness, req: &Req) -> Result<(), TestCaseError> {
    let hashes_before = h.backend.state_hashes();
    let stock_before = h.stock().await;
    h.backend.fail_retryable.store(req.fail_calls, Ordering::SeqCst);
    let reply = h.send(req).await;
    h.backend.fail_retryable.store(0, Ordering::SeqCst);
    let Some(reply) = reply else {
        return Ok(());
    };
    let injected = req.fail_calls > 0;
    let status = reply.status;
    let text = || {
        String::from_utf8_lossy(&reply.body)
            .chars()
            .take(400)
            .collect::<String>()
    };

    if status.is_server_error() {
        prop_assert!(
            status == StatusCode::SERVICE_UNAVAILABLE && injected,
            "{status} without an injected failure: {}",
            text()
        );
        let retry_after = reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        prop_assert!(
            retry_after.is_some_and(|s| s >= 1),
            "503 without Retry-After: {}",
            text()
        );
        error_shape(&reply)?;
        return Ok(());
    }
    if !status.is_success() {
        let code = error_shape(&reply)?;
        if injected {
            // A retried call may have reached a shard before the failure was reported.
            return Ok(());
        }
        if REMEMBERED.contains(&code.as_str()) {
            prop_assert_eq!(&h.stock().await, &stock_before, "{} {} changed the stock", status, code);
        } else {
            prop_assert!(
                h.backend.state_hashes() == hashes_before,
                "{status} {code} changed the state: {}",
                text()
            );
        }
        return Ok(());
    }
    if status == StatusCode::OK
        && req.method == Method::POST
        && req.path.to_ascii_lowercase().contains("/bulk")
        && !injected
        && let Some((none_applied, all_invalid)) = bulk_refused(&reply)
    {
        if all_invalid {
            prop_assert!(
                h.backend.state_hashes() == hashes_before,
                "a bulk of invalid items changed the state: {}",
                text()
            );
        } else if none_applied {
            prop_assert_eq!(
                &h.stock().await,
                &stock_before,
                "a refused bulk changed the stock: {}",
                text()
            );
        }
    }
    Ok(())
}

fn run_endpoint(name: &'static str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let config = ProptestConfig {
        cases: fuzz_cases(),
        max_shrink_iters: 500,
        // The case, not a file, is the regression: failures print the shrunk requests.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(request(name), 1..5);
    let result = runner.run(&strategy, |requests| {
        runtime.block_on(async {
            let h = Harness::new().await;
            for req in &requests {
                check(&h, req).await?;
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("endpoint {name}: {e}");
    }
}

macro_rules! hostile {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_endpoint($name);
            }
        )*

        /// The tests above cover every endpoint of the list.
        #[test]
        fn every_endpoint_is_fuzzed() {
            let tested = [$($name),*];
            assert_eq!(tested.len(), ENDPOINTS.len());
            for e in ENDPOINTS {
                assert!(tested.contains(e), "{e} is not fuzzed");
            }
        }
    };
}

hostile! {
    hostile_onhand => "onhand",
    hostile_onhand_bulk => "onhand_bulk",
    hostile_setonhand_bulk => "setonhand_bulk",
    hostile_reserve => "reserve",
    hostile_reserve_bulk => "reserve_bulk",
    hostile_unreserve => "unreserve",
    hostile_unreserve_bulk => "unreserve_bulk",
    hostile_changeschedule => "changeschedule",
    hostile_changeschedule_bulk => "changeschedule_bulk",
    hostile_allocate => "allocate",
    hostile_unallocate => "unallocate",
    hostile_reallocate => "reallocate",
    hostile_consume => "consume",
    hostile_allocation_query => "allocation_query",
    hostile_indexquery => "indexquery",
    hostile_exactquery => "exactquery",
    hostile_get_onhand => "get_onhand",
    hostile_configuration => "configuration",
    hostile_hardupdate => "hardupdate",
    hostile_allpartitionids => "allpartitionids",
    hostile_cleanup => "cleanup",
    hostile_holds_create => "holds_create",
    hostile_holds_get => "holds_get",
    hostile_holds_release => "holds_release",
    hostile_holds_patch => "holds_patch",
    hostile_holds_extend => "holds_extend",
    hostile_holds_confirm => "holds_confirm",
    hostile_holds_consume => "holds_consume",
    hostile_events => "events",
    hostile_token => "token",
    hostile_operations => "operations",
}

/// The endpoint list above names every route the router registers (`openapi` walks the same
/// list for the document): a new route fails here until it is fuzzed.
#[test]
fn the_fuzz_covers_every_route() {
    let fuzzed: std::collections::BTreeSet<(String, String)> = [
        ("/onhand", "POST", "onhand"),
        ("/onhand", "GET", "get_onhand"),
        ("/onhand/bulk", "POST", "onhand_bulk"),
        ("/setonhand/{system}/bulk", "POST", "setonhand_bulk"),
        ("/onhand/reserve", "POST", "reserve"),
        ("/onhand/reserve/bulk", "POST", "reserve_bulk"),
        ("/onhand/unreserve", "POST", "unreserve"),
        ("/onhand/unreserve/bulk", "POST", "unreserve_bulk"),
        ("/onhand/changeschedule", "POST", "changeschedule"),
        ("/onhand/changeschedule/bulk", "POST", "changeschedule_bulk"),
        ("/allocation/allocate", "POST", "allocate"),
        ("/allocation/unallocate", "POST", "unallocate"),
        ("/allocation/reallocate", "POST", "reallocate"),
        ("/allocation/consume", "POST", "consume"),
        ("/allocation/query", "POST", "allocation_query"),
        ("/onhand/indexquery", "POST", "indexquery"),
        ("/indexquery", "POST", "indexquery"),
        ("/onhand/exactquery", "POST", "exactquery"),
        ("/configuration", "GET", "configuration"),
        ("/configuration/hardupdate", "POST", "hardupdate"),
        ("/allpartitionids", "GET", "allpartitionids"),
        ("/partitions/cleanupalldata", "DELETE", "cleanup"),
        ("/cleanupalldata", "DELETE", "cleanup"),
        ("/holds", "POST", "holds_create"),
        ("/holds/{id}", "GET", "holds_get"),
        ("/holds/{id}", "DELETE", "holds_release"),
        ("/holds/{id}/items", "PATCH", "holds_patch"),
        ("/holds/{id}/extend", "POST", "holds_extend"),
        ("/holds/{id}/confirm", "POST", "holds_confirm"),
        ("/holds/{id}/consume", "POST", "holds_consume"),
        ("/events", "GET", "events"),
    ]
    .iter()
    .map(|(p, m, e)| {
        assert!(ENDPOINTS.contains(e));
        (
            crate::openapi::doc_path(&format!("{}{p}", crate::API_PREFIX)),
            (*m).to_string(),
        )
    })
    .chain(
        ["/token", "/health/ping", "/healthz", "/metrics", "/openapi.json"]
            .iter()
            .map(|p| {
                (
                    (*p).to_string(),
                    if *p == "/token" { "POST" } else { "GET" }.to_string(),
                )
            }),
    )
    .collect();
    assert_eq!(fuzzed, crate::openapi::documented_operations());
}
