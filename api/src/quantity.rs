//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`): parsing into an
//! exact count of nano-units, arithmetic and comparison for summing pod requests, and the
//! canonical string form the API server writes back (`1.5Gi` → `1536Mi`, `0.5` → `500m`).
//! No floating point anywhere. This module does not know which resource (cpu, memory) a
//! quantity measures; callers pick the unit (`millis()` for cpu, `value()` for bytes).

use std::cmp::Ordering;
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, Neg, Sub};
use std::str::FromStr;

/// The regular expression upstream quotes when a quantity is malformed.
pub const QUANTITY_REGEX: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Why a string is not a quantity. Messages are upstream's (`resource.ParseQuantity`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form number + suffix.
    #[error("quantities must match the regular expression '{QUANTITY_REGEX}'")]
    Format { input: String },
    /// The suffix has the right characters but names no unit (`1ki`, `1e`).
    #[error("unable to parse quantity's suffix")]
    Suffix { input: String },
    /// The number does not fit in the range bosun keeps exactly (about ±1.7e29 units).
    #[error("quantity {input:?} is too large")]
    TooLarge { input: String },
}

/// How a quantity was written; decides its canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of ten with SI suffixes (`m`, `k`, `M`, `G`, …) or none.
    DecimalSI,
    /// Powers of two (`Ki`, `Mi`, `Gi`, …).
    BinarySI,
    /// Scientific notation (`1e3`, `5E-3`).
    DecimalExponent,
}

/// An exact quantity, held as a signed number of nano-units (1e-9).
///
/// Equality and ordering compare the amount only, not the format: `1Ki == 1024`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::zero()
    }
}

/// Divides rounding away from zero, as upstream rounds quantities "up".
fn div_away_from_zero(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Quantity {
    /// Zero, written `0`.
    pub const fn zero() -> Self {
        Quantity {
            nanos: 0,
            format: Format::DecimalSI,
        }
    }

    /// A quantity of `millis` thousandths of a unit (cpu: millicores).
    pub const fn from_millis(millis: i64) -> Self {
        Quantity {
            nanos: millis as i128 * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    /// A whole number of units in the given format (`from_units(1024, BinarySI)` is `1Ki`).
    pub const fn from_units(units: i64, format: Format) -> Self {
        Quantity {
            nanos: units as i128 * NANOS_PER_UNIT,
            format,
        }
    }

    /// A quantity of `nanos` billionths of a unit.
    pub const fn from_nanos(nanos: i128, format: Format) -> Self {
        Quantity { nanos, format }
    }

    /// Parses a quantity as the API server does. Values more precise than a nano-unit are
    /// rounded up (away from zero) to the next nano-unit, like upstream.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let format_err = || QuantityError::Format {
            input: s.to_string(),
        };
        let too_large = || QuantityError::TooLarge {
            input: s.to_string(),
        };
        let bytes = s.as_bytes();
        if bytes.is_empty() {
            return Err(format_err());
        }
        let mut pos = 0;
        let mut negative = false;
        match bytes[0] {
            b'-' => {
                negative = true;
                pos = 1;
            }
            b'+' => pos = 1,
            _ => {}
        }
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_part = &s[int_start..pos];
        let mut frac_part = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_part = &s[frac_start..pos];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format_err());
        }
        let suffix = &s[pos..];
        // The suffix must look like [eEinumkKMGTP]*[-+]?[0-9]*.
        let sb = suffix.as_bytes();
        let mut i = 0;
        while i < sb.len() && b"eEinumkKMGTP".contains(&sb[i]) {
            i += 1;
        }
        if i < sb.len() && (sb[i] == b'-' || sb[i] == b'+') {
            i += 1;
        }
        while i < sb.len() && sb[i].is_ascii_digit() {
            i += 1;
        }
        if i != sb.len() {
            return Err(format_err());
        }

        let (mut format, exp10, exp2) = match suffix {
            "" => (Format::DecimalSI, 0i64, 0u32),
            "n" => (Format::DecimalSI, -9, 0),
            "u" => (Format::DecimalSI, -6, 0),
            "m" => (Format::DecimalSI, -3, 0),
            "k" => (Format::DecimalSI, 3, 0),
            "M" => (Format::DecimalSI, 6, 0),
            "G" => (Format::DecimalSI, 9, 0),
            "T" => (Format::DecimalSI, 12, 0),
            "P" => (Format::DecimalSI, 15, 0),
            "E" => (Format::DecimalSI, 18, 0),
            "Ki" => (Format::BinarySI, 0, 10),
            "Mi" => (Format::BinarySI, 0, 20),
            "Gi" => (Format::BinarySI, 0, 30),
            "Ti" => (Format::BinarySI, 0, 40),
            "Pi" => (Format::BinarySI, 0, 50),
            "Ei" => (Format::BinarySI, 0, 60),
            other if other.len() > 1 && (other.starts_with('e') || other.starts_with('E')) => {
                let exp: i64 = other[1..].parse().map_err(|_| QuantityError::Suffix {
                    input: s.to_string(),
                })?;
                (Format::DecimalExponent, exp, 0)
            }
            _ => {
                return Err(QuantityError::Suffix {
                    input: s.to_string(),
                })
            }
        };

        // Digits without trailing fractional zeros, so long inputs like 1.000000 stay small.
        let frac_trimmed = frac_part.trim_end_matches('0');
        let digits: String = format!("{int_part}{frac_trimmed}");
        let digits = digits.trim_start_matches('0');
        let mut mantissa: i128 = 0;
        for d in digits.bytes() {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(d - b'0')))
                .ok_or_else(too_large)?;
        }
        mantissa = mantissa.checked_mul(1i128 << exp2).ok_or_else(too_large)?;
        let shift = 9 - frac_trimmed.len() as i64 + exp10;
        let mut nanos = if mantissa == 0 {
            0
        } else if shift >= 0 {
            let factor = u32::try_from(shift)
                .ok()
                .and_then(pow10)
                .ok_or_else(too_large)?;
            mantissa.checked_mul(factor).ok_or_else(too_large)?
        } else {
            match u32::try_from(-shift).ok().and_then(pow10) {
                Some(divisor) => div_away_from_zero(mantissa, divisor),
                // Smaller than any power of ten we hold: rounds up to one nano-unit.
                None => 1,
            }
        };
        if negative {
            nanos = -nanos;
        }
        if format == Format::BinarySI && nanos.abs() < NANOS_PER_UNIT && nanos != 0 {
            format = Format::DecimalSI;
        }
        Ok(Quantity { nanos, format })
    }

    /// The exact amount in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The amount in thousandths of a unit, rounded away from zero (cpu millicores).
    pub fn millis(&self) -> i128 {
        div_away_from_zero(self.nanos, 1_000_000)
    }

    /// The amount in whole units, rounded away from zero (bytes for memory).
    pub fn value(&self) -> i128 {
        div_away_from_zero(self.nanos, NANOS_PER_UNIT)
    }

    /// How the quantity was written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The sum, or `None` on overflow. Keeps `self`'s format unless `self` is zero.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Some(Quantity {
            nanos: self.nanos.checked_add(other.nanos)?,
            format,
        })
    }

    /// The difference, or `None` on overflow.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Some(Quantity {
            nanos: self.nanos.checked_sub(other.nanos)?,
            format,
        })
    }

    /// The canonical string form, as the API server writes it.
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

impl Add for Quantity {
    type Output = Quantity;
    /// Saturates instead of overflowing (the range is far beyond any real cluster).
    fn add(self, other: Quantity) -> Quantity {
        self.checked_add(other).unwrap_or(Quantity {
            nanos: if other.nanos > 0 {
                i128::MAX
            } else {
                i128::MIN
            },
            format: self.format,
        })
    }
}

impl Sub for Quantity {
    type Output = Quantity;
    /// Saturates instead of overflowing.
    fn sub(self, other: Quantity) -> Quantity {
        self.checked_sub(other).unwrap_or(Quantity {
            nanos: if other.nanos < 0 {
                i128::MAX
            } else {
                i128::MIN
            },
            format: self.format,
        })
    }
}

impl Neg for Quantity {
    type Output = Quantity;
    fn neg(self) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_neg(),
            format: self.format,
        }
    }
}

impl Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::zero(), |a, b| a + b)
    }
}

impl<'a> Sum<&'a Quantity> for Quantity {
    fn sum<I: Iterator<Item = &'a Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::zero(), |a, b| a + *b)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

fn decimal_suffix(exp: i64) -> Option<&'static str> {
    Some(match exp {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

impl fmt::Display for Quantity {
    /// Canonical form: no fractional digits, the largest suffix that loses nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI
            && (self.nanos.abs() < 1024 * NANOS_PER_UNIT || self.nanos % NANOS_PER_UNIT != 0)
        {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut mantissa = self.nanos / NANOS_PER_UNIT;
            let mut exp = 0;
            while exp < 6 && mantissa % 1024 == 0 {
                mantissa /= 1024;
                exp += 1;
            }
            return write!(f, "{mantissa}{}", SUFFIXES[exp]);
        }
        let mut mantissa = self.nanos;
        let mut exp: i64 = -9;
        while mantissa % 1000 == 0 && (format == Format::DecimalExponent || exp < 18) {
            mantissa /= 1000;
            exp += 3;
        }
        match format {
            Format::DecimalExponent if exp == 0 => write!(f, "{mantissa}"),
            Format::DecimalExponent => write!(f, "{mantissa}e{exp}"),
            _ => match decimal_suffix(exp) {
                Some(suffix) => write!(f, "{mantissa}{suffix}"),
                None => write!(f, "{mantissa}e{exp}"),
            },
        }
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    /// Accepts a string, or a bare JSON number as upstream does.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(deserializer)?;
        let text = match &v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(serde::de::Error::custom(
                    "a quantity must be a string or a number",
                ))
            }
        };
        Quantity::parse(text.trim()).map_err(serde::de::Error::custom)
    }
}

/// Parses a quantity held in JSON: a string, or a number (as upstream accepts).
pub fn from_value(v: &serde_json::Value) -> Result<Quantity, QuantityError> {
    match v {
        serde_json::Value::String(s) => Quantity::parse(s),
        serde_json::Value::Number(n) => Quantity::parse(&n.to_string()),
        other => Err(QuantityError::Format {
            input: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_to_exact_amounts() {
        assert_eq!(q("100m").millis(), 100);
        assert_eq!(q("0.5").millis(), 500);
        assert_eq!(q("1").millis(), 1000);
        assert_eq!(q("128Mi").value(), 128 * 1024 * 1024);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("2Ki").value(), 2048);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("-1.5").millis(), -1500);
        assert_eq!(q("+2").value(), 2);
        assert_eq!(q(".5").millis(), 500);
        assert_eq!(q("1.").value(), 1);
        assert_eq!(q("5E-3").millis(), 5);
        assert_eq!(q("1n").nanos(), 1);
        assert_eq!(q("1u").nanos(), 1000);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("1Ei").value(), 1 << 60);
        assert_eq!(q("0").nanos(), 0);
        assert_eq!(q("000").nanos(), 0);
        assert_eq!(q("1.000000000000000000000000000000000000000000").value(), 1);
    }

    #[test]
    fn rounds_up_below_a_nano_and_when_asked_for_units() {
        assert_eq!(q("0.1n").nanos(), 1);
        assert_eq!(q("1e-30").nanos(), 1);
        assert_eq!(q("-0.1n").nanos(), -1);
        assert_eq!(q("1.5m").millis(), 2);
        assert_eq!(q("1m").value(), 1);
        assert_eq!(q("1001m").value(), 2);
        assert_eq!(q("-1m").value(), -1);
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        for bad in [
            "", "abc", "1.1.1", "1 ", " 1", "Mi", "1Mib", "-", ".", "1e1.0", "1,5",
        ] {
            assert!(
                matches!(Quantity::parse(bad), Err(QuantityError::Format { .. })),
                "{bad:?} should be a format error"
            );
        }
        for bad in ["1ki", "1e", "1Ki1", "1mm", "1K", "1+", "1Gi1"] {
            assert!(
                matches!(Quantity::parse(bad), Err(QuantityError::Suffix { .. })),
                "{bad:?} should be a suffix error"
            );
        }
        assert!(matches!(
            Quantity::parse("1e100"),
            Err(QuantityError::TooLarge { .. })
        ));
        assert_eq!(
            Quantity::parse("x").unwrap_err().to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            Quantity::parse("1ki").unwrap_err().to_string(),
            "unable to parse quantity's suffix"
        );
    }

    #[test]
    fn canonical_forms_match_upstream() {
        for (input, want) in [
            ("100m", "100m"),
            ("0.5", "500m"),
            ("1", "1"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("1.5", "1500m"),
            ("128Mi", "128Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("1024", "1024"),
            ("1Ki", "1Ki"),
            ("1G", "1G"),
            ("1000M", "1G"),
            ("1200", "1200"),
            ("1000", "1k"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("1e-3", "1e-3"),
            ("0", "0"),
            ("0Mi", "0"),
            ("-100m", "-100m"),
            ("-1Gi", "-1Gi"),
            ("1n", "1n"),
            ("0.1n", "1n"),
            ("1.1m", "1100u"),
            ("1E", "1E"),
            ("1000E", "1000E"),
            ("1024Ei", "1024Ei"),
        ] {
            assert_eq!(q(input).to_string(), want, "canonical form of {input:?}");
        }
    }

    #[test]
    fn compares_and_sums_across_formats() {
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("100m") < q("0.2"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("2").cmp(&q("2000m")), Ordering::Equal);
        let requests = [q("100m"), q("250m"), q("1")];
        let total: Quantity = requests.iter().sum();
        assert_eq!(total.millis(), 1350);
        assert_eq!(total.to_string(), "1350m");
        let mem: Quantity = [q("64Mi"), q("64Mi")].into_iter().sum();
        assert_eq!(mem.to_string(), "128Mi");
        assert_eq!((q("1") - q("250m")).millis(), 750);
        assert_eq!((-q("1Gi")).to_string(), "-1Gi");
        assert_eq!(Quantity::from_millis(1500).to_string(), "1500m");
        assert_eq!(
            Quantity::from_units(2048, Format::BinarySI).to_string(),
            "2Ki"
        );
    }

    #[test]
    fn serde_round_trips_and_accepts_numbers() {
        let v: Quantity = serde_json::from_str("\"1.5Gi\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1536Mi\"");
        let n: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(n.value(), 2);
        let f: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(f.millis(), 500);
        assert!(serde_json::from_str::<Quantity>("\"1ki\"").is_err());
        assert_eq!(
            from_value(&serde_json::json!("250m")).unwrap().millis(),
            250
        );
        assert!(from_value(&serde_json::json!(true)).is_err());
    }
}
