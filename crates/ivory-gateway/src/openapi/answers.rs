//! Answers: errors, write results and buckets, query records, holds, events, tokens.

use super::*;

// ---- answers ---------------------------------------------------------------------------------

/// Every non-2xx answer: a stable machine-readable `code` (crates/ivory-gateway/README.md), a
/// message naming the field, and the HTTP status (IV's body status for single writes).
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct ErrorBody {
    #[schema(example = "field.missing")]
    code: String,
    #[schema(example = "productId: is required")]
    message: String,
    statusCode: u16,
}

/// IV's result of a single write (`id` is `<op>~<client id>`).
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct WriteResult {
    id: String,
    /// success, partialSuccess, failure, unknown.
    processingStatus: String,
    message: String,
    /// IV's status: 200, 400, 404, 409, or 500 for not enough stock.
    statusCode: u16,
    /// A refusal's stable code.
    code: Option<String>,
    reservationId: Option<String>,
    totalInvalidOffsetQtyByReservId: Option<f64>,
}

/// The answer of a clean-up.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct CleanUpResult {
    /// `success`.
    processingStatus: String,
    message: String,
    statusCode: u16,
}

/// A bulk call's answer: every item in exactly one bucket.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct BulkResult {
    success: Vec<WriteResult>,
    failure: Vec<WriteResult>,
    conflict: Vec<WriteResult>,
    notFound: Vec<WriteResult>,
    partialSuccess: Vec<WriteResult>,
    unknown: Vec<WriteResult>,
}

/// A query record.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct QueryRecord {
    /// Api-Version 2.0 only.
    organizationId: Option<String>,
    productId: String,
    dimensions: std::collections::BTreeMap<String, String>,
    quantities: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
    /// With QueryATP.
    quantitiesByDate: Option<serde_json::Value>,
    atpQuantities: Option<serde_json::Value>,
}

/// A page of an Api-Version 2.0 query.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct QueryPage {
    Value: Vec<QueryRecord>,
    /// Relative link to the next page, empty on the last.
    nextLink: String,
}

/// A record of `allocation/query`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct AllocationRecord {
    productId: String,
    dimensions: std::collections::BTreeMap<String, String>,
    groups: std::collections::BTreeMap<String, String>,
    quantities: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
}

/// A line of a hold as answered.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldLineOut {
    lineId: String,
    productId: String,
    dimensions: std::collections::BTreeMap<String, String>,
    quantity: f64,
    allowOversell: bool,
    /// held, short, consumed, released.
    status: String,
}

#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldHistoryEntry {
    status: String,
    /// RFC 3339, UTC.
    at: String,
}

/// A hold as it is now.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct Hold {
    id: String,
    organizationId: String,
    /// tentative, active, confirmed, consumed, released, expired.
    status: String,
    /// RFC 3339; null once confirmed, released or consumed.
    expiresAt: Option<String>,
    createdAt: Option<String>,
    allOrNothing: bool,
    measure: String,
    items: Vec<HoldLineOut>,
    history: Vec<HoldHistoryEntry>,
}

/// `GET events?wait=false`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct EventsPage {
    /// `{type, holdId, organizationId, status, at, shard, seq, cursor}` (stock alerts carry
    /// productId, siteId, locationId, measure, value, threshold instead of holdId and status).
    events: Vec<serde_json::Value>,
    /// Where to resume: `from=<cursor>`.
    cursor: String,
}

/// One server-sent event of `GET events` (`id:`, `event:`, `data:` lines).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ServerSentEvent {
    /// The cursor just after this event (resume with `from=` or `Last-Event-ID`).
    id: String,
    /// The event's type, e.g. `hold.created`.
    event: String,
    /// The event as JSON, as in `EventsPage.events`.
    data: String,
}

#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct TokenAnswer {
    access_token: String,
    /// `bearer`.
    token_type: String,
    /// Seconds.
    expires_in: u64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Health {
    /// `ok`.
    status: String,
}
