//! Reserve bodies read straight from their bytes, without a `serde_json::Value` tree: what a
//! bulk of 512 reserves spends most of its parsing on is building and dropping that tree (two
//! maps and a dozen strings per item).
//!
//! Only the shape that well-behaved clients send is taken here: IV's field names as IV spells
//! them, strings where names go, an integer or a string for the quantity, a boolean or `null`
//! for `ifCheckAvailForReserv`. Anything else (another case, a number for a name, an unknown or
//! repeated field, a dimension whose name folds onto another's, a `null` dimension) is `None`,
//! and the body takes the general path (`json_value` + `write_command`), which accepts and
//! refuses exactly as before. What is taken is checked by the same functions, in the same order,
//! so both paths give the same command or the same refusal (`tests::both_paths_agree`).

use std::borrow::Cow;
use std::fmt;

use ivory_core::{BATCH_COMMANDS_MAX, Command, Config};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::ApiError;
use crate::parse::{
    checked_text, client_id_text, field_names, join, non_empty, place_cell, qty_text, reserve_command, reserved_measure,
};

/// A string that borrows from the body unless it has escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReserveItem<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(rename = "organizationId", borrow)]
    organization: Text<'a>,
    #[serde(rename = "productId", borrow)]
    product: Text<'a>,
    #[serde(rename = "dimensionDataSource", borrow, default)]
    dimension_data_source: Option<Text<'a>>,
    #[serde(borrow)]
    dimensions: Dimensions<'a>,
    #[serde(rename = "quantityDataSource", borrow, default)]
    quantity_data_source: Option<Text<'a>>,
    #[serde(borrow)]
    modifier: Text<'a>,
    quantity: QuantityText,
    #[serde(rename = "ifCheckAvailForReserv", default)]
    check_availability: Option<bool>,
}

/// `dimensions`, each name in its canonical case, sorted by it (the order the general path
/// reads them in).
struct Dimensions<'a>(Vec<(String, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Dimensions<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Pairs<'a> {
            type Value = Dimensions<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of dimension name -> string")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Dimensions<'a>, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    let Text(value) = map.next_value::<Text<'de>>()?;
                    pairs.push((field_names().canonical(&name), value));
                }
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(de::Error::custom("a dimension given twice"));
                }
                Ok(Dimensions(pairs))
            }
        }
        deserializer.deserialize_map(Pairs(std::marker::PhantomData))
    }
}

/// The quantity's text: a JSON integer as JSON spells it, or a string as given.
struct QuantityText(String);

impl<'de> Deserialize<'de> for QuantityText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Quantity;
        impl Visitor<'_> for Quantity {
            type Value = QuantityText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<QuantityText, E> {
                Ok(QuantityText(n.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<QuantityText, E> {
                Ok(QuantityText(n.to_string()))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<QuantityText, E> {
                Ok(QuantityText(s.to_string()))
            }
        }
        deserializer.deserialize_any(Quantity)
    }
}

/// One reserve body in the usual shape, else `None` (take the general path).
pub(crate) fn single(bytes: &[u8]) -> Option<ReserveItem<'_>> {
    serde_json::from_slice(bytes).ok()
}

/// A bulk reserve body in the usual shape, within the item bound, else `None`.
pub(crate) fn bulk(bytes: &[u8]) -> Option<Vec<ReserveItem<'_>>> {
    serde_json::from_slice::<Vec<ReserveItem>>(bytes)
        .ok()
        .filter(|items| items.len() <= BATCH_COMMANDS_MAX)
}

impl ReserveItem<'_> {
    /// The id its answer names, as `parse::client_id` reads it from the general path's value.
    pub fn client_id(&self) -> String {
        client_id_text(&self.id.0)
    }

    /// The command, or the refusal `write_command` gives the same item: the same checks in the
    /// same order.
    pub fn command(&self, environment: &str, config: &Config, path: &str) -> Result<Command, ApiError> {
        let required = |text: &Text, field: &str| {
            non_empty(checked_text(text.0.trim().to_string(), join(path, field))?, path, field)
        };
        let optional = |text: &Option<Text>, field: &str| match text {
            None => Ok(None),
            Some(t) => {
                checked_text(t.0.trim().to_string(), join(path, field)).map(|s| Some(s).filter(|s| !s.is_empty()))
            }
        };
        let id = required(&self.id, "id")?;
        let organization = required(&self.organization, "organizationId")?;
        let product = required(&self.product, "productId")?;
        let data_source = optional(&self.dimension_data_source, "dimensionDataSource")?;
        let mut values = Vec::with_capacity(self.dimensions.0.len());
        for (name, value) in &self.dimensions.0 {
            let field = format_args!("{}.{name}", join(path, "dimensions"));
            values.push(checked_text(value.trim().to_string(), field)?);
        }
        let pairs = self
            .dimensions
            .0
            .iter()
            .zip(&values)
            .map(|((k, _), v)| (k.as_str(), v.as_str()));
        let placed = place_cell(
            environment,
            config,
            path,
            organization,
            product,
            data_source.as_deref(),
            pairs,
            true,
        )?;
        let modifier = required(&self.modifier, "modifier")?;
        let measure = reserved_measure(
            optional(&self.quantity_data_source, "quantityDataSource")?.as_deref(),
            &modifier,
        );
        let quantity = qty_text(&self.quantity.0, join(path, "quantity"))?;
        let checked = self.check_availability.unwrap_or(true);
        Ok(reserve_command(id, placed, measure, quantity, checked))
    }
}

/// Panics unless both paths gave the same command, or the same refusal (for tests and fuzzers).
#[doc(hidden)]
pub fn assert_same(fast: &Result<Command, ApiError>, general: &Result<Command, ApiError>) {
    match (fast, general) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the two paths read different commands"),
        (Err(a), Err(b)) => assert_eq!(
            (a.status, &a.code, &a.message),
            (b.status, &b.code, &b.message),
            "the two paths refused differently"
        ),
        _ => panic!("one path accepted what the other refused: fast {fast:?}, general {general:?}"),
    }
}

#[cfg(test)]
mod tests;
