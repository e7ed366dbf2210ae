//! The fuzz's inputs: requests, values (nasty strings, numbers, dates), mutations, bodies and
//! every endpoint's request strategy.

use super::*;

// ---- requests ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub(super) enum Auth {
    Good,
    Missing,
    Garbage(String),
    OtherEnvironment,
    Expired,
}

#[derive(Clone)]
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Vec<u8>>,
    pub(super) auth: Auth,
    /// Retryable backend failures to inject before this request.
    pub(super) fail_calls: u32,
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

pub(super) const PRODUCTS: &[&str] = &["P1", "P2", "Ünï-😀"];
pub(super) const SITES: &[&str] = &["1", "2"];
pub(super) const LOCATIONS: &[&str] = &["11", "12"];
pub(super) const COLORS: &[&str] = &["red", "blue", ""];

pub(super) fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(list).prop_map(str::to_string)
}

/// Strings a parser should refuse or survive.
pub(super) const NASTY_STRINGS: &[&str] = &[
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
pub(super) const BAD_DATES: &[&str] = &[
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

pub(super) fn date_text() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => (0i64..10).prop_map(|days| ivory_core::date::format_day(crate::queries::today() + days)),
        2 => proptest::sample::select(BAD_DATES).prop_map(str::to_string),
        1 => "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,4})?Z?)?",
    ]
}

/// JSON numbers at the edges of what serde_json and rust_decimal read.
pub(super) const NASTY_NUMBERS: &[&str] = &[
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

pub(super) fn nasty_number() -> impl Strategy<Value = Value> {
    proptest::sample::select(NASTY_NUMBERS).prop_map(|t| serde_json::from_str(t).unwrap_or(Value::Null))
}

pub(super) fn long_string() -> impl Strategy<Value = String> {
    prop_oneof![
        (250usize..270).prop_map(|n| "x".repeat(n)),
        (60usize..70).prop_map(|n| "😀".repeat(n)),
        Just("y".repeat(20_000)),
    ]
}

/// A scalar of any JSON type, including ones no field takes.
pub(super) fn adversarial_leaf() -> impl Strategy<Value = Value> {
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
pub(super) fn adversarial_value() -> impl Strategy<Value = Value> {
    adversarial_leaf().prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub(super) fn quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (1i64..20).prop_map(|n| json!(n)),
        1 => (1i64..20).prop_map(|n| json!(n.to_string())),
        1 => Just(json!(0.5)),
        1 => Just(json!(-3)),
    ]
}

pub(super) fn dims() -> impl Strategy<Value = Value> {
    (pick(SITES), pick(LOCATIONS), pick(COLORS))
        .prop_map(|(s, l, c)| json!({"siteId": s, "locationId": l, "colorId": c}))
}

pub(super) fn id() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-c][0-3]", 1 => "\\PC{1,6}"]
}

/// A well-formed item of a write (it may still be refused for stock).
pub(super) fn write_item(kind: &'static str) -> BoxedStrategy<Value> {
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

pub(super) fn hold_item() -> impl Strategy<Value = Value> {
    (pick(PRODUCTS), dims(), quantity(), any::<bool>()).prop_map(
        |(p, d, q, oversell)| json!({"productId": p, "dimensions": d, "quantity": q, "allowOversell": oversell}),
    )
}

pub(super) fn index_query_body() -> impl Strategy<Value = Value> {
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

pub(super) fn exact_query_body() -> impl Strategy<Value = Value> {
    (pick(PRODUCTS), pick(SITES), pick(LOCATIONS), pick(COLORS)).prop_map(|(p, s, l, c)| {
        json!({"filters": {"organizationId": ["usmf"], "productId": [p],
            "dimensions": ["siteId", "locationId", "colorId"], "values": [[s, l, c]]}, "returnNegative": true})
    })
}

/// Follows `selector` down into `v` (indexes taken modulo the children) and replaces what it
/// reaches, removes it, or renames it.
pub(super) fn mutate(v: &mut Value, selector: &[usize], action: &Mutation) {
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
pub(super) enum KeyStyle {
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
pub(super) enum Mutation {
    Replace(Value),
    Remove,
    Rename(KeyStyle),
    /// A key (a date of `quantitiesByDate`, a data source, a dimension) becomes another.
    Rekey(String),
}

pub(super) fn mutation() -> impl Strategy<Value = Mutation> {
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
pub(super) fn mutated(valid: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
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
pub(super) fn raw_junk() -> impl Strategy<Value = Vec<u8>> {
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
pub(super) fn body_of(valid: BoxedStrategy<Value>) -> BoxedStrategy<Vec<u8>> {
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
pub(super) fn bulk_of(item: BoxedStrategy<Value>) -> BoxedStrategy<Vec<u8>> {
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

pub(super) fn auth() -> impl Strategy<Value = Auth> {
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
pub(super) fn spell(path: String) -> impl Strategy<Value = String> {
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

pub(super) fn hold_id() -> impl Strategy<Value = String> {
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

pub(super) fn org_query() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("?organizationId=usmf".to_string()),
        1 => Just(String::new()),
        1 => Just("?ORGANIZATIONID=usmf".to_string()),
        1 => proptest::sample::select(&["?organizationId=", "?organizationId=%FF", "?organizationId=%00", "?organizationId=a&organizationId=b", "?=&&=", "?organizationId"][..])
            .prop_map(str::to_string),
    ]
}

pub(super) fn api(path: &str) -> String {
    format!("/api/environment/{ENV}/{path}")
}

/// Every endpoint the router has, by name.
pub(super) const ENDPOINTS: &[&str] = &[
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
pub(super) fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%' | b',' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

/// Method, path and query, headers, body.
pub(super) type RequestParts = (Method, String, Vec<(String, String)>, Option<Vec<u8>>);

/// The request strategy of one endpoint: method, path spellings, query, headers, body.
pub(super) fn endpoint(name: &'static str) -> BoxedStrategy<RequestParts> {
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

pub(super) fn request(name: &'static str) -> impl Strategy<Value = Req> {
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
