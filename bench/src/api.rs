//! Ivory's public REST API as an order system sees it: request bodies, the HTTP client, and the
//! classification of answers. Nothing here trusts the server: a malformed answer is an error kind,
//! never a success.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A key: (organization, product, site, location).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub product: String,
    pub site: String,
    pub location: String,
}

#[derive(Serialize)]
pub struct Dims<'a> {
    #[serde(rename = "siteId")]
    pub site: &'a str,
    #[serde(rename = "locationId")]
    pub location: &'a str,
}

#[derive(Serialize)]
pub struct ReserveBody<'a> {
    pub id: &'a str,
    #[serde(rename = "organizationId")]
    pub org: &'a str,
    #[serde(rename = "productId")]
    pub product: &'a str,
    pub dimensions: Dims<'a>,
    #[serde(rename = "quantityDataSource")]
    pub source: &'static str,
    pub modifier: &'static str,
    pub quantity: i64,
    #[serde(rename = "ifCheckAvailForReserv")]
    pub check: bool,
}

impl<'a> ReserveBody<'a> {
    pub fn new(id: &'a str, org: &'a str, key: &'a Key, quantity: i64) -> Self {
        ReserveBody {
            id,
            org,
            product: &key.product,
            dimensions: Dims {
                site: &key.site,
                location: &key.location,
            },
            source: "iv",
            modifier: "softreservphysical",
            quantity,
            check: true,
        }
    }
}

#[derive(Serialize)]
pub struct UnreserveBody<'a> {
    pub id: &'a str,
    #[serde(rename = "organizationId")]
    pub org: &'a str,
    #[serde(rename = "productId")]
    pub product: &'a str,
    #[serde(rename = "reservationId")]
    pub reservation_id: &'a str,
    pub dimensions: Dims<'a>,
    #[serde(rename = "OffsetQty")]
    pub offset: i64,
}

/// An on-hand change event: `quantities: {source: {measure: delta}}`.
#[derive(Serialize)]
pub struct ChangeBody<'a> {
    pub id: &'a str,
    #[serde(rename = "organizationId")]
    pub org: &'a str,
    #[serde(rename = "productId")]
    pub product: &'a str,
    pub dimensions: Dims<'a>,
    pub quantities: std::collections::BTreeMap<&'static str, std::collections::BTreeMap<&'static str, i64>>,
}

impl<'a> ChangeBody<'a> {
    pub fn new(
        id: &'a str,
        org: &'a str,
        key: &'a Key,
        source: &'static str,
        measure: &'static str,
        delta: i64,
    ) -> Self {
        let mut inner = std::collections::BTreeMap::new();
        inner.insert(measure, delta);
        let mut quantities = std::collections::BTreeMap::new();
        quantities.insert(source, inner);
        ChangeBody {
            id,
            org,
            product: &key.product,
            dimensions: Dims {
                site: &key.site,
                location: &key.location,
            },
            quantities,
        }
    }
}

#[derive(Serialize)]
pub struct IndexFilters<'a> {
    #[serde(rename = "organizationId")]
    pub org: [&'a str; 1],
    #[serde(rename = "productId")]
    pub products: Vec<&'a str>,
    #[serde(rename = "siteId")]
    pub sites: Vec<&'a str>,
    #[serde(rename = "locationId")]
    pub locations: Vec<&'a str>,
}

#[derive(Serialize)]
pub struct IndexQueryBody<'a> {
    pub filters: IndexFilters<'a>,
    #[serde(rename = "groupByValues")]
    pub group_by: [&'a str; 0],
    #[serde(rename = "returnNegative")]
    pub return_negative: bool,
}

#[derive(Serialize)]
pub struct ExactFilters<'a> {
    #[serde(rename = "organizationId")]
    pub org: [&'a str; 1],
    #[serde(rename = "productId")]
    pub products: Vec<&'a str>,
    pub dimensions: [&'static str; 2],
    pub values: Vec<[&'a str; 2]>,
}

#[derive(Serialize)]
pub struct ExactQueryBody<'a> {
    pub filters: ExactFilters<'a>,
    #[serde(rename = "groupByValues")]
    pub group_by: [&'a str; 0],
    #[serde(rename = "returnNegative")]
    pub return_negative: bool,
}

pub fn index_query<'a>(
    org: &'a str,
    products: Vec<&'a str>,
    sites: Vec<&'a str>,
    locations: Vec<&'a str>,
) -> IndexQueryBody<'a> {
    IndexQueryBody {
        filters: IndexFilters {
            org: [org],
            products,
            sites,
            locations,
        },
        group_by: [],
        return_negative: true,
    }
}

pub fn exact_query<'a>(org: &'a str, products: Vec<&'a str>, pairs: Vec<[&'a str; 2]>) -> ExactQueryBody<'a> {
    ExactQueryBody {
        filters: ExactFilters {
            org: [org],
            products,
            dimensions: ["siteId", "locationId"],
            values: pairs,
        },
        group_by: [],
        return_negative: true,
    }
}

/// What one HTTP exchange came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every item did what was asked. `records`: rows of a query answer.
    Ok {
        items: u32,
        reservation_id: Option<String>,
        records: u32,
    },
    /// A well-formed business refusal (not enough stock): every item refused.
    Refused { items: u32 },
    /// A bulk answer with some items not successful. `errored` items are neither success nor a
    /// stock refusal (conflict, notFound, unknown, other failures); `kind` names the first.
    Mixed {
        ok: u32,
        refused: u32,
        errored: u32,
        kind: Option<String>,
    },
    /// No usable answer. `retryable`: the same request (same ids) may be sent again.
    Error { kind: String, retryable: bool },
}

impl Verdict {
    pub fn error(kind: impl Into<String>, retryable: bool) -> Verdict {
        Verdict::Error {
            kind: kind.into(),
            retryable,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Single {
    #[serde(rename = "processingStatus")]
    processing_status: Option<String>,
    #[serde(rename = "statusCode")]
    status_code: Option<serde_json::Value>,
    #[serde(rename = "reservationId")]
    reservation_id: Option<String>,
    code: Option<String>,
}

fn status_code_of(s: &Single) -> Option<i64> {
    match &s.status_code {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(t)) => t.trim().parse().ok(),
        _ => None,
    }
}

fn http_error(status: u16, body: &[u8]) -> Verdict {
    let code = serde_json::from_slice::<Single>(body).ok().and_then(|s| s.code);
    let kind = match code {
        Some(c) => format!("http_{status}:{c}"),
        None => format!("http_{status}"),
    };
    // 503 (no quorum, unhealthy) and 429 (overload) are the server's "try again" answers.
    Verdict::error(kind, status == 503 || status == 429)
}

/// A single write (on-hand change, reserve, unreserve).
pub fn classify_write(status: u16, body: &[u8]) -> Verdict {
    match status {
        200 => match serde_json::from_slice::<Single>(body) {
            Ok(s) => match s.processing_status.as_deref() {
                Some(p) if p.eq_ignore_ascii_case("success") || p.eq_ignore_ascii_case("partialSuccess") => {
                    Verdict::Ok {
                        items: 1,
                        reservation_id: s.reservation_id,
                        records: 0,
                    }
                }
                _ => Verdict::error("malformed:200_without_success", false),
            },
            Err(_) => Verdict::error("malformed:json", false),
        },
        409 => match serde_json::from_slice::<Single>(body) {
            Ok(s) => {
                let failure = s
                    .processing_status
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case("failure"));
                if failure && status_code_of(&s) == Some(500) {
                    Verdict::Refused { items: 1 }
                } else {
                    http_error(status, body)
                }
            }
            Err(_) => Verdict::error("malformed:json", false),
        },
        _ => http_error(status, body),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Buckets {
    success: Option<Vec<Single>>,
    failure: Option<Vec<Single>>,
    conflict: Option<Vec<Single>>,
    #[serde(rename = "notFound")]
    not_found: Option<Vec<Single>>,
    #[serde(rename = "partialSuccess")]
    partial_success: Option<Vec<Single>>,
    unknown: Option<Vec<Single>>,
}

/// A bulk write of `sent` items: 200 with the six buckets, which must account for every item.
pub fn classify_bulk(status: u16, body: &[u8], sent: u32) -> Verdict {
    if status != 200 {
        return http_error(status, body);
    }
    let Ok(b) = serde_json::from_slice::<Buckets>(body) else {
        return Verdict::error("malformed:json", false);
    };
    if b.success.is_none() && b.failure.is_none() {
        return Verdict::error("malformed:no_buckets", false);
    }
    let len = |v: &Option<Vec<Single>>| v.as_ref().map_or(0, |v| v.len() as u32);
    let ok = len(&b.success) + len(&b.partial_success);
    let mut refused = 0;
    let mut errored = 0;
    let mut kind: Option<String> = None;
    for f in b.failure.iter().flatten() {
        if status_code_of(f) == Some(500) {
            refused += 1;
        } else {
            errored += 1;
            kind.get_or_insert_with(|| format!("bulk_failure:{}", status_code_of(f).unwrap_or(0)));
        }
    }
    for (name, v) in [
        ("bulk_conflict", &b.conflict),
        ("bulk_not_found", &b.not_found),
        ("bulk_unknown", &b.unknown),
    ] {
        if len(v) > 0 {
            errored += len(v);
            kind.get_or_insert_with(|| name.to_string());
        }
    }
    if ok + refused + errored != sent {
        return Verdict::error(
            format!("malformed:bulk_count_{}_of_{sent}", ok + refused + errored),
            false,
        );
    }
    if refused == 0 && errored == 0 {
        Verdict::Ok {
            items: ok,
            reservation_id: None,
            records: 0,
        }
    } else if ok == 0 && errored == 0 {
        Verdict::Refused { items: refused }
    } else {
        Verdict::Mixed {
            ok,
            refused,
            errored,
            kind,
        }
    }
}

/// A query (v1): 200 with a JSON array of records.
pub fn classify_query(status: u16, body: &[u8]) -> Verdict {
    if status != 200 {
        return http_error(status, body);
    }
    match serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body) {
        Ok(v) => Verdict::Ok {
            items: 1,
            reservation_id: None,
            records: v.len() as u32,
        },
        Err(_) => Verdict::error("malformed:not_an_array", false),
    }
}

/// What an index query answer says about reservations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadBack {
    pub records: usize,
    /// `iv.softreservphysical`, summed over the records.
    pub reserved: f64,
    /// `iv.availabletoreserve`, summed over the records.
    pub available: f64,
    /// Records with `iv.availabletoreserve` < 0 (oversold).
    pub negative: usize,
}

/// Read `iv.softreservphysical` and `iv.availabletoreserve` from every record of a query answer.
pub fn read_back(body: &[u8]) -> Result<ReadBack, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("query answer is not JSON: {e}"))?;
    let records = v.as_array().ok_or("query answer is not an array")?;
    if records.is_empty() {
        return Err("query answer has no record".into());
    }
    let mut rb = ReadBack {
        records: records.len(),
        ..ReadBack::default()
    };
    for r in records {
        let iv = r
            .get("quantities")
            .and_then(|q| q.get("iv"))
            .ok_or("record without quantities.iv")?;
        let num = |name: &str| -> Result<f64, String> {
            match iv.get(name) {
                None => Ok(0.0),
                Some(serde_json::Value::Number(n)) => n.as_f64().ok_or_else(|| format!("iv.{name} is not a number")),
                Some(serde_json::Value::String(s)) => s.parse().map_err(|_| format!("iv.{name} is not a number")),
                Some(other) => Err(format!("iv.{name} is {other}")),
            }
        };
        rb.reserved += num("softreservphysical")?;
        let a = num("availabletoreserve")?;
        rb.available += a;
        if a < 0.0 {
            rb.negative += 1;
        }
    }
    Ok(rb)
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// One client's connection to one node (its own keep-alive connection).
#[derive(Clone)]
pub struct Conn {
    http: reqwest::Client,
    api_base: String,
    auth: String,
}

/// Transport-level failure of an exchange.
pub fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    }
}

pub fn http_client(timeout: Duration, idle_per_host: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(idle_per_host)
        .build()
        .map_err(|e| format!("http client: {e}"))
}

pub async fn get_token(
    http: &reqwest::Client,
    base: &str,
    env: &str,
    id: &str,
    secret: &str,
) -> Result<String, String> {
    let body = serde_json::json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret, "context": env});
    let resp = http
        .post(format!("{base}/token"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("POST {base}/token: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("POST {base}/token: {e}"))?;
    if status != 200 {
        return Err(format!(
            "POST {base}/token: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    let t: TokenAnswer =
        serde_json::from_slice(&bytes).map_err(|e| format!("POST {base}/token: malformed answer ({e})"))?;
    Ok(t.access_token)
}

impl Conn {
    pub fn new(http: reqwest::Client, base: &str, env: &str, token: &str) -> Conn {
        Conn {
            http,
            api_base: format!("{base}/api/environment/{env}/"),
            auth: format!("Bearer {token}"),
        }
    }

    /// POST `path` (relative to the environment) with a JSON body; `judge` reads the status and body.
    pub async fn post<T>(
        &self,
        path: &str,
        body: Vec<u8>,
        judge: impl FnOnce(u16, &[u8]) -> T,
    ) -> Result<T, &'static str> {
        let resp = self
            .http
            .post(format!("{}{path}", self.api_base))
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_kind(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| transport_kind(&e))?;
        Ok(judge(status, &bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_write_answers() {
        let ok = br#"{"reservationId":"r1","id":"ohre~a","processingStatus":"success","message":"","statusCode":200}"#;
        assert_eq!(
            classify_write(200, ok),
            Verdict::Ok {
                items: 1,
                reservation_id: Some("r1".into()),
                records: 0
            }
        );
        let short = br#"{"id":"ohre~a","processingStatus":"failure","message":"not enough","statusCode":500,"code":"stock.insufficient"}"#;
        assert_eq!(classify_write(409, short), Verdict::Refused { items: 1 });
        let partial = br#"{"processingStatus":"partialSuccess","statusCode":200}"#;
        assert!(matches!(classify_write(200, partial), Verdict::Ok { .. }));
    }

    #[test]
    fn malformed_or_odd_answers_are_errors_never_successes() {
        assert_eq!(
            classify_write(200, b"not json"),
            Verdict::error("malformed:json", false)
        );
        assert_eq!(
            classify_write(200, br#"{"processingStatus":"failure"}"#),
            Verdict::error("malformed:200_without_success", false)
        );
        assert!(matches!(
            classify_write(200, b"[]"),
            Verdict::Error { retryable: false, .. }
        ));
        // 409 that is an id conflict, not a shortfall
        let conflict = br#"{"processingStatus":"failure","statusCode":409,"code":"event.conflict"}"#;
        assert_eq!(
            classify_write(409, conflict),
            Verdict::error("http_409:event.conflict", false)
        );
        assert_eq!(
            classify_write(503, br#"{"code":"raft.no_quorum"}"#),
            Verdict::error("http_503:raft.no_quorum", true)
        );
        assert_eq!(classify_write(500, b""), Verdict::error("http_500", false));
        assert_eq!(classify_write(429, b"x"), Verdict::error("http_429", true));
    }

    #[test]
    fn bulk_answers() {
        let all = br#"{"success":[{"statusCode":200},{"statusCode":200}],"failure":[],"conflict":[],"notFound":[],"partialSuccess":[],"unknown":[]}"#;
        assert_eq!(
            classify_bulk(200, all, 2),
            Verdict::Ok {
                items: 2,
                reservation_id: None,
                records: 0
            }
        );
        let none = br#"{"success":[],"failure":[{"statusCode":500},{"statusCode":"500"}]}"#;
        assert_eq!(classify_bulk(200, none, 2), Verdict::Refused { items: 2 });
        let mixed = br#"{"success":[{}],"failure":[{"statusCode":500}],"unknown":[{"statusCode":503}]}"#;
        assert_eq!(
            classify_bulk(200, mixed, 3),
            Verdict::Mixed {
                ok: 1,
                refused: 1,
                errored: 1,
                kind: Some("bulk_unknown".into())
            }
        );
        // buckets that do not add up to what was sent
        assert!(matches!(classify_bulk(200, all, 3), Verdict::Error { .. }));
        assert!(matches!(classify_bulk(200, b"{}", 1), Verdict::Error { .. }));
        assert!(matches!(classify_bulk(200, b"[1]", 1), Verdict::Error { .. }));
        assert_eq!(
            classify_bulk(400, br#"{"code":"limit.bulk_items"}"#, 513),
            Verdict::error("http_400:limit.bulk_items", false)
        );
    }

    #[test]
    fn query_answers_and_the_hot_read_back() {
        let body = br#"[{"productId":"p","dimensions":{"siteid":"1","locationid":"11"},"quantities":{"iv":{"onhand":10,"softreservphysical":10,"availabletoreserve":0}}}]"#;
        assert_eq!(
            classify_query(200, body),
            Verdict::Ok {
                items: 1,
                reservation_id: None,
                records: 1
            }
        );
        assert_eq!(
            read_back(body),
            Ok(ReadBack {
                records: 1,
                reserved: 10.0,
                available: 0.0,
                negative: 0
            })
        );
        let two = br#"[{"quantities":{"iv":{"softreservphysical":"3","availabletoreserve":-1}}},{"quantities":{"iv":{"softreservphysical":2}}}]"#;
        assert_eq!(
            read_back(two),
            Ok(ReadBack {
                records: 2,
                reserved: 5.0,
                available: -1.0,
                negative: 1
            })
        );
        assert!(matches!(classify_query(200, b"{}"), Verdict::Error { .. }));
        assert!(read_back(b"[]").is_err());
        assert!(read_back(br#"[{"quantities":{}}]"#).is_err());
        assert!(read_back(br#"[{"quantities":{"iv":{"softreservphysical":"x"}}}]"#).is_err());
    }

    #[test]
    fn bodies_have_the_iv_shape() {
        let k = Key {
            product: "p1".into(),
            site: "1".into(),
            location: "11".into(),
        };
        let v: serde_json::Value = serde_json::to_value(ReserveBody::new("id1", "usmf", &k, 1)).unwrap();
        assert_eq!(v["dimensions"]["locationId"], "11");
        assert_eq!(v["ifCheckAvailForReserv"], true);
        assert_eq!(v["modifier"], "softreservphysical");
        let c = serde_json::to_value(ChangeBody::new("e", "usmf", &k, "pos", "inbound", 5)).unwrap();
        assert_eq!(c["quantities"]["pos"]["inbound"], 5);
        let q = serde_json::to_value(exact_query("usmf", vec!["p1"], vec![["1", "11"]])).unwrap();
        assert_eq!(q["filters"]["values"][0][1], "11");
        assert_eq!(q["filters"]["dimensions"][0], "siteId");
    }
}
