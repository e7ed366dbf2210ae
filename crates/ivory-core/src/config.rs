//! An environment's configuration, in IV's own JSON shape (docs/iv-compatibility.md §3.1), and its rules.
//!
//! [`ConfigDoc`] is the document clients read and write (`GET /configuration`,
//! `POST /configuration/hardupdate`); [`Config`] is the validated, compiled form that `apply` and
//! queries use. [`Config::from_json`] accepts keys in any case and names the bad field in every
//! error.

use std::collections::{BTreeMap, BTreeSet};

mod formula;

pub use crate::config_doc::*;
use crate::json::KeyCanon;
use crate::model::{
    BASE_DIMENSIONS, Dims, LOCATION_ID, MeasureRef, NAME_LEN_MAX, PartitionKey, SITE_ID, base_dimension,
    base_dimension_of_canonical, canonical_name,
};
use formula::compile_calculated;
pub use formula::{Formula, triples};

/// IV's allocation hierarchy has Group0..Group7.
pub const ALLOCATION_GROUPS_MAX: usize = 8;
/// IV's 180-day ATP mode caps the schedule period.
pub const SCHEDULE_PERIOD_DAYS_MAX: u32 = 180;
/// IV: the ATP measures together name fewer than 9 distinct physical measures.
pub const ATP_PHYSICAL_MEASURES_MAX: usize = 8;

const DEFAULT_CONFIG_JSON: &str = include_str!("default_config.json");

/// A configuration rule that a document breaks, with the path of the field that breaks it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

pub(crate) fn bad(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSource {
    /// Data-source dimension name -> base dimension, both lower case.
    pub dimension_mappings: BTreeMap<String, String>,
    pub physical: BTreeSet<String>,
}

/// How an environment's stock is split into partitions (`partitionConfiguration`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionMode {
    /// Site and location are the partition (`useDimensions: true`, IV's default).
    #[default]
    ByLocation,
    /// The product is the partition; site and location are ordinary, optional dimensions.
    ByProduct,
}

/// A validated configuration, every name lower case.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The document as posted: `GET /configuration` gives it back field for field.
    pub raw: serde_json::Value,
    pub doc: ConfigDoc,
    pub partition_mode: PartitionMode,
    pub data_sources: BTreeMap<String, DataSource>,
    pub calculated: BTreeMap<MeasureRef, Formula>,
    /// Physical measure that holds a reservation -> calculated measure that gates it.
    pub reserv_mappings: BTreeMap<MeasureRef, MeasureRef>,
    pub index_sets: Vec<Vec<String>>,
    /// Reservation hierarchy below the partition dimensions (site and location dropped).
    pub reservation_hierarchy: Vec<String>,
    /// `reservConfiguration.version`: 0 refuses reservation dimensions outside the hierarchy,
    /// 1 accepts them.
    pub reservation_version: u32,
    pub reservation_enabled: bool,
    pub schedule: ScheduleRules,
    /// Allocation group names, level 0 first (`channel`, `customergroup`, ...).
    pub allocation_groups: Vec<String>,
    /// The allocation pool: `availableToAllocateCalculation` as a formula.
    pub available_to_allocate: Formula,
    /// `stock.below-threshold`: the measure (as a formula: a physical measure is a one-term
    /// formula) and the threshold; `None` when the configuration turns alerts off.
    pub low_stock: Option<LowStock>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowStock {
    pub measure: MeasureRef,
    pub formula: Formula,
    pub threshold: crate::Qty,
}

/// Change schedules and available-to-promise (docs/iv-compatibility.md §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRules {
    pub enabled: bool,
    /// Days in the window [today, today + period - 1].
    pub period_days: u32,
    /// The calculated measures ATP is computed for.
    pub atp_measures: Vec<MeasureRef>,
    /// Calculated measures `quantitiesByDate` shows the scheduled deltas through: the ATP
    /// measures and the calculated measures their formulas name (IV shows `iv.onhand` there).
    pub by_date_measures: Vec<MeasureRef>,
    /// Index sets an ATP query must group by (exactly one of them).
    pub index_sets: Vec<Vec<String>>,
}

impl Config {
    /// IV's documented defaults with Ivory's `@iv` measures (DESIGN.md §5).
    pub fn default_config() -> Config {
        // The embedded document is part of the build and has a test; failing here is a bug.
        Config::from_json(DEFAULT_CONFIG_JSON).expect("the built-in default configuration is valid")
    }

    /// Parses and validates a document in IV's JSON shape; keys may be in any case.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that is malformed or breaks a rule.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad("(body)", format!("not valid JSON: {e}")))?;
        Config::from_value(raw)
    }

    /// [`Config::from_json`] on a parsed document. The document is kept as given; a copy with
    /// canonical keys and no `null` members is what the rules read.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that is malformed or breaks a rule.
    pub fn from_value(raw: serde_json::Value) -> Result<Config, ConfigError> {
        if !raw.is_object() {
            return Err(bad("(body)", "the configuration document is a JSON object"));
        }
        let value = KeyCanon::new(DOC_FIELDS)
            .apply(raw.clone())
            .map_err(|e| bad("(body)", e))?;
        let doc: ConfigDoc = serde_json::from_value(without_nulls(value)).map_err(|e| bad("(body)", e.to_string()))?;
        let mut config = Config::compile(doc)?;
        config.raw = raw;
        Ok(config)
    }

    /// The stored document as JSON text: what was posted.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.raw).unwrap_or_else(|_| "{}".to_string())
    }

    /// Sets `environmentId` (in whatever case the document spells it) to `environment`, when the
    /// document has the field: the URL names the environment, a copied document may not.
    pub fn set_environment_id(&mut self, environment: &str) {
        if let serde_json::Value::Object(map) = &mut self.raw {
            for (key, value) in map.iter_mut() {
                if key.eq_ignore_ascii_case("environmentId") {
                    *value = serde_json::Value::String(environment.to_string());
                }
            }
        }
        if self.doc.environment_id.is_some() {
            self.doc.environment_id = Some(serde_json::Value::String(environment.to_string()));
        }
    }

    /// Validates a document and builds the compiled form.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that breaks a rule.
    pub fn compile(doc: ConfigDoc) -> Result<Config, ConfigError> {
        let data_sources = compile_data_sources(&doc)?;
        let mut calculated = compile_calculated(&doc, &data_sources)?;
        let reserv_mappings = compile_reserv_mappings(&doc, &data_sources, &calculated)?;
        compile_partition_keys(&doc)?;
        let index_sets = compile_index_sets(
            "indexConfiguration.indexAttributeSets",
            &doc.index_configuration.index_attribute_sets,
        )?;
        let partition_mode = compile_partition_mode(&doc)?;
        let reservation_hierarchy = compile_reservation_hierarchy(&doc, partition_mode)?;
        let (allocation_groups, available_to_allocate) = compile_allocation(&doc, &data_sources, &calculated)?;
        // `availableToAllocateCalculation` is what `@iv.@available_to_allocate` reports, so the
        // pool a query shows is the pool allocation draws on.
        if !doc
            .allocation_configuration
            .available_to_allocate_calculation
            .is_empty()
        {
            calculated.insert(
                MeasureRef::new("@iv", "@available_to_allocate"),
                available_to_allocate.clone(),
            );
        }
        let schedule = compile_schedule(&doc, &calculated)?;
        let low_stock = compile_alerts(&doc, &data_sources, &calculated)?;
        Ok(Config {
            raw: serde_json::to_value(&doc).unwrap_or_default(),
            partition_mode,
            reservation_version: doc.reserv_configuration.version,
            reservation_enabled: doc.reserv_configuration.is_reserv_enabled,
            doc,
            data_sources,
            calculated,
            reserv_mappings,
            index_sets,
            reservation_hierarchy,
            schedule,
            allocation_groups,
            available_to_allocate,
            low_stock,
        })
    }

    /// Whether `(data source, measure)` is a configured physical measure.
    pub fn is_physical(&self, measure: &MeasureRef) -> bool {
        self.data_sources
            .get(&measure.data_source)
            .is_some_and(|ds| ds.physical.contains(&measure.measure))
    }

    /// A readable list of the physical measures of a data source (or of the data sources), for
    /// error messages that say what is configured.
    pub fn describe_physical(&self, data_source: &str) -> String {
        match self.data_sources.get(data_source) {
            Some(ds) => format!(
                "data source '{data_source}' has physical measures: {}",
                ds.physical.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            None => format!(
                "configured data sources: {}",
                self.data_sources.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Maps request dimensions to base dimensions: names of `data_source`'s own dimensions are
    /// translated through its `dimensionMappings`, base names pass through, empty values are
    /// dropped (IV: `""` means "no value"). Returns (site, location, the other dimensions).
    ///
    /// # Errors
    /// A message naming the dimension that is neither mapped nor a base dimension, or a missing
    /// siteId / locationId.
    pub fn normalize_dimensions<'a>(
        &self,
        data_source: Option<&str>,
        dims: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(String, String, Dims), String> {
        let (site, location, dims) = self.normalize_dimensions_lenient(data_source, dims)?;
        if site.is_empty() {
            return Err("dimensions.siteId is required (partitions are by location)".to_string());
        }
        if location.is_empty() {
            return Err("dimensions.locationId is required (partitions are by location)".to_string());
        }
        Ok((site, location, dims))
    }

    /// [`Config::normalize_dimensions`] with site and location optional (empty when absent):
    /// for the writes that IV accepts without them (the shard refuses those that take stock).
    ///
    /// # Errors
    /// A message naming the dimension that is neither mapped nor a base dimension.
    pub fn normalize_dimensions_lenient<'a>(
        &self,
        data_source: Option<&str>,
        dims: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(String, String, Dims), String> {
        let mappings = match data_source.map(canonical_name).filter(|s| !s.is_empty()) {
            Some(ds) => Some(
                &self
                    .data_sources
                    .get(&ds)
                    .ok_or_else(|| {
                        format!(
                            "dimensionDataSource '{ds}' is not configured; {}",
                            self.describe_physical("")
                        )
                    })?
                    .dimension_mappings,
            ),
            None => None,
        };
        let mut base = Dims::new();
        for (name, value) in dims {
            let lower = canonical_name(name);
            let mapped = mappings.and_then(|m| m.get(&lower)).cloned();
            let dim = match mapped.or_else(|| base_dimension_of_canonical(&lower).map(str::to_string)) {
                Some(d) => d,
                None => {
                    return Err(format!(
                        "dimensions.{name}: not a base dimension and not mapped by the data source"
                    ));
                }
            };
            check_name(format_args!("dimensions.{name}"), value).map_err(|e| e.to_string())?;
            if value.is_empty() {
                continue;
            }
            if let Some((dim, _)) = base.try_insert(dim, value.to_string()) {
                return Err(format!("dimensions.{name}: dimension '{dim}' is given twice"));
            }
        }
        let site = base.remove(SITE_ID).unwrap_or_default();
        let location = base.remove(LOCATION_ID).unwrap_or_default();
        Ok((site, location, base))
    }
}

impl Config {
    /// Where a write lives: its partition and the cell's dimensions, by the partition mode. By
    /// location, site and location make the partition (required unless `partition_optional`);
    /// by product, the product does and site and location stay optional dimensions.
    ///
    /// # Errors
    /// A message naming the dimension at fault.
    pub fn place<'a>(
        &self,
        environment: &str,
        organization: &str,
        product: &str,
        data_source: Option<&str>,
        dims: impl IntoIterator<Item = (&'a str, &'a str)>,
        partition_optional: bool,
    ) -> Result<(PartitionKey, Dims), String> {
        match self.partition_mode {
            PartitionMode::ByLocation => {
                let (site, location, dims) = if partition_optional {
                    self.normalize_dimensions_lenient(data_source, dims)?
                } else {
                    self.normalize_dimensions(data_source, dims)?
                };
                Ok((PartitionKey::new(environment, organization, site, location), dims))
            }
            PartitionMode::ByProduct => {
                let (site, location, mut dims) = self.normalize_dimensions_lenient(data_source, dims)?;
                for (name, value) in [(SITE_ID, site), (LOCATION_ID, location)] {
                    if !value.is_empty() {
                        dims.insert(name.to_string(), value);
                    }
                }
                Ok((PartitionKey::by_product(environment, organization, product), dims))
            }
        }
    }
}

/// `field` is written out only for a refusal: every write checks its dimension values here.
fn check_name(field: impl std::fmt::Display, name: &str) -> Result<(), ConfigError> {
    if name.len() > NAME_LEN_MAX {
        return Err(bad(field.to_string(), format!("longer than {NAME_LEN_MAX} bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(field.to_string(), "contains control characters"));
    }
    Ok(())
}

fn compile_data_sources(doc: &ConfigDoc) -> Result<BTreeMap<String, DataSource>, ConfigError> {
    let mut out = BTreeMap::new();
    for (key, ds) in &doc.inventory_system_configurations {
        let field = format!("inventorySystemConfigurations.{key}");
        let name = canonical_name(key);
        if name.is_empty() {
            return Err(bad(field, "a data source needs a name"));
        }
        check_name(&field, &name)?;
        if name.starts_with('@') && name != "@iv" {
            return Err(bad(field, "names starting with '@' are reserved (only '@iv' exists)"));
        }
        if !ds.data_source_name.is_empty() && canonical_name(&ds.data_source_name) != name {
            return Err(bad(
                format!("{field}.dataSourceName"),
                format!("'{}' differs from the key '{name}'", ds.data_source_name),
            ));
        }
        let mut dimension_mappings = BTreeMap::new();
        for (from, to) in &ds.dimension_mappings {
            let to_base = base_dimension(to).ok_or_else(|| {
                bad(
                    format!("{field}.dimensionMappings.{from}"),
                    format!(
                        "'{to}' is not a base dimension; base dimensions: {}",
                        BASE_DIMENSIONS.join(", ")
                    ),
                )
            })?;
            dimension_mappings.insert(canonical_name(from), to_base.to_string());
        }
        let mut physical = BTreeSet::new();
        for (i, m) in ds.physical_measures.iter().enumerate() {
            let m = canonical_name(m);
            let mfield = format!("{field}.physicalMeasures[{i}]");
            if m.is_empty() {
                return Err(bad(mfield, "a measure needs a name"));
            }
            check_name(&mfield, &m)?;
            if m.starts_with('@') != name.starts_with('@') {
                return Err(bad(mfield, "'@' measures belong to the '@iv' data source only"));
            }
            if !physical.insert(m.clone()) {
                return Err(bad(mfield, format!("'{m}' is listed twice")));
            }
        }
        out.insert(
            name,
            DataSource {
                dimension_mappings,
                physical,
            },
        );
    }
    Ok(out)
}

fn compile_reserv_mappings(
    doc: &ConfigDoc,
    data_sources: &BTreeMap<String, DataSource>,
    calculated: &BTreeMap<MeasureRef, Formula>,
) -> Result<BTreeMap<MeasureRef, MeasureRef>, ConfigError> {
    let mut out = BTreeMap::new();
    for (ds_key, ds) in &doc.inventory_system_configurations {
        let ds_name = canonical_name(ds_key);
        for (physical, gate) in &ds.reserv_mappings {
            let field = format!("inventorySystemConfigurations.{ds_key}.reservMappings.{physical}");
            let held = MeasureRef::new(&ds_name, physical);
            if !data_sources
                .get(&ds_name)
                .is_some_and(|d| d.physical.contains(&held.measure))
            {
                return Err(bad(field, format!("'{held}' is not a physical measure of '{ds_name}'")));
            }
            let gate_ref = MeasureRef::parse(gate)
                .ok_or_else(|| bad(&field, format!("'{gate}' is not of the form dataSource.measure")))?;
            if !calculated.contains_key(&gate_ref) {
                return Err(bad(
                    field,
                    format!("'{gate_ref}' is not a configured calculated measure"),
                ));
            }
            out.insert(held, gate_ref);
        }
    }
    Ok(out)
}

fn compile_partition_keys(doc: &ConfigDoc) -> Result<(), ConfigError> {
    let keys: Vec<String> = doc
        .index_configuration
        .partition_key_attributes
        .keys
        .iter()
        .map(|k| canonical_name(k))
        .collect();
    if !keys.is_empty() && keys != [SITE_ID, LOCATION_ID] {
        return Err(bad(
            "indexConfiguration.partitionKeyAttributes.keys",
            "Ivory partitions by location: the keys must be [\"siteid\", \"locationid\"]",
        ));
    }
    Ok(())
}

fn compile_partition_mode(doc: &ConfigDoc) -> Result<PartitionMode, ConfigError> {
    let from_flags = doc.partition_configuration.use_dimensions.map(|by_location| {
        if by_location {
            PartitionMode::ByLocation
        } else {
            PartitionMode::ByProduct
        }
    });
    let from_version = match doc.cache_partition_id_version.as_deref().map(canonical_name) {
        Some(v) if v.starts_with("bylocation") => Some(PartitionMode::ByLocation),
        Some(v) if v.starts_with("byproduct") => Some(PartitionMode::ByProduct),
        Some(v) if v.is_empty() => None,
        Some(v) => {
            return Err(bad(
                "cachePartitionIdVersion",
                format!("'{v}' is neither ByLocation... nor ByProductId"),
            ));
        }
        None => None,
    };
    match (from_flags, from_version) {
        (Some(a), Some(b)) if a != b => Err(bad(
            "cachePartitionIdVersion",
            format!(
                "says {b:?} but partitionConfiguration.useDimensions says {a:?} (useDimensions true = by location)"
            ),
        )),
        (a, b) => Ok(a.or(b).unwrap_or_default()),
    }
}

fn compile_index_sets(field: &str, sets: &[AttributeSetDoc]) -> Result<Vec<Vec<String>>, ConfigError> {
    let mut out = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let mut keys = Vec::with_capacity(set.keys.len());
        for (j, key) in set.keys.iter().enumerate() {
            let kfield = format!("{field}[{i}].keys[{j}]");
            let dim = base_dimension(key).ok_or_else(|| bad(&kfield, format!("'{key}' is not a base dimension")))?;
            if dim == SITE_ID || dim == LOCATION_ID {
                return Err(bad(kfield, "partition dimensions must not appear in an index set"));
            }
            if keys.iter().any(|k| k == dim) {
                return Err(bad(kfield, format!("'{dim}' is listed twice")));
            }
            keys.push(dim.to_string());
        }
        out.push(keys);
    }
    Ok(out)
}

fn compile_reservation_hierarchy(doc: &ConfigDoc, mode: PartitionMode) -> Result<Vec<String>, ConfigError> {
    let field = "reservConfiguration.keys";
    let mut dims = Vec::new();
    for (i, key) in doc.reserv_configuration.keys.iter().enumerate() {
        let dim = base_dimension(key)
            .ok_or_else(|| bad(format!("{field}[{i}]"), format!("'{key}' is not a base dimension")))?;
        if dims.iter().any(|d| d == dim) {
            return Err(bad(format!("{field}[{i}]"), format!("'{dim}' is listed twice")));
        }
        dims.push(dim.to_string());
    }
    if dims.is_empty() {
        return Ok(dims);
    }
    if dims.len() < 2 || dims[0] != SITE_ID || dims[1] != LOCATION_ID {
        return Err(bad(
            field,
            "the reservation hierarchy must start with siteid, locationid",
        ));
    }
    // By product, site and location are dimensions of the cells, the top of the hierarchy.
    Ok(match mode {
        PartitionMode::ByLocation => dims.split_off(2),
        PartitionMode::ByProduct => dims,
    })
}

fn compile_schedule(doc: &ConfigDoc, calculated: &BTreeMap<MeasureRef, Formula>) -> Result<ScheduleRules, ConfigError> {
    let schedule = &doc.schedule_configuration;
    let period_days = match schedule.schedule_period_in_days {
        0 => 7,
        p if p > SCHEDULE_PERIOD_DAYS_MAX => {
            return Err(bad(
                "scheduleConfiguration.schedulePeriodInDays",
                format!("{p} is above the maximum of {SCHEDULE_PERIOD_DAYS_MAX} days"),
            ));
        }
        p => p,
    };
    let index_sets = compile_index_sets(
        "scheduleConfiguration.indexAttributeSets",
        &schedule.index_attribute_sets,
    )?;
    let mut physical = BTreeSet::new();
    let mut atp_measures = Vec::new();
    let mut by_date_measures = Vec::new();
    for (ds, measures) in &schedule.atp_calculated_measures {
        for name in measures.keys() {
            let m = MeasureRef::new(ds, name);
            let formula = calculated.get(&m).ok_or_else(|| {
                bad(
                    format!("scheduleConfiguration.atpCalculatedMeasures.{ds}.{name}"),
                    format!("'{m}' is not a configured calculated measure"),
                )
            })?;
            physical.extend(formula.add().iter().chain(formula.sub()).cloned());
            let named = doc
                .inventory_system_configurations
                .get(&m.data_source)
                .and_then(|d| d.calculated_measures.get(&m.measure));
            for term in named
                .iter()
                .flat_map(|f| f.addition_modifiers.iter().chain(&f.subtraction_modifiers))
            {
                if let Some(t) = MeasureRef::parse(term).filter(|t| calculated.contains_key(t))
                    && !by_date_measures.contains(&t)
                {
                    by_date_measures.push(t);
                }
            }
            if !by_date_measures.contains(&m) {
                by_date_measures.push(m.clone());
            }
            atp_measures.push(m);
        }
    }
    if physical.len() > ATP_PHYSICAL_MEASURES_MAX {
        return Err(bad(
            "scheduleConfiguration.atpCalculatedMeasures",
            format!(
                "ATP measures name {} distinct physical measures; at most {ATP_PHYSICAL_MEASURES_MAX} are allowed",
                physical.len()
            ),
        ));
    }
    Ok(ScheduleRules {
        enabled: schedule.is_enabled,
        period_days,
        atp_measures,
        by_date_measures,
        index_sets,
    })
}

fn compile_allocation(
    doc: &ConfigDoc,
    data_sources: &BTreeMap<String, DataSource>,
    calculated: &BTreeMap<MeasureRef, Formula>,
) -> Result<(Vec<String>, Formula), ConfigError> {
    let allocation = &doc.allocation_configuration;
    let mut groups: Vec<String> = allocation.groups.iter().map(|g| canonical_name(g)).collect();
    if let Some(target) = &allocation.target_groups {
        let target: Vec<String> = target.iter().map(|g| canonical_name(g)).collect();
        if groups.is_empty() {
            groups = target;
        } else if target != groups {
            return Err(bad(
                "allocationConfiguration.targetGroups",
                "differs from allocationConfiguration.groups (the same list under its 2022 name)",
            ));
        }
    }
    if groups.len() > ALLOCATION_GROUPS_MAX {
        return Err(bad(
            "allocationConfiguration.groups",
            format!(
                "{} groups; at most {ALLOCATION_GROUPS_MAX} levels are allowed",
                groups.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        if g.is_empty() || !seen.insert(g) {
            return Err(bad(
                format!("allocationConfiguration.groups[{i}]"),
                "group names must be non-empty and distinct",
            ));
        }
    }
    let (mut pool_add, mut pool_sub) = (Vec::new(), Vec::new());
    for (term, sign) in &allocation.available_to_allocate_calculation {
        let field = format!("allocationConfiguration.availableToAllocateCalculation.{term}");
        let m = MeasureRef::parse(term)
            .ok_or_else(|| bad(&field, format!("'{term}' is not of the form dataSource.measure")))?;
        // A calculated term (IV's default names the calculated iv.onhand) brings its own terms.
        let (plus, minus) = if data_sources
            .get(&m.data_source)
            .is_some_and(|d| d.physical.contains(&m.measure))
        {
            (vec![m], Vec::new())
        } else if let Some(f) = calculated.get(&m) {
            (f.add().to_vec(), f.sub().to_vec())
        } else {
            return Err(bad(field, format!("'{m}' is not a configured measure")));
        };
        match canonical_name(sign).as_str() {
            "addition" => {
                pool_add.extend(plus);
                pool_sub.extend(minus);
            }
            "subtraction" => {
                pool_add.extend(minus);
                pool_sub.extend(plus);
            }
            other => return Err(bad(field, format!("'{other}' must be \"addition\" or \"subtraction\""))),
        }
    }
    let pool = Formula::new(pool_add, pool_sub);
    if !groups.is_empty()
        && !pool
            .sub()
            .iter()
            .any(|m| m.data_source == "@iv" && m.measure == "@allocated")
    {
        return Err(bad(
            "allocationConfiguration.availableToAllocateCalculation",
            "the pool must subtract @iv.@allocated, or allocations would never use it up",
        ));
    }
    Ok((groups, pool))
}

/// Alerts are on when `alertConfiguration` is present (absent or `null`: off): by default
/// `iv.availabletoreserve` below 1, i.e. sold out.
fn compile_alerts(
    doc: &ConfigDoc,
    data_sources: &BTreeMap<String, DataSource>,
    calculated: &BTreeMap<MeasureRef, Formula>,
) -> Result<Option<LowStock>, ConfigError> {
    let Some(alerts) = &doc.alert_configuration else {
        return Ok(None);
    };
    let measure_text = alerts
        .low_stock_measure
        .clone()
        .unwrap_or_else(|| "iv.availabletoreserve".to_string());
    let field = "alertConfiguration.lowStockMeasure";
    let measure = MeasureRef::parse(&measure_text)
        .ok_or_else(|| bad(field, format!("'{measure_text}' is not of the form dataSource.measure")))?;
    let formula = match calculated.get(&measure) {
        Some(f) => f.clone(),
        None if data_sources
            .get(&measure.data_source)
            .is_some_and(|d| d.physical.contains(&measure.measure)) =>
        {
            Formula::new(vec![measure.clone()], Vec::new())
        }
        None => return Err(bad(field, format!("'{measure}' is not a configured measure"))),
    };
    let threshold = match &alerts.low_stock_threshold {
        None => crate::Qty::ONE,
        Some(value) => {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            crate::Qty::parse(&text).map_err(|e| bad("alertConfiguration.lowStockThreshold", e.to_string()))?
        }
    };
    Ok(Some(LowStock {
        measure,
        formula,
        threshold,
    }))
}

impl Config {
    /// Where consumed (shipped) stock leaves on-hand: a physical `iv.onhand` goes down; a
    /// calculated one (IV's default) gets the quantity on its first subtracted measure
    /// (`pos.outbound` by default), so on-hand falls whichever supply measure the stock came in
    /// on; `None` when the configuration has no `iv.onhand`.
    pub fn stock_leaves_by(&self) -> (Option<MeasureRef>, crate::model::Modifier) {
        let on_hand = MeasureRef::new("iv", "onhand");
        if self.is_physical(&on_hand) {
            return (Some(on_hand), crate::model::Modifier::Subtraction);
        }
        match self.calculated.get(&on_hand) {
            Some(f) if !f.sub().is_empty() => (f.sub().first().cloned(), crate::model::Modifier::Addition),
            Some(f) => (f.add().first().cloned(), crate::model::Modifier::Subtraction),
            None => (None, crate::model::Modifier::Subtraction),
        }
    }

    /// Allocation group values in level order from `{groupName: value}`: names any case, levels
    /// filled top-down without gaps (Country, Country+State; not State alone).
    ///
    /// # Errors
    /// A message naming the unknown group or the skipped level.
    pub fn group_path(&self, groups: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
        let given: BTreeMap<String, &String> = groups.iter().map(|(k, v)| (canonical_name(k), v)).collect();
        if let Some(unknown) = given.keys().find(|k| !self.allocation_groups.contains(k)) {
            return Err(format!(
                "groups.{unknown}: not an allocation group; configured levels: {}",
                self.allocation_groups.join(", ")
            ));
        }
        let mut path = Vec::new();
        for name in &self.allocation_groups {
            match given.get(name) {
                Some(v) if !v.is_empty() => path.push((*v).clone()),
                _ => break,
            }
        }
        if path.len() != given.values().filter(|v| !v.is_empty()).count() {
            let skipped = self.allocation_groups.get(path.len()).map_or("?", String::as_str);
            return Err(format!(
                "groups.{skipped}: levels are filled top-down; this level is missing"
            ));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_has_the_documented_measures() {
        let c = Config::default_config();
        let afr = &c.calculated[&MeasureRef::new("iv", "availabletoreserve")];
        assert_eq!(afr.add().len(), 9);
        assert_eq!(afr.sub().len(), 8);
        // @iv builds on the calculated on-hand total: every supply measure counts.
        let atr = &c.calculated[&MeasureRef::new("@iv", "@available_to_reserve")];
        assert_eq!(atr.add().len(), 5);
        assert_eq!(atr.sub().len(), 3);
        assert_eq!(c.available_to_allocate.add(), atr.add());
        assert_eq!(
            c.stock_leaves_by(),
            (
                Some(MeasureRef::new("pos", "outbound")),
                crate::model::Modifier::Addition
            )
        );
        assert_eq!(
            c.reserv_mappings[&MeasureRef::new("@iv", "@softreserved")],
            MeasureRef::new("@iv", "@available_to_reserve")
        );
        assert_eq!(c.reservation_hierarchy, ["colorid", "sizeid", "styleid"]);
        // The document round-trips through its own JSON.
        assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn a_dimension_given_twice_under_two_names_is_refused() {
        let c = Config::default_config();
        let dims = [("siteId", "1"), ("CustomDimension1", "a"), ("InventDimension1", "b")];
        let e = c.normalize_dimensions_lenient(None, dims).unwrap_err();
        assert!(e.contains("dimension 'inventdimension1' is given twice"), "{e}");
        let (site, _, dims) = c
            .normalize_dimensions_lenient(None, [("siteId", "1"), ("CustomDimension1", "a")])
            .unwrap();
        assert_eq!(
            (site.as_str(), dims.get("inventdimension1").map(String::as_str)),
            ("1", Some("a"))
        );
    }

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Config, ConfigError> {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_CONFIG_JSON).unwrap();
        edit(&mut v);
        Config::from_json(&v.to_string())
    }

    #[test]
    fn errors_name_the_field() {
        let e = with(|v| {
            v["inventorySystemConfigurations"]["iv"]["calculatedMeasures"]["availabletoreserve"]["additionModifiers"]
                [1] = "iv.nosuch".into()
        })
        .unwrap_err();
        assert_eq!(
            e.field,
            "inventorySystemConfigurations.iv.calculatedMeasures.availabletoreserve.additionModifiers[1]"
        );
        let e = with(|v| v["reservConfiguration"]["keys"] = serde_json::json!(["colorid", "siteid"])).unwrap_err();
        assert_eq!(e.field, "reservConfiguration.keys");
        let e = with(|v| v["scheduleConfiguration"]["schedulePeriodInDays"] = 181.into()).unwrap_err();
        assert_eq!(e.field, "scheduleConfiguration.schedulePeriodInDays");
        let e = with(|v| v["inventorySystemConfigurations"]["iv"]["reservMappings"]["onhand"] = "iv.nosuch".into())
            .unwrap_err();
        assert_eq!(e.field, "inventorySystemConfigurations.iv.reservMappings.onhand");
        // Fields Ivory gives no meaning to are kept, not refused.
        let c = with(|v| v["bogus"] = serde_json::json!({"Any": [1, null]})).unwrap();
        assert_eq!(c.raw["bogus"], serde_json::json!({"Any": [1, null]}));
        let e = with(|v| v["cachePartitionIdVersion"] = "byProductId".into()).unwrap_err();
        assert_eq!(e.field, "cachePartitionIdVersion");
        let c = with(|v| v["cachePartitionIdVersion"] = "BYLOCATIONANDPRODUCTIDMOD64".into()).unwrap();
        assert_eq!(c.partition_mode, PartitionMode::ByLocation);
        let c = with(|v| v["partitionConfiguration"]["useDimensions"] = false.into()).unwrap();
        assert_eq!(c.partition_mode, PartitionMode::ByProduct);
        assert_eq!(
            c.reservation_hierarchy,
            ["siteid", "locationid", "colorid", "sizeid", "styleid"]
        );
        let e = with(|v| v["allocationConfiguration"]["targetGroups"] = serde_json::json!(["channel"])).unwrap_err();
        assert_eq!(e.field, "allocationConfiguration.targetGroups");
    }

    #[test]
    fn keys_in_any_case() {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_CONFIG_JSON).unwrap();
        let ds = v["inventorySystemConfigurations"]
            .as_object_mut()
            .unwrap()
            .remove("pos")
            .unwrap();
        v["INVENTORYSYSTEMCONFIGURATIONS"] = v["inventorySystemConfigurations"].take();
        v.as_object_mut().unwrap().remove("inventorySystemConfigurations");
        v["INVENTORYSYSTEMCONFIGURATIONS"]["POS"] = ds;
        let c = Config::from_json(&v.to_string()).unwrap();
        assert!(c.is_physical(&MeasureRef::new("pos", "inbound")));
    }

    #[test]
    fn dimensions_map_through_the_data_source() {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_CONFIG_JSON).unwrap();
        v["inventorySystemConfigurations"]["pos"]["dimensionMappings"] = serde_json::json!({"MyColorId": "ColorId"});
        let c = Config::from_json(&v.to_string()).unwrap();
        let (site, loc, dims) = c
            .normalize_dimensions(
                Some("POS"),
                [
                    ("SiteId", "1"),
                    ("locationid", "11"),
                    ("mycolorid", "red"),
                    ("SizeId", ""),
                ],
            )
            .unwrap();
        assert_eq!((site.as_str(), loc.as_str()), ("1", "11"));
        assert_eq!(dims.into_tuple_vec(), [("colorid".to_string(), "red".to_string())]);
        let e = c.normalize_dimensions(None, [("siteid", "1")]).unwrap_err();
        assert!(e.contains("locationId"), "{e}");
        let e = c
            .normalize_dimensions(None, [("siteid", "1"), ("locationid", "1"), ("shade", "x")])
            .unwrap_err();
        assert!(e.contains("dimensions.shade"), "{e}");
    }
}
