//! Request bodies: JSON with keys in any case (`KeyCanon`), numbers as strings, `""` dimensions
//! as "no value"; every refusal names the field.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use ivory_core::config::PartitionMode;
use ivory_core::json::KeyCanon;
use ivory_core::model::{NAME_LEN_MAX, canonical_name};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

use ivory_core::date::parse_day;
use ivory_core::{
    Allocation, Availability, Cell, Command, Config, Consumption, MeasureRef, Modifier, OnHandChange, PartitionKey,
    Qty, Quantities, Reallocation, Reserve, ScheduleChange, SetOnHand, Unreserve,
};
use serde_json::{Map, Value};

use crate::{ApiError, Gateway};

/// Field names of every body the gateway reads, in IV's canonical spelling.
pub(crate) const FIELDS: &[&str] = &[
    "id",
    "organizationId",
    "productId",
    "dimensionDataSource",
    "dimensions",
    "quantities",
    "quantityDataSource",
    "modifier",
    "quantity",
    "ifCheckAvailForReserv",
    "reservationId",
    "OffsetQty",
    "modifiedDateTimeUTC",
    "filters",
    "siteId",
    "locationId",
    "groupByValues",
    "returnNegative",
    "values",
    "keys",
    "QueryATP",
    "ATPFromDate",
    "ATPToDate",
    "quantitiesByDate",
    "groups",
    "targetGroups",
    "sourceGroups",
    "physicalMeasures",
    // IV's spelling of the default allocation group levels, echoed back by `allocation/query`.
    "customerGroup",
    "orderType",
];

/// [`FIELDS`] as a [`KeyCanon`], built once.
pub(crate) fn field_names() -> &'static KeyCanon {
    static NAMES: std::sync::OnceLock<KeyCanon> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| KeyCanon::new(FIELDS))
}

/// The body's bytes: 413 over the body limit, 400 when it cannot be read.
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body.too_large",
                "the request body is over the size limit",
            )
        } else {
            ApiError::bad_request(
                "body.unreadable",
                format!("the request body could not be read: {rejection}"),
            )
        }
    })
}

/// Reads a JSON body: 413 over the body limit, 400 when it is not JSON.
pub(crate) fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    json_value(&body_bytes(body)?)
}

/// A body's bytes as JSON, every key in its canonical case; 400 when they are not JSON.
pub(crate) fn json_value(bytes: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("body.malformed", format!("body: not valid JSON: {e}")))?;
    field_names()
        .apply(value)
        .map_err(|e| ApiError::bad_request("body.malformed", e))
}

/// axum's `Path`, refusing with the gateway's JSON error (axum's own rejection is plain text):
/// a parameter that is not UTF-8 once percent-decoded is 400 `field.bad_value`.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "field.bad_value",
                format!("path: {}", rejection.body_text()),
            )),
        }
    }
}

/// axum's `Query`, refusing with the gateway's JSON error.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "field.bad_value",
                format!("query: {}", rejection.body_text()),
            )),
        }
    }
}

/// A field's place in a body (`[3].quantity`), written out only when an error names it: a bulk of
/// 512 items would otherwise build a few thousand strings that no one reads.
#[derive(Clone, Copy)]
pub(crate) struct Joined<'a>(&'a str, &'a str);

impl std::fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str(self.1)
        } else {
            write!(f, "{}.{}", self.0, self.1)
        }
    }
}

pub(crate) fn join<'a>(path: &'a str, field: &'a str) -> Joined<'a> {
    Joined(path, field)
}

fn missing(path: &str, field: &str) -> ApiError {
    ApiError::bad_request("field.missing", format!("{}: is required", join(path, field)))
}

/// A name-like value: a string, or a number given for one; bounded and without control characters.
pub(crate) fn text_value(value: &Value, field: impl std::fmt::Display) -> Result<String, ApiError> {
    match value {
        Value::String(s) => checked_text(s.trim().to_string(), field),
        Value::Number(n) => checked_text(n.to_string(), field),
        _ => Err(ApiError::bad_request(
            "field.bad_type",
            format!("{field}: must be a string"),
        )),
    }
}

/// A name's text (trimmed already when it came as a string): bounded, no control characters.
pub(crate) fn checked_text(text: String, field: impl std::fmt::Display) -> Result<String, ApiError> {
    if text.len() > NAME_LEN_MAX {
        return Err(ApiError::bad_request(
            "field.too_long",
            format!("{field}: longer than {NAME_LEN_MAX} bytes"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "field.bad_value",
            format!("{field}: contains control characters"),
        ));
    }
    Ok(text)
}

/// A required name: refused when it is empty once trimmed.
pub(crate) fn non_empty(text: String, path: &str, field: &str) -> Result<String, ApiError> {
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "field.empty",
            format!("{}: must not be empty", join(path, field)),
        ));
    }
    Ok(text)
}

pub(crate) fn required_text(obj: &Map<String, Value>, field: &str, path: &str) -> Result<String, ApiError> {
    let value = obj
        .get(field)
        .filter(|v| !v.is_null())
        .ok_or_else(|| missing(path, field))?;
    non_empty(text_value(value, join(path, field))?, path, field)
}

pub(crate) fn optional_text(obj: &Map<String, Value>, field: &str, path: &str) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(text_value(v, join(path, field))?).filter(|s| !s.is_empty())),
    }
}

pub(crate) fn qty_value(value: &Value, field: impl std::fmt::Display) -> Result<Qty, ApiError> {
    match value {
        Value::Number(n) => qty_text(&n.to_string(), field),
        Value::String(s) => qty_text(s, field),
        _ => Err(ApiError::bad_request(
            "field.bad_number",
            format!("{field}: must be a number"),
        )),
    }
}

/// A quantity's text, as a JSON number spells it or as a string gave it.
pub(crate) fn qty_text(text: &str, field: impl std::fmt::Display) -> Result<Qty, ApiError> {
    Qty::parse(text).map_err(|e| ApiError::bad_request("field.bad_number", format!("{field}: {e}")))
}

pub(crate) fn bool_value(
    value: Option<&Value>,
    field: impl std::fmt::Display,
    default: bool,
) -> Result<bool, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ApiError::bad_request(
            "field.bad_type",
            format!("{field}: must be true or false"),
        )),
    }
}

/// `dimensions` as (name, value) pairs; `null` counts as `""` (no value).
fn dimension_pairs(obj: &Map<String, Value>, path: &str) -> Result<Vec<(String, String)>, ApiError> {
    let field = join(path, "dimensions");
    let Some(value) = obj.get("dimensions") else {
        return Err(missing(path, "dimensions"));
    };
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "field.bad_type",
            format!("{field}: must be an object"),
        ));
    };
    map.iter()
        .map(|(k, v)| {
            let text = if v.is_null() {
                String::new()
            } else {
                text_value(v, format_args!("{field}.{k}"))?
            };
            Ok((k.clone(), text))
        })
        .collect()
}

fn quantities(obj: &Map<String, Value>, path: &str) -> Result<Quantities, ApiError> {
    let field = join(path, "quantities");
    match obj.get("quantities") {
        None => Err(missing(path, "quantities")),
        Some(v) => quantities_value(v, field),
    }
}

/// `{dataSource: {measure: number}}` at `field`.
fn quantities_value(value: &Value, field: impl std::fmt::Display) -> Result<Quantities, ApiError> {
    let Value::Object(sources) = value else {
        return Err(ApiError::bad_request(
            "field.bad_type",
            format!("{field}: must be an object"),
        ));
    };
    let mut out = Quantities::new();
    for (ds, measures) in sources {
        let Value::Object(measures) = measures else {
            return Err(ApiError::bad_request(
                "field.bad_type",
                format!("{field}.{ds}: must be an object of measure -> number"),
            ));
        };
        let slot = out.entry(canonical_name(ds)).or_default();
        for (m, v) in measures {
            let q = qty_value(v, format_args!("{field}.{ds}.{m}"))?;
            if slot.insert(canonical_name(m), q).is_some() {
                return Err(ApiError::bad_request(
                    "field.duplicate",
                    format!("{field}.{ds}.{m}: given twice"),
                ));
            }
        }
    }
    if out.values().all(|m| m.is_empty()) {
        return Err(ApiError::bad_request(
            "field.empty",
            format!("{field}: at least one data source and measure is required"),
        ));
    }
    Ok(out)
}

/// Which write an endpoint takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteKind {
    Change,
    Set,
    Reserve,
    Unreserve,
    Schedule,
    Allocate,
    Unallocate,
    Reallocate,
    Consume,
}

impl WriteKind {
    pub fn prefix(self) -> &'static str {
        use ivory_core::command::OpCode;
        match self {
            WriteKind::Change => OpCode::OnHandChange.prefix(),
            WriteKind::Set => OpCode::SetOnHand.prefix(),
            WriteKind::Reserve => OpCode::Reserve.prefix(),
            WriteKind::Unreserve => OpCode::Unreserve.prefix(),
            WriteKind::Schedule => OpCode::ScheduleChange.prefix(),
            WriteKind::Allocate => OpCode::Allocate.prefix(),
            WriteKind::Unallocate => OpCode::Unallocate.prefix(),
            WriteKind::Reallocate => OpCode::Reallocate.prefix(),
            WriteKind::Consume => OpCode::Consume.prefix(),
        }
    }

    /// Whether parsing needs the environment's configuration (allocation group levels).
    pub fn needs_config(self) -> bool {
        matches!(
            self,
            WriteKind::Allocate | WriteKind::Unallocate | WriteKind::Reallocate | WriteKind::Consume
        )
    }
}

/// The client's `id`, as far as it can be read, for the result id of a refused item.
pub(crate) fn client_id(value: &Value) -> String {
    match value.get("id") {
        Some(Value::String(s)) => client_id_text(s),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A client id given as a string, cut to a name's bound (in characters, as it always was).
pub(crate) fn client_id_text(s: &str) -> String {
    // A string of at most that many bytes has at most that many characters.
    if s.len() <= NAME_LEN_MAX {
        s.to_string()
    } else {
        s.chars().take(NAME_LEN_MAX).collect()
    }
}

/// Whether any item names a `dimensionDataSource` (then the environment's mappings are needed).
pub(crate) fn needs_mappings<'a>(items: impl IntoIterator<Item = &'a Value>) -> bool {
    items.into_iter().any(|v| {
        v.get("dimensionDataSource")
            .is_some_and(|d| d.as_str().is_none_or(|s| !s.trim().is_empty()) && !d.is_null())
    })
}

/// The configuration whose dimension mappings apply: the environment's when needed, else the
/// default (base dimension names need no configuration).
pub(crate) async fn mapping_config(
    gateway: &Gateway,
    environment: &str,
    _needed: bool,
) -> Result<Arc<Config>, ApiError> {
    // Always the environment's (cached briefly): its partition mode decides where a write lives.
    gateway.environment_config(environment).await
}

pub(crate) fn partition_and_cell(
    obj: &Map<String, Value>,
    environment: &str,
    config: &Config,
    path: &str,
    product_required: bool,
    partition_optional: bool,
) -> Result<(PartitionKey, Cell), ApiError> {
    let organization = required_text(obj, "organizationId", path)?;
    let product = if product_required {
        required_text(obj, "productId", path)?
    } else {
        optional_text(obj, "productId", path)?.unwrap_or_default()
    };
    let data_source = optional_text(obj, "dimensionDataSource", path)?;
    let pairs = dimension_pairs(obj, path)?;
    let pairs = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    place_cell(
        environment,
        config,
        path,
        organization,
        product,
        data_source.as_deref(),
        pairs,
        partition_optional,
    )
}

/// Where a write's item lives, from its fields once read.
#[allow(clippy::too_many_arguments)]
pub(crate) fn place_cell<'a>(
    environment: &str,
    config: &Config,
    path: &str,
    organization: String,
    product: String,
    data_source: Option<&str>,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    partition_optional: bool,
) -> Result<(PartitionKey, Cell), ApiError> {
    // By location, IV accepts on-hand changes without site and location; the shard refuses the
    // writes among them that take stock (body statusCode 500). By product they are optional.
    if config.partition_mode == PartitionMode::ByProduct && product.is_empty() {
        return Err(missing(path, "productId"));
    }
    let (partition, dims) = config
        .place(
            environment,
            &organization,
            &product,
            data_source,
            pairs,
            partition_optional,
        )
        .map_err(|m| {
            ApiError::bad_request(
                "field.bad_dimensions",
                if path.is_empty() { m } else { format!("{path}.{m}") },
            )
        })?;
    Ok((partition, Cell { product, dims }))
}

/// Parses one write item into its command.
///
/// # Errors
/// A 400 [`ApiError`] naming the first bad field (prefixed by `path`, e.g. `[3]`).
pub(crate) fn write_command(
    kind: WriteKind,
    value: &Value,
    environment: &str,
    config: &Config,
    path: &str,
) -> Result<Command, ApiError> {
    let Value::Object(obj) = value else {
        let field = if path.is_empty() { "body" } else { path };
        return Err(ApiError::bad_request(
            "body.not_object",
            format!("{field}: must be a JSON object"),
        ));
    };
    let id = required_text(obj, "id", path)?;
    match kind {
        WriteKind::Change => {
            let (partition, cell) = partition_and_cell(obj, environment, config, path, true, true)?;
            Ok(Command::OnHandChange(OnHandChange {
                id,
                partition,
                cell,
                quantities: quantities(obj, path)?,
            }))
        }
        WriteKind::Set => {
            let (partition, cell) = partition_and_cell(obj, environment, config, path, true, true)?;
            let modified_ms = match obj.get("modifiedDateTimeUTC") {
                None | Some(Value::Null) => None,
                Some(v) => Some(timestamp_ms(v, join(path, "modifiedDateTimeUTC"))?),
            };
            Ok(Command::SetOnHand(SetOnHand {
                id,
                partition,
                cell,
                quantities: quantities(obj, path)?,
                modified_ms,
            }))
        }
        WriteKind::Reserve => {
            let (partition, cell) = partition_and_cell(obj, environment, config, path, true, true)?;
            let modifier = required_text(obj, "modifier", path)?;
            let measure = reserved_measure(optional_text(obj, "quantityDataSource", path)?.as_deref(), &modifier);
            let quantity = match obj.get("quantity") {
                None | Some(Value::Null) => return Err(missing(path, "quantity")),
                Some(v) => qty_value(v, join(path, "quantity"))?,
            };
            let checked = bool_value(
                obj.get("ifCheckAvailForReserv"),
                join(path, "ifCheckAvailForReserv"),
                true,
            )?;
            Ok(reserve_command(id, (partition, cell), measure, quantity, checked))
        }
        WriteKind::Unreserve => {
            // `productId` joined the unreserve body only in IV's 2024 docs: optional here.
            let (partition, _cell) = partition_and_cell(obj, environment, config, path, false, false)?;
            let reservation_id = required_text(obj, "reservationId", path)?;
            let offset = match obj.get("OffsetQty") {
                None | Some(Value::Null) => return Err(missing(path, "OffsetQty")),
                Some(v) => qty_value(v, join(path, "OffsetQty"))?,
            };
            Ok(Command::Unreserve(Unreserve {
                id,
                partition,
                reservation_id,
                offset,
            }))
        }
        WriteKind::Schedule => {
            let (partition, cell) = partition_and_cell(obj, environment, config, path, true, false)?;
            Ok(Command::ScheduleChange(ScheduleChange {
                id,
                partition,
                cell,
                quantities_by_date: quantities_by_date(obj, path)?,
            }))
        }
        WriteKind::Allocate | WriteKind::Unallocate => {
            let (partition, cell) = partition_and_cell(obj, environment, config, path, true, true)?;
            let allocation = Allocation {
                id,
                partition,
                cell,
                groups: target_groups(obj, config, path, true)?,
                quantity: required_qty(obj, "quantity", path)?,
            };
            Ok(if kind == WriteKind::Allocate {
                Command::Allocate(allocation)
            } else {
                Command::Unallocate(allocation)
            })
        }
        WriteKind::Reallocate => {
            let (partition, cell) = partition_and_cell(obj, environment, config, path, true, true)?;
            let source_groups = match obj.get("sourceGroups") {
                None | Some(Value::Null) => return Err(missing(path, "sourceGroups")),
                Some(v) => group_path(v, config, join(path, "sourceGroups"))?,
            };
            Ok(Command::Reallocate(Reallocation {
                id,
                partition,
                cell,
                source_groups,
                groups: target_groups(obj, config, path, true)?,
                quantity: required_qty(obj, "quantity", path)?,
            }))
        }
        WriteKind::Consume => {
            let (partition, cell) = partition_and_cell(obj, environment, config, path, true, true)?;
            Ok(Command::Consume(Consumption {
                id,
                partition,
                cell,
                groups: target_groups(obj, config, path, true)?,
                quantity: required_qty(obj, "quantity", path)?,
                physical: physical_measures(obj, path)?,
            }))
        }
    }
}

/// A reserve once its fields are read; `checked`: `ifCheckAvailForReserv`.
pub(crate) fn reserve_command(
    id: String,
    (partition, cell): (PartitionKey, Cell),
    measure: MeasureRef,
    quantity: Qty,
    checked: bool,
) -> Command {
    Command::Reserve(Reserve {
        id,
        partition,
        cell,
        measure,
        quantity,
        availability: if checked {
            Availability::Checked
        } else {
            Availability::Unchecked
        },
    })
}

/// The measure a reserve takes: `quantityDataSource` and `modifier`, or a `ds.measure` modifier,
/// else IV's own data source.
pub(crate) fn reserved_measure(data_source: Option<&str>, modifier: &str) -> MeasureRef {
    match data_source {
        Some(ds) => MeasureRef::new(ds, modifier),
        None => MeasureRef::parse(modifier).unwrap_or_else(|| MeasureRef::new("iv", modifier)),
    }
}

fn required_qty(obj: &Map<String, Value>, field: &str, path: &str) -> Result<Qty, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(missing(path, field)),
        Some(v) => qty_value(v, join(path, field)),
    }
}

/// `quantitiesByDate`: `{"<date>": {dataSource: {measure: number}}}`; a date in any form
/// `ivory_core::date::parse_day` reads, as a UTC day.
fn quantities_by_date(obj: &Map<String, Value>, path: &str) -> Result<BTreeMap<i64, Quantities>, ApiError> {
    let field = join(path, "quantitiesByDate");
    let Some(value) = obj.get("quantitiesByDate").filter(|v| !v.is_null()) else {
        return Err(missing(path, "quantitiesByDate"));
    };
    let Value::Object(days) = value else {
        return Err(ApiError::bad_request(
            "field.bad_type",
            format!("{field}: must be an object of date -> quantities"),
        ));
    };
    let default_ds = optional_text(obj, "quantityDataSource", path)?;
    let mut out = BTreeMap::new();
    for (key, q) in days {
        // Keys arrive lower-cased (`KeyCanon`): `2023-09-26t00:00:00z`.
        let day = parse_day(&key.to_ascii_uppercase()).ok_or_else(|| {
            ApiError::bad_request(
                "field.bad_timestamp",
                format!(
                    "{field}.{key}: not a date (expected e.g. 2023-09-26, 2023-09-26T00:00:00Z or Tue Sep 26 2023)"
                ),
            )
        })?;
        // With `quantityDataSource`, a date may hold `{measure: number}` directly.
        let q = match (&default_ds, q) {
            (Some(ds), Value::Object(m)) if m.values().all(|v| !v.is_object()) => {
                let mut wrapped = Map::new();
                wrapped.insert(ds.clone(), q.clone());
                quantities_value(&Value::Object(wrapped), format_args!("{field}.{key}"))?
            }
            _ => quantities_value(q, format_args!("{field}.{key}"))?,
        };
        if out.insert(day, q).is_some() {
            return Err(ApiError::bad_request(
                "field.duplicate",
                format!("{field}.{key}: this day is given twice"),
            ));
        }
    }
    if out.is_empty() {
        return Err(ApiError::bad_request(
            "field.empty",
            format!("{field}: at least one date is required"),
        ));
    }
    Ok(out)
}

/// `{groupName: value}` -> the group path in level order (`Config::group_path`).
pub(crate) fn group_path(
    value: &Value,
    config: &Config,
    field: impl std::fmt::Display,
) -> Result<Vec<String>, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "field.bad_type",
            format!("{field}: must be an object of group name -> value"),
        ));
    };
    let mut named = BTreeMap::new();
    for (k, v) in map {
        let text = if v.is_null() {
            String::new()
        } else {
            text_value(v, format_args!("{field}.{k}"))?
        };
        named.insert(k.clone(), text);
    }
    config.group_path(&named).map_err(|m| {
        // core names the field `groups.<level>`: keep the client's field name.
        let m = m
            .strip_prefix("groups")
            .map_or(m.clone(), |rest| format!("{field}{rest}"));
        ApiError::bad_request("field.bad_value", m)
    })
}

/// `groups`, or its 2022 name `targetGroups`.
pub(crate) fn target_groups(
    obj: &Map<String, Value>,
    config: &Config,
    path: &str,
    required: bool,
) -> Result<Vec<String>, ApiError> {
    let given = |f: &str| obj.get(f).filter(|v| !v.is_null());
    let (field, value) = match (given("groups"), given("targetGroups")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "field.duplicate",
                format!("{}: give groups or targetGroups, not both", join(path, "groups")),
            ));
        }
        (Some(v), None) => ("groups", v),
        (None, Some(v)) => ("targetGroups", v),
        (None, None) if required => return Err(missing(path, "groups")),
        (None, None) => return Ok(Vec::new()),
    };
    group_path(value, config, join(path, field))
}

/// `physicalMeasures: {dataSource: {measure: "Addition" | "Subtraction"}}`.
fn physical_measures(obj: &Map<String, Value>, path: &str) -> Result<Vec<(MeasureRef, Modifier)>, ApiError> {
    let field = join(path, "physicalMeasures");
    let sources = match obj.get("physicalMeasures") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(sources)) => sources,
        Some(_) => {
            return Err(ApiError::bad_request(
                "field.bad_type",
                format!("{field}: must be an object of data source -> {{measure: modifier}}"),
            ));
        }
    };
    let mut out = Vec::new();
    for (ds, measures) in sources {
        let Value::Object(measures) = measures else {
            return Err(ApiError::bad_request(
                "field.bad_type",
                format!("{field}.{ds}: must be an object of measure -> \"Addition\" or \"Subtraction\""),
            ));
        };
        for (m, modifier) in measures {
            let name = format!("{field}.{ds}.{m}");
            let modifier = match modifier.as_str().map(|w| w.trim().to_ascii_lowercase()).as_deref() {
                Some("addition") => Modifier::Addition,
                Some("subtraction") => Modifier::Subtraction,
                _ => {
                    return Err(ApiError::bad_request(
                        "field.bad_value",
                        format!("{name}: {modifier} must be \"Addition\" or \"Subtraction\""),
                    ));
                }
            };
            out.push((MeasureRef::new(ds, m), modifier));
        }
    }
    Ok(out)
}

/// `modifiedDateTimeUTC`: `YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]`, or milliseconds since the epoch.
pub(crate) fn timestamp_ms(value: &Value, field: impl std::fmt::Display) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "field.bad_timestamp",
            format!("{field}: expected a UTC time like 2024-01-31T12:00:00Z"),
        )
    };
    let text = match value {
        Value::Number(n) => return n.as_u64().ok_or_else(bad),
        Value::String(s) => s.trim(),
        _ => return Err(bad()),
    };
    let b = text.as_bytes();
    if b.len() < 19
        || !text.is_ascii()
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| text[r].parse::<i64>().map_err(|_| bad());
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    // A day the month does not have (2023-02-31) is refused, not rolled into the next month.
    let days = u32::try_from(mo)
        .ok()
        .zip(u32::try_from(d).ok())
        .and_then(|(mo, d)| ivory_core::date::days_from_civil(y, mo, d))
        .ok_or_else(bad)?;
    if h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(bad());
        }
        let padded: String = digits.chars().chain("000".chars()).take(3).collect();
        ms = padded.parse::<i64>().map_err(|_| bad())?;
        rest = &frac[digits.len()..];
    }
    if !matches!(rest, "" | "Z" | "z" | "+00:00" | "-00:00") {
        return Err(bad());
    }
    let total = ((days * 24 + h) * 60 + mi) * 60 + s;
    u64::try_from(total * 1000 + ms).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::timestamp_ms;

    #[test]
    fn timestamps_name_real_days() {
        assert_eq!(
            timestamp_ms(&json!("2024-01-31T12:00:00Z"), "t").ok(),
            Some(1_706_702_400_000)
        );
        assert_eq!(
            timestamp_ms(&json!("2024-02-29T00:00:00.5"), "t").ok(),
            Some(1_709_164_800_500)
        );
        // Found while writing the hostile-input fuzz: these were rolled into the next month.
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-02-31T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-00-10T00:00:00Z",
        ] {
            let e = timestamp_ms(&json!(bad), "t").unwrap_err();
            assert_eq!(e.code, "field.bad_timestamp", "{bad}");
        }
    }
}
