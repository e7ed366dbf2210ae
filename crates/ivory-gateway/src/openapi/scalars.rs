//! Scalars: what `parse.rs` accepts (names, decimals, flags, dates), as hand-built schemas.

use super::*;

// ---- scalars: what `parse.rs` accepts --------------------------------------------------------

/// A printable, non-blank value without control characters.
pub(super) const NAME_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
pub(super) const OPTIONAL_NAME_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";
pub(super) const DECIMAL_PATTERN: &str = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$";
pub(super) const POSITIVE_DECIMAL_PATTERN: &str =
    r"^\s*\+?(0*[1-9][0-9]*(\.[0-9]*)?|0*\.[0-9]*[1-9][0-9]*|0+\.0*[1-9][0-9]*)\s*$";
pub(super) const FLAG_PATTERN: &str = r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$";
/// The largest quantity magnitude (`ivory_core::qty::QTY_ABS_MAX`).
pub(super) const QTY_ABS_MAX: f64 = 1e15;

pub(super) fn string_schema(pattern: &str, min_length: Option<usize>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(min_length)
        .max_length(Some(NAME_LEN_MAX))
        .pattern(Some(pattern))
}

pub(super) fn one_of(items: Vec<RefOr<Schema>>, description: &str) -> RefOr<Schema> {
    let mut b = OneOfBuilder::new().description(Some(description));
    for item in items {
        b = b.item(item);
    }
    b.into()
}

/// Declares a doc-only scalar type whose schema is built by hand.
macro_rules! doc_scalar {
    ($name:ident, $schema:expr) => {
        pub(crate) struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

doc_scalar!(
    Name,
    one_of(
        vec![
            string_schema(NAME_PATTERN, Some(1)).into(),
            ObjectBuilder::new().schema_type(Type::Number).into(),
        ],
        "A name or id: a string of at most 256 UTF-8 bytes after trimming, not blank, without control \
         characters; a number is taken as its text."
    )
);
doc_scalar!(
    OptionalName,
    one_of(
        vec![
            string_schema(OPTIONAL_NAME_PATTERN, None).into(),
            ObjectBuilder::new().schema_type(Type::Number).into(),
            ObjectBuilder::new().schema_type(Type::Null).into(),
        ],
        "A value that may be empty: `\"\"` and `null` mean no value."
    )
);
doc_scalar!(
    Quantity,
    one_of(
        vec![
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(-QTY_ABS_MAX))
                .maximum(Some(QTY_ABS_MAX))
                .into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(DECIMAL_PATTERN))
                .into(),
        ],
        "An exact decimal, as a JSON number or a string: at most 10^15 in magnitude, at most 8 digits \
         after the point. NaN and infinities are refused."
    )
);
doc_scalar!(
    PositiveQuantity,
    one_of(
        vec![
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0))
                .maximum(Some(QTY_ABS_MAX))
                .into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(POSITIVE_DECIMAL_PATTERN))
                .into(),
        ],
        "A quantity greater than zero (as `Quantity`)."
    )
);
doc_scalar!(
    Flag,
    one_of(
        vec![
            ObjectBuilder::new().schema_type(Type::Boolean).into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(FLAG_PATTERN))
                .into(),
            ObjectBuilder::new().schema_type(Type::Null).into(),
        ],
        "true or false, also as the strings \"true\"/\"false\" in any case; null = the default."
    )
);
doc_scalar!(
    NameList,
    one_of(
        vec![
            ArrayBuilder::new().items(OptionalName::schema()).into(),
            OptionalName::schema(),
        ],
        "A list of values (one value counts as a list of one); empty values are ignored."
    )
);
doc_scalar!(
    Dimensions,
    ObjectBuilder::new()
        .description(Some(
            "Dimension name (any case; base names, or names the `dimensionDataSource` maps) -> value. Writes \
             name siteId and locationId (the partition)."
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(OptionalName::schema())))
        .into()
);
doc_scalar!(
    PartitionDimensions,
    ObjectBuilder::new()
        .description(Some(
            "Dimension name (any case; base names, or names the `dimensionDataSource` maps) -> value; \
             siteId and locationId name the partition and are required."
        ))
        .property("siteId", Name::schema())
        .property("locationId", Name::schema())
        .required("siteId")
        .required("locationId")
        .additional_properties(Some(AdditionalProperties::RefOr(OptionalName::schema())))
        .into()
);
doc_scalar!(
    OrganizationList,
    one_of(
        vec![
            ArrayBuilder::new().items(Name::schema()).min_items(Some(1)).into(),
            Name::schema(),
        ],
        "Organization ids: exactly one with Api-Version 1.0, up to 100 with 2.0."
    )
);
/// A bulk's items: each is judged on its own, a malformed one is a `failure` entry.
pub(crate) fn bulk_item(item: RefOr<Schema>) -> RefOr<Schema> {
    utoipa::openapi::schema::AnyOfBuilder::new()
        .item(item)
        .item(ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some(
            "Anything else: that item is refused (a `failure` entry, statusCode 400)",
        )))
        .into()
}

macro_rules! bulk_of {
    ($name:ident, $item:ident) => {
        pub(crate) struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ArrayBuilder::new()
                    .items(bulk_item(Ref::from_schema_name($item::name()).into()))
                    .max_items(Some(ivory_core::BATCH_COMMANDS_MAX))
                    .description(Some(
                        "At most 512 items (513+ = 400 `limit.bulk_items`, nothing applied)",
                    ))
                    .into()
            }
        }
        impl ToSchema for $name {}
    };
}

bulk_of!(OnHandChangeBulk, OnHandChangeRequest);
bulk_of!(SetOnHandBulk, SetOnHandRequest);
bulk_of!(ReserveBulk, ReserveRequest);
bulk_of!(UnreserveBulk, UnreserveRequest);
bulk_of!(ChangeScheduleBulk, ChangeScheduleRequest);

doc_scalar!(
    Quantities,
    ObjectBuilder::new()
        .description(Some(
            "`{dataSource: {physicalMeasure: quantity}}` with at least one measure, as configured (400 \
             `command.invalid` names an unknown one)."
        ))
        .min_properties(Some(1))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .additional_properties(Some(AdditionalProperties::RefOr(Quantity::schema())))
                .into()
        )))
        .into()
);
doc_scalar!(
    PartitionId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[^~]*~[^~]*~[^~]*$"))
        .description(Some(
            "`<organizationId>~<siteId>~<locationId>`, as `allpartitionids` lists it"
        ))
        .into()
);
doc_scalar!(
    Groups,
    ObjectBuilder::new()
        .description(Some(
            "Allocation group level (as configured, any case; default `channel`, `customerGroup`, \
             `region`, `orderType`) -> value, filled top-down."
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(OptionalName::schema())))
        .into()
);

pub(super) fn optional_groups() -> RefOr<Schema> {
    one_of(
        vec![Groups::schema(), ObjectBuilder::new().schema_type(Type::Null).into()],
        "Group levels, or null",
    )
}

pub(super) fn quantities_by_date() -> RefOr<Schema> {
    ObjectBuilder::new()
        .min_properties(Some(1))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new().schema_type(Type::Object).into(),
        )))
        .into()
}
