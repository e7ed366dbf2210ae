//! Request bodies, as doc-only types: the JSON keys as IV spells them (keys are accepted in any case).

use super::*;

// ---- request bodies --------------------------------------------------------------------------
// Field names are the JSON keys as IV spells them (keys are accepted in any case).

/// `POST onhand` (and each item of `onhand/bulk`).
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct OnHandChangeRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    #[schema(schema_with = Quantities::schema)]
    quantities: (),
}

/// An item of `setonhand/{inventorySystem}/bulk`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct SetOnHandRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    #[schema(schema_with = Quantities::schema)]
    quantities: (),
    /// `YYYY-MM-DDTHH:MM:SS[.fff][Z]` (UTC) or milliseconds since the epoch; older sets are ignored.
    modifiedDateTimeUTC: Option<serde_json::Value>,
}

/// `POST onhand/reserve` (and each item of `/bulk`).
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct ReserveRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    /// Data source of `modifier` (default `iv`).
    #[schema(schema_with = OptionalName::schema)]
    quantityDataSource: Option<String>,
    /// The reservation measure, e.g. `softreservphysical` (or `ds.measure`).
    #[schema(schema_with = Name::schema)]
    modifier: String,
    #[schema(schema_with = Quantity::schema)]
    quantity: (),
    /// Check availability first (default true).
    #[schema(schema_with = Flag::schema)]
    ifCheckAvailForReserv: Option<bool>,
}

/// `POST onhand/unreserve` (and each item of `/bulk`).
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct UnreserveRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = OptionalName::schema)]
    productId: Option<String>,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    #[schema(schema_with = Name::schema)]
    reservationId: String,
    #[schema(schema_with = PositiveQuantity::schema)]
    OffsetQty: (),
}

/// `POST onhand/changeschedule` (and each item of `/bulk`).
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct ChangeScheduleRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    /// With it, a date may hold `{measure: quantity}` directly.
    #[schema(schema_with = OptionalName::schema)]
    quantityDataSource: Option<String>,
    /// `{"<date>": {dataSource: {measure: quantity}}}`; dates as `2023-09-26`, `2023-09-26T00:00:00Z`,
    /// `2023/09/26` or `Tue Sep 26 2023` (a UTC day within the schedule period from today).
    #[schema(schema_with = quantities_by_date)]
    quantitiesByDate: (),
}

/// `POST allocation/allocate` and `allocation/unallocate`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct AllocationRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    /// Or `targetGroups` (not both).
    #[schema(schema_with = Groups::schema)]
    groups: (),
    /// Greater than zero.
    #[schema(schema_with = PositiveQuantity::schema)]
    quantity: (),
}

/// `POST allocation/reallocate`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct ReallocateRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    #[schema(schema_with = Groups::schema)]
    sourceGroups: (),
    /// Or `targetGroups` (not both).
    #[schema(schema_with = Groups::schema)]
    groups: (),
    #[schema(schema_with = PositiveQuantity::schema)]
    quantity: (),
}

/// `POST allocation/consume`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct ConsumeRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    /// Or `targetGroups` (not both).
    #[schema(schema_with = Groups::schema)]
    groups: (),
    #[schema(schema_with = PositiveQuantity::schema)]
    quantity: (),
    /// `{dataSource: {measure: "Addition" | "Subtraction"}}` (`fno` refused).
    physicalMeasures: Option<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>>,
}

/// `POST allocation/query`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct AllocationQueryRequest {
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    /// A prefix of the group path (or `targetGroups`); absent or null = every path.
    #[schema(schema_with = optional_groups)]
    groups: Option<()>,
}

/// `filters` of an index query: `organizationId`, `productId`, `siteId`, `locationId` and any
/// other dimension -> list of values.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct IndexFilters {
    #[schema(schema_with = OrganizationList::schema)]
    organizationId: (),
    /// At most 5,000; required when siteId and locationId are empty.
    #[schema(schema_with = NameList::schema)]
    productId: Option<()>,
    #[schema(schema_with = NameList::schema)]
    siteId: Option<()>,
    #[schema(schema_with = NameList::schema)]
    locationId: Option<()>,
}

/// `POST onhand/indexquery` (and the same fields as query parameters of `GET onhand`).
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct IndexQueryRequest {
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    filters: IndexFilters,
    #[schema(schema_with = NameList::schema)]
    groupByValues: Option<()>,
    #[schema(schema_with = Flag::schema)]
    returnNegative: Option<bool>,
    #[schema(schema_with = Flag::schema)]
    QueryATP: Option<bool>,
    #[schema(schema_with = OptionalName::schema)]
    ATPFromDate: Option<String>,
    #[schema(schema_with = OptionalName::schema)]
    ATPToDate: Option<String>,
}

/// `filters` of an exact query.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct ExactFilters {
    /// (Api-Version 2.0 may instead name organizationId in `keys`.)
    #[schema(schema_with = OrganizationList::schema)]
    organizationId: (),
    #[schema(schema_with = NameList::schema)]
    productId: Option<()>,
    /// Dimension names of each tuple; must include siteId and locationId. (Api-Version 2.0 may
    /// call them `keys`, and include organizationId.)
    #[schema(min_items = 2)]
    dimensions: Vec<String>,
    /// 1 to 5,000 tuples, one value per name.
    #[schema(min_items = 1, max_items = 5000)]
    values: Vec<Vec<serde_json::Value>>,
}

/// `POST onhand/exactquery`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct ExactQueryRequest {
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    filters: ExactFilters,
    #[schema(schema_with = NameList::schema)]
    groupByValues: Option<()>,
    #[schema(schema_with = Flag::schema)]
    returnNegative: Option<bool>,
    #[schema(schema_with = Flag::schema)]
    QueryATP: Option<bool>,
    #[schema(schema_with = OptionalName::schema)]
    ATPFromDate: Option<String>,
    #[schema(schema_with = OptionalName::schema)]
    ATPToDate: Option<String>,
}

/// `POST /token` with the client secret.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct TokenWithSecret {
    /// Checked when given.
    client_id: Option<String>,
    client_secret: String,
    /// The environment id the token is for.
    #[schema(min_length = 1, max_length = 256, pattern = "^[^/]+$")]
    context: String,
}

/// `POST /token` in IV's shape: the client secret in `client_assertion`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct TokenWithAssertion {
    client_id: Option<String>,
    client_assertion: String,
    #[schema(min_length = 1, max_length = 256, pattern = "^[^/]+$")]
    context: String,
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
    scope: Option<String>,
    context_type: Option<String>,
}

/// `POST /token`, as JSON or a form: the client secret, or IV's shape.
pub(crate) struct TokenRequest;
impl PartialSchema for TokenRequest {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(Ref::from_schema_name(TokenWithSecret::name()))
            .item(Ref::from_schema_name(TokenWithAssertion::name()))
            .into()
    }
}
impl ToSchema for TokenRequest {}

/// A line of a hold.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldItem {
    /// Unique in the hold (default: the line's position from 1).
    #[schema(schema_with = OptionalName::schema)]
    lineId: Option<String>,
    #[schema(schema_with = Name::schema)]
    productId: String,
    #[schema(schema_with = OptionalName::schema)]
    dimensionDataSource: Option<String>,
    #[schema(schema_with = PartitionDimensions::schema)]
    dimensions: (),
    /// Greater than zero.
    #[schema(schema_with = PositiveQuantity::schema)]
    quantity: (),
    #[schema(schema_with = Flag::schema)]
    allowOversell: Option<bool>,
}

/// `POST holds`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldCreateRequest {
    #[schema(schema_with = Name::schema)]
    id: String,
    #[schema(schema_with = Name::schema)]
    organizationId: String,
    /// 1 to 512 lines.
    #[schema(min_items = 1, max_items = 512)]
    items: Vec<HoldItem>,
    /// 1 to 604800 (default 900).
    #[schema(minimum = 1, maximum = 604800)]
    expiresInSeconds: Option<u64>,
    #[schema(schema_with = Flag::schema)]
    allOrNothing: Option<bool>,
    #[schema(schema_with = OptionalName::schema)]
    quantityDataSource: Option<String>,
    #[schema(schema_with = OptionalName::schema)]
    modifier: Option<String>,
}

/// `PATCH holds/{id}/items`: the full new list of lines; the timer restarts. (`organizationId`
/// may be given here instead of in the query.)
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldPatchRequest {
    #[schema(min_items = 1, max_items = 512)]
    items: Vec<HoldItem>,
    #[schema(minimum = 1, maximum = 604800)]
    expiresInSeconds: Option<u64>,
}

/// `POST holds/{id}/extend`. (`organizationId` may be given here instead of in the query.)
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldExtendRequest {
    /// From now: 1 to 604800.
    #[schema(minimum = 1, maximum = 604800)]
    expiresInSeconds: u64,
}

/// `POST holds/{id}/consume` (an empty body consumes every line). (`organizationId` may be
/// given here instead of in the query.)
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldConsumeRequest {
    /// The lines to consume; absent or empty = every line.
    lineIds: Option<Vec<String>>,
}
