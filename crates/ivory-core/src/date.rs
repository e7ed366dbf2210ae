//! UTC days: schedules and ATP work at the precision of a day (docs/iv-compatibility.md §2.5, §4).
//!
//! A day is a count of days since 1970-01-01. Conversions use Howard Hinnant's civil-date
//! algorithms: exact for every proleptic Gregorian date, no tables, no clock.

pub const MS_PER_DAY: u64 = 86_400_000;

/// The UTC day of a millisecond timestamp.
pub fn day_of_ms(ms: u64) -> i64 {
    (ms / MS_PER_DAY) as i64
}

/// Years a date may have. Client text such as `Sep 26 9223372036854775807` reaches
/// [`days_from_civil`]; beyond this its arithmetic (and [`civil_from_days`]'s) would overflow.
pub const YEARS: std::ops::RangeInclusive<i64> = -999_999..=999_999;

/// Days since 1970-01-01 of a civil date; `None` for an impossible date (Feb 30) or a year
/// outside [`YEARS`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if !YEARS.contains(&year) || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The civil date (year, month, day) of a day number.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if month <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        month,
        day,
    )
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `2022-02-01`.
pub fn format_day(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses the day of the dates IV clients send: `2023-09-26`, `2023-09-26T00:00:00`, `...Z`,
/// `2023/09/26`, and JavaScript's `toDateString()` form `Tue Sep 26 2023` (docs/iv-compatibility.md §2.5).
/// A time part other than midnight is accepted and dropped: the precision is a day.
///
/// ```
/// use ivory_core::date::{parse_day, format_day};
/// assert_eq!(format_day(parse_day("Tue Sep 26 2023").unwrap()), "2023-09-26");
/// assert_eq!(parse_day("2023-09-26T00:00:00Z"), parse_day("2023-09-26"));
/// assert!(parse_day("2023-02-30").is_none());
/// ```
pub fn parse_day(text: &str) -> Option<i64> {
    let text = text.trim();
    let date = text.split(['T', ' ']).next().unwrap_or("");
    let parts: Vec<&str> = date.split(['-', '/']).collect();
    if let [y, m, d] = parts.as_slice()
        && y.len() == 4
    {
        return days_from_civil(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    }
    // `Tue Sep 26 2023` (the weekday is optional and not checked).
    let words: Vec<&str> = text.split_whitespace().collect();
    let words = match words.as_slice() {
        [_, rest @ ..] if rest.len() == 3 => rest,
        all if all.len() == 3 => all,
        _ => return None,
    };
    let month = MONTHS
        .iter()
        .position(|m| words[0].to_ascii_lowercase().starts_with(m))? as u32
        + 1;
    days_from_civil(words[2].parse().ok()?, month, words[1].parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_across_eras_and_leap_days() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(format_day(days_from_civil(2024, 2, 29).unwrap()), "2024-02-29");
        assert!(days_from_civil(2023, 2, 29).is_none());
        assert!(days_from_civil(2100, 2, 29).is_none());
        assert!(days_from_civil(2000, 2, 29).is_some());
    }

    #[test]
    fn lenient_forms() {
        let day = days_from_civil(2022, 2, 1).unwrap();
        for text in [
            "2022-02-01",
            "2022-02-01T00:00:00",
            "2022-02-01T00:00:00Z",
            "2022/02/01",
            "Tue Feb 01 2022",
            "Feb 1 2022",
        ] {
            assert_eq!(parse_day(text), Some(day), "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "2022-13-01",
            "01-02-2022",
            "Foo 1 2022",
            // Found by the gateway's hostile-input fuzz: these overflowed (a panic in debug builds).
            "Tue Sep 26 9223372036854775807",
            "Sep 26 -9223372036854775808",
            "Feb 1 1000000",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        assert_eq!(day_of_ms(MS_PER_DAY * 3 + 5), 3);
    }
}
