//! The typed gRPC messages mapped onto the request fields the REST parser reads (IV's field
//! names), and typed results from `ivory_core` values. The parser then validates gRPC and REST
//! alike: one set of rules, codes and messages. An empty string or list stands for a field not
//! given (proto3 has no absent scalars), so a missing field is refused as over REST.

use std::collections::{BTreeMap, HashMap};

use ivory_core::Quantities;
use serde_json::{Map, Value, json};

use crate::proto;

/// A JSON object under construction: strings only when given.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn text(mut self, key: &str, value: String) -> Obj {
        if !value.is_empty() {
            self.0.insert(key.into(), Value::String(value));
        }
        self
    }
    fn value(mut self, key: &str, value: Value) -> Obj {
        self.0.insert(key.into(), value);
        self
    }
    fn list(mut self, key: &str, values: Vec<String>) -> Obj {
        if !values.is_empty() {
            self.0.insert(key.into(), json!(values));
        }
        self
    }
    fn map(self, key: &str, values: HashMap<String, String>) -> Obj {
        self.value(key, json!(values))
    }
    fn product(mut self, product: Option<proto::Product>) -> Obj {
        if let Some(p) = product {
            self = self
                .text("organizationId", p.organization_id)
                .text("productId", p.product_id)
                .text("dimensionDataSource", p.dimension_data_source)
                .map("dimensions", p.dimensions);
        }
        self
    }
    fn quantities(self, key: &str, quantities: Option<proto::Quantities>) -> Obj {
        match quantities {
            Some(q) => self.value(key, quantities_value(q)),
            None => self,
        }
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn quantities_value(q: proto::Quantities) -> Value {
    Value::Object(
        q.data_sources
            .into_iter()
            .map(|(ds, m)| (ds, json!(m.values)))
            .collect(),
    )
}

pub(crate) fn on_hand_change(c: proto::OnHandChange) -> Value {
    Obj::default()
        .text("id", c.id)
        .product(c.product)
        .quantities("quantities", c.quantities)
        .done()
}

pub(crate) fn set_on_hand(c: proto::SetOnHand) -> Value {
    Obj::default()
        .text("id", c.id)
        .product(c.product)
        .quantities("quantities", c.quantities)
        .text("modifiedDateTimeUTC", c.modified_date_time_utc)
        .done()
}

pub(crate) fn reserve(r: proto::Reserve) -> Value {
    let mut o = Obj::default()
        .text("id", r.id)
        .product(r.product)
        .text("quantityDataSource", r.quantity_data_source)
        .text("modifier", r.modifier)
        .text("quantity", r.quantity);
    if let Some(checked) = r.if_check_avail_for_reserv {
        o = o.value("ifCheckAvailForReserv", json!(checked));
    }
    o.done()
}

pub(crate) fn unreserve(u: proto::Unreserve) -> Value {
    Obj::default()
        .text("id", u.id)
        .product(u.product)
        .text("reservationId", u.reservation_id)
        .text("OffsetQty", u.offset_qty)
        .done()
}

pub(crate) fn schedule(c: proto::ScheduleChange) -> Value {
    let mut o = Obj::default()
        .text("id", c.id)
        .product(c.product)
        .text("quantityDataSource", c.quantity_data_source);
    if !c.quantities_by_date.is_empty() {
        let days: Map<String, Value> = c
            .quantities_by_date
            .into_iter()
            .map(|(day, q)| (day, quantities_value(q)))
            .collect();
        o = o.value("quantitiesByDate", Value::Object(days));
    }
    o.done()
}

pub(crate) fn allocation(a: proto::AllocationRequest) -> Value {
    Obj::default()
        .text("id", a.id)
        .product(a.product)
        .map("groups", a.groups)
        .text("quantity", a.quantity)
        .done()
}

pub(crate) fn reallocation(a: proto::ReallocateRequest) -> Value {
    Obj::default()
        .text("id", a.id)
        .product(a.product)
        .map("sourceGroups", a.source_groups)
        .map("groups", a.groups)
        .text("quantity", a.quantity)
        .done()
}

pub(crate) fn consumption(c: proto::ConsumeRequest) -> Value {
    let physical: Map<String, Value> = c
        .physical_measures
        .into_iter()
        .map(|(ds, measures)| {
            let measures: Map<String, Value> = measures
                .measures
                .into_iter()
                .map(|(m, modifier)| {
                    let word = match proto::Modifier::try_from(modifier) {
                        Ok(proto::Modifier::Addition) => "Addition",
                        Ok(proto::Modifier::Subtraction) => "Subtraction",
                        _ => "",
                    };
                    (m, json!(word))
                })
                .collect();
            (ds, Value::Object(measures))
        })
        .collect();
    let mut o = Obj::default()
        .text("id", c.id)
        .product(c.product)
        .map("groups", c.groups)
        .text("quantity", c.quantity);
    if !physical.is_empty() {
        o = o.value("physicalMeasures", Value::Object(physical));
    }
    o.done()
}

pub(crate) fn allocation_query(q: proto::AllocationQueryRequest) -> Value {
    let mut o = Obj::default().product(q.product);
    if !q.groups.is_empty() {
        o = o.map("groups", q.groups);
    }
    o.done()
}

/// A posted query: the REST body and what REST reads from the URL and headers.
pub(crate) struct PostedQuery {
    pub environment: String,
    pub api_version: String,
    pub page_number: u32,
    pub page_size: u32,
    pub exact: bool,
    pub body: Value,
}

fn atp_fields(o: Obj, query_atp: bool, from: String, to: String) -> Obj {
    let o = if query_atp { o.value("QueryATP", json!(true)) } else { o };
    o.text("ATPFromDate", from).text("ATPToDate", to)
}

pub(crate) fn index_query(q: proto::IndexQueryRequest) -> PostedQuery {
    let mut filters = Obj::default()
        .list("organizationId", q.organization_id)
        .list("productId", q.product_id)
        .list("siteId", q.site_id)
        .list("locationId", q.location_id);
    // Sorted, so a name given twice in two spellings is refused the same way every time.
    let dims: BTreeMap<String, proto::StringList> = q.dimension_filters.into_iter().collect();
    for (name, values) in dims {
        match filters.0.get_mut(&name) {
            Some(Value::Array(list)) => list.extend(values.values.into_iter().map(Value::String)),
            _ => filters = filters.value(&name, json!(values.values)),
        }
    }
    let o = Obj::default()
        .text("dimensionDataSource", q.dimension_data_source)
        .value("filters", filters.done())
        .list("groupByValues", q.group_by_values)
        .value("returnNegative", json!(q.return_negative));
    PostedQuery {
        environment: q.environment_id,
        api_version: q.api_version,
        page_number: q.page_number,
        page_size: q.page_size,
        exact: false,
        body: atp_fields(o, q.query_atp, q.atp_from_date, q.atp_to_date).done(),
    }
}

pub(crate) fn exact_query(q: proto::ExactQueryRequest) -> PostedQuery {
    let values: Vec<Value> = q.values.into_iter().map(|t| json!(t.values)).collect();
    let mut filters = Obj::default()
        .list("organizationId", q.organization_id)
        .list("productId", q.product_id)
        .list("dimensions", q.dimensions);
    if !values.is_empty() {
        filters = filters.value("values", Value::Array(values));
    }
    let o = Obj::default()
        .text("dimensionDataSource", q.dimension_data_source)
        .value("filters", filters.done())
        .list("groupByValues", q.group_by_values)
        .value("returnNegative", json!(q.return_negative));
    PostedQuery {
        environment: q.environment_id,
        api_version: q.api_version,
        page_number: q.page_number,
        page_size: q.page_size,
        exact: true,
        body: atp_fields(o, q.query_atp, q.atp_from_date, q.atp_to_date).done(),
    }
}

/// A hold line of a create or PATCH.
pub(crate) fn hold_line(l: proto::HoldLineRequest) -> Value {
    Obj::default()
        .text("lineId", l.line_id)
        .text("productId", l.product_id)
        .text("dimensionDataSource", l.dimension_data_source)
        .map("dimensions", l.dimensions)
        .text("quantity", l.quantity)
        .value("allowOversell", json!(l.allow_oversell))
        .done()
}

pub(crate) fn create_hold(r: proto::CreateHoldRequest) -> Value {
    let mut o = Obj::default()
        .text("id", r.id)
        .text("organizationId", r.organization_id)
        .value("items", r.items.into_iter().map(hold_line).collect())
        .text("quantityDataSource", r.quantity_data_source)
        .text("modifier", r.modifier);
    if r.expires_in_seconds > 0 {
        o = o.value("expiresInSeconds", json!(r.expires_in_seconds));
    }
    if let Some(all) = r.all_or_nothing {
        o = o.value("allOrNothing", json!(all));
    }
    o.done()
}

pub(crate) fn patch_hold(items: Vec<proto::HoldLineRequest>, expires_in_seconds: u64) -> Value {
    let mut o = Obj::default().value("items", items.into_iter().map(hold_line).collect());
    if expires_in_seconds > 0 {
        o = o.value("expiresInSeconds", json!(expires_in_seconds));
    }
    o.done()
}

/// Typed quantities: decimals as strings.
pub(crate) fn quantities(q: &Quantities) -> proto::Quantities {
    proto::Quantities {
        data_sources: q
            .iter()
            .map(|(ds, measures)| {
                let values = measures.iter().map(|(m, v)| (m.clone(), v.to_string())).collect();
                (ds.clone(), proto::Measures { values })
            })
            .collect(),
    }
}

/// Quantities by day (`2026-12-24`).
pub(crate) fn by_date(days: &BTreeMap<i64, Quantities>) -> HashMap<String, proto::Quantities> {
    days.iter()
        .map(|(d, q)| (ivory_core::date::format_day(*d), quantities(q)))
        .collect()
}
