//! Path, query and header parameters.

use super::*;

// ---- parameters ------------------------------------------------------------------------------

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct EnvironmentPath {
    /// The environment id (the token's `context`); keeps its case.
    environmentId: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldPath {
    environmentId: String,
    /// The hold's id (keeps its case): at most 256 bytes, no control characters.
    #[param(
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct HoldQuery {
    /// The hold's organization (a POST/PATCH may give it in its body instead).
    #[param(min_length = 1)]
    organizationId: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct PageQuery {
    /// Api-Version 2.0: page number from 1.
    #[param(minimum = 1)]
    pageNumber: Option<u64>,
    /// Api-Version 2.0: warehouses per page, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pageSize: Option<u64>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(crate) struct ApiVersionHeader {
    /// `1.0` (default) or `2.0`.
    #[param(rename = "Api-Version", pattern = r#"^\s*"?(1|2)(\.0)?"?\s*$"#)]
    api_version: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case, dead_code)]
pub(crate) struct OnHandQuery {
    /// Exactly one.
    #[param(min_length = 1)]
    organizationId: String,
    /// Required when siteId and locationId are not given.
    productId: Option<String>,
    siteId: Option<String>,
    locationId: Option<String>,
    /// Comma-separated dimension names to group by.
    groupBy: Option<String>,
    #[param(pattern = r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$")]
    returnNegative: Option<String>,
    dimensionDataSource: Option<String>,
    #[param(pattern = r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$")]
    QueryATP: Option<String>,
    /// A date, e.g. 2023-09-26.
    ATPFromDate: Option<String>,
    ATPToDate: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct EventsQuery {
    /// A cursor `SHARD:POSITION,...` (or the `Last-Event-ID` header); absent = from the start.
    from: Option<String>,
    /// `false` (or `0`): one JSON page instead of a server-sent event stream.
    wait: Option<String>,
    /// `wait=false`: events per shard, 1 to 10,000 (default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u64>,
}
