//! Where stock lives: environments, partitions, products and dimensions.
//!
//! A partition is (environment, organization, siteId, locationId): every quantity, reservation and
//! hold line lives in exactly one, and one partition is owned by exactly one shard. Inside a
//! partition a [`Cell`] is a product plus the base dimensions below site and location. Names of
//! dimensions, data sources and measures are compared in lower case, as IV clients send any case.

use std::fmt;

use litemap::LiteMap;

use serde::{Deserialize, Serialize};

/// The partition dimensions, in IV's lower-case spelling.
pub const SITE_ID: &str = "siteid";
pub const LOCATION_ID: &str = "locationid";

/// Longest id, name or dimension value accepted. Ids are keys in replicated state: a bound keeps
/// one client from bloating every replica's memory.
pub const NAME_LEN_MAX: usize = 256;

/// IV's base dimensions (docs/iv-compatibility.md §3.2), lower case. Data-source dimensions map onto these.
pub const BASE_DIMENSIONS: &[&str] = &[
    "colorid",
    "sizeid",
    "styleid",
    "configid",
    "batchid",
    "serialid",
    "siteid",
    "locationid",
    "statusid",
    "wmslocationid",
    "wmspalletid",
    "licenseplateid",
    "versionid",
    "inventdimension1",
    "inventdimension2",
    "inventdimension3",
    "inventdimension4",
    "inventdimension5",
    "inventdimension6",
    "inventdimension7",
    "inventdimension8",
    "inventdimension9",
    "inventdimension10",
    "inventdimension11",
    "inventdimension12",
    "extendeddimension1",
    "extendeddimension2",
    "extendeddimension3",
    "extendeddimension4",
    "extendeddimension5",
    "extendeddimension6",
    "extendeddimension7",
    "extendeddimension8",
    "empty",
];

/// Lower-cases a name the way every lookup in Ivory expects it.
pub fn canonical_name(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// Whether `name` (already lower case) is a base dimension. `customdimensionN` is IV's alias of
/// `inventdimensionN` and is resolved by [`base_dimension`].
pub fn base_dimension(name: &str) -> Option<&'static str> {
    base_dimension_of_canonical(&canonical_name(name))
}

/// [`base_dimension`] of a name already in its canonical spelling (no second copy of it).
pub fn base_dimension_of_canonical(name: &str) -> Option<&'static str> {
    let name: std::borrow::Cow<str> = match name.strip_prefix("customdimension") {
        Some(n) => format!("inventdimension{n}").into(),
        None => name.into(),
    };
    BASE_DIMENSIONS.iter().copied().find(|d| *d == name)
}

/// The unit of placement: one partition is owned by one shard and never moves.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionKey {
    pub environment: String,
    pub organization: String,
    pub site: String,
    pub location: String,
    /// The product when the environment partitions by product (site and location then empty,
    /// kept as ordinary dimensions of the cells); empty when it partitions by location.
    pub product: String,
}

impl PartitionKey {
    pub fn new(
        environment: impl Into<String>,
        organization: impl Into<String>,
        site: impl Into<String>,
        location: impl Into<String>,
    ) -> PartitionKey {
        PartitionKey {
            environment: environment.into(),
            organization: organization.into(),
            site: site.into(),
            location: location.into(),
            product: String::new(),
        }
    }

    /// The partition of a product when the environment partitions by product.
    pub fn by_product(
        environment: impl Into<String>,
        organization: impl Into<String>,
        product: impl Into<String>,
    ) -> PartitionKey {
        PartitionKey {
            product: product.into(),
            ..PartitionKey::new(environment, organization, "", "")
        }
    }

    /// A canonical byte string (length-prefixed fields) that hashing and placement use: it never
    /// depends on a Rust `Hash` impl, so a toolchain change cannot move a partition.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.feed_canonical_bytes(|bytes| out.extend_from_slice(bytes));
        out
    }

    /// [`Self::canonical_bytes`] in pieces, for a hasher: the same bytes without building them.
    pub fn feed_canonical_bytes(&self, mut feed: impl FnMut(&[u8])) {
        for field in [&self.environment, &self.organization, &self.site, &self.location] {
            feed(&(field.len() as u32).to_be_bytes());
            feed(field.as_bytes());
        }
        // Only product partitions carry the product: location partitions keep their placement.
        if !self.product.is_empty() {
            feed(&(self.product.len() as u32).to_be_bytes());
            feed(self.product.as_bytes());
        }
    }

    /// IV's partition id text, as `/allpartitionids` lists it: `<org>~<site>~<location>` by
    /// location, `<org>~<product>` by product.
    pub fn partition_id(&self) -> String {
        if self.product.is_empty() {
            format!("{}~{}~{}", self.organization, self.site, self.location)
        } else {
            format!("{}~{}", self.organization, self.product)
        }
    }
}

impl fmt::Debug for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.environment, self.organization, self.site, self.location
        )?;
        if !self.product.is_empty() {
            write!(f, "/product:{}", self.product)?;
        }
        Ok(())
    }
}

/// Base dimensions below the partition (site and location excluded), lower-case names, values
/// as sent. An empty value means "no value" and is never stored. A sorted vector, not a
/// BTreeMap: a cell has a handful of dimensions, and a BTreeMap node holds room for eleven.
pub type Dims = LiteMap<String, String>;

/// One stock cell inside a partition: a product at a set of base dimensions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cell {
    pub product: String,
    pub dims: Dims,
}

/// Quantities of physical measures: data source -> measure -> quantity (lower-case names).
/// Sorted vectors for the reason given at [`Dims`]; serialized exactly as the nested maps were.
pub type Quantities<V = crate::Qty> = LiteMap<String, LiteMap<String, V>>;

/// One measure of `quantities`, zero when absent.
pub fn quantity(quantities: &Quantities, data_source: &str, measure: &str) -> crate::Qty {
    quantities
        .get(data_source)
        .and_then(|measures| measures.get(measure))
        .copied()
        .unwrap_or(crate::Qty::ZERO)
}

/// How a consumption changes a physical measure: `Addition` adds the quantity, `Subtraction`
/// removes it (IV: the opposite of the measure's sign in the pool formula).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Modifier {
    Addition,
    Subtraction,
}

/// A `(data source, measure)` pair such as `iv.softreservphysical`, lower case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MeasureRef {
    pub data_source: String,
    pub measure: String,
}

impl MeasureRef {
    pub fn new(data_source: &str, measure: &str) -> MeasureRef {
        MeasureRef {
            data_source: canonical_name(data_source),
            measure: canonical_name(measure),
        }
    }

    /// Parses `ds.measure`; `@iv.@allocated` splits at the first dot.
    pub fn parse(text: &str) -> Option<MeasureRef> {
        let (ds, measure) = text.trim().split_once('.')?;
        if ds.is_empty() || measure.is_empty() {
            return None;
        }
        Some(MeasureRef::new(ds, measure))
    }
}

impl fmt::Display for MeasureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.data_source, self.measure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_dimensions_any_case_and_alias() {
        assert_eq!(base_dimension("ColorId"), Some("colorid"));
        assert_eq!(base_dimension("CustomDimension3"), Some("inventdimension3"));
        assert_eq!(base_dimension("MyColorId"), None);
        assert_eq!(BASE_DIMENSIONS.len(), 34);
    }

    #[test]
    fn canonical_bytes_are_length_prefixed() {
        let a = PartitionKey::new("e", "o", "1", "11");
        let b = PartitionKey::new("e", "o", "11", "1");
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }

    /// Log entries and snapshots written when these were BTreeMaps must still decode, and the
    /// state hash must not change: the sorted vectors encode exactly as the maps did.
    #[test]
    fn sorted_vector_maps_encode_as_btreemaps_did() {
        use std::collections::BTreeMap;
        let pairs = [("sizeid", "m"), ("colorid", "red")];
        let dims: Dims = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let bytes = postcard::to_stdvec(&map).expect("encode");
        assert_eq!(postcard::to_stdvec(&dims).expect("encode"), bytes);
        assert_eq!(postcard::from_bytes::<Dims>(&bytes).expect("decode"), dims);
        assert_eq!(
            serde_json::to_string(&dims).expect("json"),
            serde_json::to_string(&map).expect("json")
        );

        let q = |ds: &str, m: &str, n: i64| (ds.to_string(), m.to_string(), crate::Qty::from_i64(n));
        let rows = [q("pos", "inbound", 3), q("iv", "onhand", -2), q("pos", "outbound", 1)];
        let mut quantities = Quantities::new();
        let mut nested: BTreeMap<String, BTreeMap<String, crate::Qty>> = BTreeMap::new();
        for (ds, m, n) in rows {
            nested.entry(ds.clone()).or_default().insert(m.clone(), n);
            quantities.entry(ds).or_default().insert(m, n);
        }
        assert_eq!(
            postcard::to_stdvec(&quantities).expect("encode"),
            postcard::to_stdvec(&nested).expect("encode")
        );
        assert_eq!(quantity(&quantities, "iv", "onhand"), crate::Qty::from_i64(-2));
        assert_eq!(quantity(&quantities, "iv", "nosuch"), crate::Qty::ZERO);
    }

    #[test]
    fn measure_refs() {
        let m = MeasureRef::parse("@IV.@Allocated").unwrap();
        assert_eq!(m.to_string(), "@iv.@allocated");
        assert!(MeasureRef::parse("nodot").is_none());
    }
}
