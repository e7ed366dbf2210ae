use ivory_core::Config;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use super::{assert_same, bulk, single};
use crate::parse::{WriteKind, json_value, write_command};

const ENV: &str = "env";

const USUAL: &str = r#"{"id":"c1-7","organizationId":"usmf","productId":"p42","dimensions":{"siteId":"1","locationId":"11","colorId":"red","sizeId":"m"},"quantityDataSource":"iv","modifier":"softreservphysical","quantity":1,"ifCheckAvailForReserv":true}"#;

fn general(bytes: &[u8], config: &Config) -> Result<ivory_core::Command, crate::ApiError> {
    json_value(bytes).and_then(|v| write_command(WriteKind::Reserve, &v, ENV, config, ""))
}

#[test]
fn the_usual_shape_takes_the_fast_path_and_reads_what_the_general_path_reads() {
    let config = Config::default_config();
    let item = single(USUAL.as_bytes()).expect("the usual body takes the fast path");
    assert_same(&item.command(ENV, &config, ""), &general(USUAL.as_bytes(), &config));
    assert!(item.command(ENV, &config, "").is_ok());
    let three = format!("[{USUAL},{USUAL},{USUAL}]");
    assert_eq!(bulk(three.as_bytes()).map(|items| items.len()), Some(3));
    assert_eq!(bulk(b"[]").map(|items| items.len()), Some(0));
}

#[test]
fn other_shapes_take_the_general_path() {
    let variants = [
        USUAL.replace(r#""id""#, r#""ID""#),
        USUAL.replace(r#""productId":"p42""#, r#""productId":42"#),
        USUAL.replace(r#""colorId":"red""#, r#""colorId":null"#),
        USUAL.replace(r#""colorId":"red""#, r#""COLORID":"red","colorid":"blue""#),
        USUAL.replace(r#""quantity":1"#, r#""quantity":1.5"#),
        USUAL.replace(r#""ifCheckAvailForReserv":true"#, r#""ifCheckAvailForReserv":"true""#),
        USUAL.replace(r#""modifier""#, r#""extra":1,"modifier""#),
        USUAL.replace(r#""id":"c1-7","#, r#""id":"c1-7","id":"c1-8","#),
        USUAL.replace(r#""id":"c1-7","#, ""),
        format!("{USUAL} x"),
    ];
    for body in &variants {
        assert!(single(body.as_bytes()).is_none(), "{body}");
    }
    let too_many = format!("[{}]", vec![USUAL; ivory_core::BATCH_COMMANDS_MAX + 1].join(","));
    assert!(bulk(too_many.as_bytes()).is_none());
}

/// One field of a generated item: its key (or none) and its JSON value text.
fn field(keys: &'static [&'static str], values: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    // Mostly the usual key and value (the first of each), so that whole items often are usual.
    let key = prop_oneof![6 => Just(keys[0]), 1 => prop::sample::select(keys)];
    let value = prop_oneof![4 => Just(values[0]), 1 => prop::sample::select(values)];
    (key, value, 0u8..16).prop_map(|(key, value, absent)| (absent > 0).then(|| format!("{key}:{value}")))
}

const NAMES: &[&str] = &[
    r#""c1-7""#,
    r#""  padded  ""#,
    r#""""#,
    r#""   ""#,
    r#""tab\there""#,
    r#""esc\"aped""#,
    r#""ünïcödé""#,
    "17",
    "null",
    "true",
    r#""xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
];

fn dimensions() -> impl Strategy<Value = Option<String>> {
    let pair = (
        prop::sample::select(
            &[
                r#""siteId""#,
                r#""locationId""#,
                r#""colorId""#,
                r#""SIZEID""#,
                r#""siteid""#,
                r#""SiteId ""#,
            ][..],
        ),
        prop::sample::select(
            &[
                r#""1""#,
                r#""11""#,
                r#""red""#,
                r#""""#,
                "null",
                "5",
                r#"" m ""#,
                r#""a\u0001""#,
            ][..],
        ),
    )
        .prop_map(|(k, v)| format!("{k}:{v}"));
    (
        prop::collection::vec(pair, 0..5),
        0u8..10,
        prop::sample::select(&[r#""dimensions""#, r#""Dimensions""#][..]),
    )
        .prop_map(|(pairs, shape, key)| match shape {
            0 => None,
            1 => Some(format!(r#"{key}:"1""#)),
            _ => Some(format!("{key}:{{{}}}", pairs.join(","))),
        })
}

fn item() -> impl Strategy<Value = String> {
    (
        field(&[r#""id""#, r#""Id""#], NAMES),
        field(&[r#""organizationId""#, r#""organizationid""#], NAMES),
        field(&[r#""productId""#], NAMES),
        field(
            &[r#""dimensionDataSource""#],
            &["null", r#""""#, r#""pos""#, r#""nope""#, "3"],
        ),
        dimensions(),
        field(
            &[r#""quantityDataSource""#, r#""QuantityDataSource""#],
            &[r#""iv""#, r#""pos""#, r#""""#, "null", "2"],
        ),
        field(
            &[r#""modifier""#],
            &[
                r#""softreservphysical""#,
                r#""iv.softreservphysical""#,
                r#""""#,
                "null",
                r#""SoftReservPhysical""#,
            ],
        ),
        field(
            &[r#""quantity""#],
            &[
                "1",
                r#""2""#,
                r#"" 3 ""#,
                r#""abc""#,
                "-1",
                r#""1e40""#,
                "1.5",
                "0",
                "null",
                "99999999999999999999",
                "-9223372036854775808",
            ],
        ),
        field(
            &[r#""ifCheckAvailForReserv""#],
            &["true", "false", "null", r#""true""#, "1"],
        ),
        prop_oneof![8 => Just(""), 1 => Just(r#""unknown":1"#)],
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i, extra)| {
            let fields: Vec<String> = [a, b, c, d, e, f, g, h, i, Some(extra.to_string())]
                .into_iter()
                .flatten()
                .filter(|f| !f.is_empty())
                .collect();
            format!("{{{}}}", fields.join(","))
        })
}

/// Generated items, single and in bulk: wherever the fast path takes a body, both paths give the
/// same command or the same refusal. Also counts that the fast path took some (else this tests
/// nothing).
#[test]
fn both_paths_agree() {
    let config = Config::default_config();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: crate::hostile_tests::fuzz_cases() * 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // (accepted, refused) by the fast path: both must happen, or this tests little.
    let taken = std::cell::Cell::new((0u32, 0u32));
    runner
        .run(&prop::collection::vec(item(), 1..4), |items| {
            for body in &items {
                if let Some(fast) = single(body.as_bytes()) {
                    let command = fast.command(ENV, &config, "");
                    let (ok, refused) = taken.get();
                    taken.set(if command.is_ok() {
                        (ok + 1, refused)
                    } else {
                        (ok, refused + 1)
                    });
                    assert_same(&command, &general(body.as_bytes(), &config));
                }
            }
            let array = format!("[{}]", items.join(","));
            if let Some(fast) = bulk(array.as_bytes()) {
                let Ok(serde_json::Value::Array(values)) = json_value(array.as_bytes()) else {
                    panic!("the general path cannot read an array the fast path read");
                };
                prop_assert_eq!(fast.len(), values.len());
                for (i, (fast, value)) in fast.iter().zip(&values).enumerate() {
                    let path = format!("[{i}]");
                    let general = write_command(WriteKind::Reserve, value, ENV, &config, &path);
                    assert_same(&fast.command(ENV, &config, &path), &general);
                    prop_assert_eq!(fast.client_id(), crate::parse::client_id(value));
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, refused) = taken.get();
    assert!(
        ok > 0 && refused > 0,
        "the fast path took {ok} bodies that read and {refused} refused"
    );
}
