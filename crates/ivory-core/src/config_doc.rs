//! The configuration document's typed view, in IV's JSON shape (docs/iv-compatibility.md §3.1).
//!
//! These types read the fields Ivory acts on (and name the others for the OpenAPI schema);
//! they never decide what is stored: [`crate::Config`] keeps the document as posted, so every
//! field, known or not, comes back from `GET /configuration` as it was sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Known field names of the document, in canonical spelling; any other key is a name.
pub(crate) const DOC_FIELDS: &[&str] = &[
    "environmentId",
    "isUninstalled",
    "configurationVersion",
    "isIndexUpgradeInProgress",
    "defaultDimensions",
    "finOpsConfiguration",
    "isWHSEnabled",
    "whsConfiguration",
    "isPartitionLockEnabled",
    "partitionLockConfiguration",
    "storageConfiguration",
    "onHandIndexQueryPreloadStorageConfiguration",
    "entityVersion",
    "isSetup",
    "indexConfiguration",
    "partitionKeyAttributes",
    "setNumber",
    "keys",
    "indexAttributeSets",
    "inventorySystemConfigurations",
    "dataSourceName",
    "dimensionMappings",
    "physicalMeasures",
    "calculatedMeasures",
    "additionModifiers",
    "subtractionModifiers",
    "reservMappings",
    "scheduleConfiguration",
    "atpCalculatedMeasures",
    "schedulePeriodInDays",
    "isScheduleV2",
    "isEnabled",
    "reservConfiguration",
    "isReservEnabled",
    "version",
    "allocationConfiguration",
    "groups",
    "targetGroups",
    "groupsOrder",
    "availableToAllocateCalculation",
    "partitionConfiguration",
    "useProductId",
    "useDimensions",
    "cachePartitionIdVersion",
    "alertConfiguration",
    "lowStockMeasure",
    "lowStockThreshold",
];

/// IV's configuration document. Fields typed `Option<Value>` are kept and given back without
/// meaning in Ivory; any other field is kept too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConfigDoc {
    /// Kept; on `hardupdate` the environment of the URL replaces a different value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_uninstalled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_index_upgrade_in_progress: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_dimensions: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fin_ops_configuration: Option<Value>,
    #[serde(default, rename = "isWHSEnabled", skip_serializing_if = "Option::is_none")]
    pub is_whs_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whs_configuration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_partition_lock_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_lock_configuration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_configuration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hand_index_query_preload_storage_configuration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_version: Option<Value>,
    #[serde(default)]
    pub index_configuration: IndexConfigDoc,
    #[serde(default)]
    pub inventory_system_configurations: BTreeMap<String, DataSourceDoc>,
    #[serde(default)]
    pub schedule_configuration: ScheduleConfigDoc,
    #[serde(default)]
    pub reserv_configuration: ReservConfigDoc,
    #[serde(default)]
    pub allocation_configuration: AllocationConfigDoc,
    #[serde(default)]
    pub partition_configuration: PartitionConfigDoc,
    /// `ByLocation...`, `ByProductId`, `ByLocationAndProductIdMod64` (any case); must agree
    /// with `partitionConfiguration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_partition_id_version: Option<String>,
    /// Ivory's addition: when to emit `stock.below-threshold` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_configuration: Option<AlertConfigDoc>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AlertConfigDoc {
    /// `dataSource.measure`, physical or calculated (default `iv.availabletoreserve`).
    #[serde(default)]
    pub low_stock_measure: Option<String>,
    /// A number: the event fires when the measure goes from at least this to below it.
    #[serde(default)]
    pub low_stock_threshold: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttributeSetDoc {
    #[serde(default)]
    pub set_number: u32,
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct IndexConfigDoc {
    #[serde(default)]
    pub partition_key_attributes: AttributeSetDoc,
    #[serde(default)]
    pub index_attribute_sets: Vec<AttributeSetDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_setup: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DataSourceDoc {
    #[serde(default)]
    pub data_source_name: String,
    #[serde(default)]
    pub dimension_mappings: BTreeMap<String, String>,
    #[serde(default)]
    pub physical_measures: Vec<String>,
    #[serde(default)]
    pub calculated_measures: BTreeMap<String, FormulaDoc>,
    #[serde(default)]
    pub reserv_mappings: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FormulaDoc {
    /// `dataSource.measure`: physical measures, or calculated ones (expanded into their terms).
    #[serde(default)]
    pub addition_modifiers: Vec<String>,
    #[serde(default)]
    pub subtraction_modifiers: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleConfigDoc {
    #[serde(default)]
    pub index_attribute_sets: Vec<AttributeSetDoc>,
    #[serde(default)]
    pub atp_calculated_measures: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    pub schedule_period_in_days: u32,
    #[serde(default, rename = "isScheduleV2")]
    pub is_schedule_v2: bool,
    #[serde(default)]
    pub is_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_setup: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReservConfigDoc {
    #[serde(default)]
    pub is_reserv_enabled: bool,
    /// 0: reservation dimensions must be a prefix of `keys`; 1: any base dimensions.
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_setup: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AllocationConfigDoc {
    /// Group levels, level 0 first.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The 2022 name of `groups`; when both are given they must agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_order: Option<Value>,
    #[serde(default)]
    pub available_to_allocate_calculation: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_setup: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartitionConfigDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_product_id: Option<bool>,
    /// `true` (or absent): partitions by location; `false`: by product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_dimensions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_setup: Option<Value>,
}

/// Drops `null` members of objects, recursively: IV documents carry `null` for absent sections,
/// and the typed view reads a missing field and a `null` one alike.
pub(crate) fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}
