//! Exact stock quantities.
//!
//! Stock is never an `f64`: a sum of a million `0.1` must be exactly `100000`. [`Qty`] wraps
//! `rust_decimal::Decimal` and bounds every value so that no sum of bounded values can overflow
//! silently: arithmetic is checked and an overflow rejects the command that caused it.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest magnitude a client may send or a cell may hold: 10^15 units.
/// Far above any real stock figure, far below `Decimal::MAX` (~7.9e28), so sums of a few
/// thousand bounded values are exact.
pub const QTY_ABS_MAX: Decimal = Decimal::from_parts(0xA4C6_8000, 0x0003_8D7E, 0, false, 0);

/// Digits after the decimal point a client may send. IV stores decimals; 8 covers every unit of
/// measure in practice and keeps products of sums exact.
pub const QTY_SCALE_MAX: u32 = 8;

/// An exact, bounded quantity of stock.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Qty(Decimal);

/// Why a number was refused as a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QtyError {
    #[error("'{0}' is not a decimal number")]
    NotANumber(String),
    #[error("{0} is out of range: quantities are limited to +/-{QTY_ABS_MAX}")]
    OutOfRange(String),
    #[error("{0} has more than {QTY_SCALE_MAX} digits after the decimal point")]
    TooPrecise(String),
}

impl Qty {
    pub const ZERO: Qty = Qty(Decimal::ZERO);
    pub const ONE: Qty = Qty(Decimal::ONE);

    /// A quantity from a decimal, refusing values out of range or too precise.
    ///
    /// # Errors
    /// [`QtyError::OutOfRange`] beyond [`QTY_ABS_MAX`]; [`QtyError::TooPrecise`] beyond
    /// [`QTY_SCALE_MAX`] fractional digits (after trailing zeros are dropped).
    pub fn new(value: Decimal) -> Result<Qty, QtyError> {
        let value = value.normalize();
        if value.abs() > QTY_ABS_MAX {
            return Err(QtyError::OutOfRange(value.to_string()));
        }
        if value.scale() > QTY_SCALE_MAX {
            return Err(QtyError::TooPrecise(value.to_string()));
        }
        Ok(Qty(value))
    }

    /// Parses the text of a JSON number or numeric string (`"10"`, `"-2.5"`, `1e3`).
    /// NaN, infinities and anything that is not a finite decimal are refused.
    ///
    /// ```
    /// use ivory_core::Qty;
    /// assert_eq!(Qty::parse("0.1").unwrap() + Qty::parse("0.2").unwrap(), Qty::parse("0.3").unwrap());
    /// assert!(Qty::parse("NaN").is_err());
    /// assert!(Qty::parse("1e30").is_err());
    /// ```
    ///
    /// # Errors
    /// As [`Qty::new`], plus [`QtyError::NotANumber`].
    pub fn parse(text: &str) -> Result<Qty, QtyError> {
        let text = text.trim();
        let value = Decimal::from_str(text)
            .or_else(|_| Decimal::from_scientific(text))
            .map_err(|_| {
                // Tell "too big" apart from "not a number" for digit strings such as 1e40.
                if text.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
                    && text.chars().any(|c| c.is_ascii_digit())
                {
                    QtyError::OutOfRange(text.to_string())
                } else {
                    QtyError::NotANumber(text.to_string())
                }
            })?;
        Qty::new(value)
    }

    pub fn from_i64(value: i64) -> Qty {
        Qty(Decimal::from(value))
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    pub fn is_positive(self) -> bool {
        self.0.is_sign_positive() && !self.0.is_zero()
    }

    /// `self + rhs`, or `None` when the result leaves the allowed range.
    pub fn checked_add(self, rhs: Qty) -> Option<Qty> {
        self.0.checked_add(rhs.0).and_then(|v| Qty::new(v).ok())
    }

    /// `self - rhs`, or `None` when the result leaves the allowed range.
    pub fn checked_sub(self, rhs: Qty) -> Option<Qty> {
        self.0.checked_sub(rhs.0).and_then(|v| Qty::new(v).ok())
    }

    pub fn min(self, rhs: Qty) -> Qty {
        if self <= rhs { self } else { rhs }
    }

    pub fn max(self, rhs: Qty) -> Qty {
        if self >= rhs { self } else { rhs }
    }

    /// The value as a JSON number, exactly (serde_json keeps its digits as written).
    pub fn to_json(self) -> serde_json::Value {
        serde_json::Value::Number(
            serde_json::Number::from_str(&self.0.normalize().to_string())
                .unwrap_or_else(|_| serde_json::Number::from(0)),
        )
    }
}

/// Unbounded sums used only inside one evaluation (a calculated measure over many cells); they are
/// reported, never stored, so they may exceed [`QTY_ABS_MAX`] without harm.
impl Qty {
    /// `k` times the quantity: a formula's term counted `k` times (negative when subtracted).
    pub fn times(self, k: i64) -> Qty {
        Qty(self.0.saturating_mul(Decimal::from(k)))
    }
}

impl std::ops::Add for Qty {
    type Output = Qty;
    fn add(self, rhs: Qty) -> Qty {
        Qty(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::Sub for Qty {
    type Output = Qty;
    fn sub(self, rhs: Qty) -> Qty {
        Qty(self.0.saturating_sub(rhs.0))
    }
}

impl std::ops::Neg for Qty {
    type Output = Qty;
    fn neg(self) -> Qty {
        Qty(-self.0)
    }
}

impl std::iter::Sum for Qty {
    fn sum<I: Iterator<Item = Qty>>(iter: I) -> Qty {
        iter.fold(Qty::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.normalize(), f)
    }
}

impl fmt::Debug for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Text in human-readable formats (JSON), the 16-byte decimal in binary ones (log, snapshot).
impl Serialize for Qty {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(&self.0.normalize())
        } else {
            serializer.serialize_bytes(&self.0.serialize())
        }
    }
}

impl<'de> Deserialize<'de> for Qty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Qty, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Qty::parse(&text).map_err(D::Error::custom)
        } else {
            let bytes: &[u8] = <&[u8]>::deserialize(deserializer)?;
            let raw: [u8; 16] = bytes
                .try_into()
                .map_err(|_| D::Error::custom("a quantity is 16 bytes"))?;
            Qty::new(Decimal::deserialize(raw)).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_precision() {
        assert_eq!(QTY_ABS_MAX, Decimal::from(1_000_000_000_000_000_i64));
        assert!(Qty::parse("1000000000000000").is_ok());
        assert!(matches!(Qty::parse("1000000000000001"), Err(QtyError::OutOfRange(_))));
        assert!(matches!(Qty::parse("0.000000001"), Err(QtyError::TooPrecise(_))));
        assert!(matches!(Qty::parse("inf"), Err(QtyError::NotANumber(_))));
        assert!(matches!(Qty::parse("1e40"), Err(QtyError::OutOfRange(_))));
        assert_eq!(Qty::parse("1.50").unwrap(), Qty::parse("1.5").unwrap());
        assert_eq!(Qty::parse("2e3").unwrap(), Qty::from_i64(2000));
    }

    #[test]
    fn exact_sums() {
        let tenth = Qty::parse("0.1").unwrap();
        let mut sum = Qty::ZERO;
        for _ in 0..1_000_000 {
            sum = sum.checked_add(tenth).unwrap();
        }
        assert_eq!(sum, Qty::from_i64(100_000));
    }

    #[test]
    fn binary_round_trip() {
        let q = Qty::parse("-12.345").unwrap();
        let bytes = postcard::to_stdvec(&q).unwrap();
        assert_eq!(postcard::from_bytes::<Qty>(&bytes).unwrap(), q);
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"-12.345\"");
    }
}
