//! A JSON number's text read as an exact decimal, never through f64: the
//! canonical text of numbers in `context` / `payload` (PostgreSQL
//! `numeric`'s output form) and the exactness test of metrics.

use std::fmt::{self, Write as _};

/// Most digits (integer part plus fraction) a canonical number may have.
pub(crate) const MAX_DIGITS: usize = 1000;

/// Largest exponent magnitude accepted. PostgreSQL refuses exponents past
/// about 1.07e9 even where the value is small (`0e2000000000`); any
/// exponent past this bound also makes more than [`MAX_DIGITS`] digits
/// unless the value is zero.
const MAX_EXPONENT: i64 = 1_000_000;

/// A valid JSON number split into sign, digits and exponent; its value is
/// `(int ++ frac) * 10^(exp - frac.len())`.
pub(crate) struct Decimal<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    /// Saturates just past `MAX_EXPONENT`, so huge exponents stay huge.
    exp: i64,
}

impl<'a> Decimal<'a> {
    /// `None` unless `text` is exactly one JSON number token.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        let bytes = text.as_bytes();
        let (negative, rest) = match bytes.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int, mut rest) = rest.split_at(int_len);
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            return None;
        }
        let mut frac: &[u8] = &[];
        if let Some((b'.', after)) = rest.split_first() {
            let len = after.iter().take_while(|b| b.is_ascii_digit()).count();
            (frac, rest) = after.split_at(len);
            if frac.is_empty() {
                return None;
            }
        }
        let mut exp = 0i64;
        if let Some((b'e' | b'E', after)) = rest.split_first() {
            let (exp_negative, digits) = match after.split_first() {
                Some((b'-', d)) => (true, d),
                Some((b'+', d)) => (false, d),
                _ => (false, after),
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            for d in digits {
                exp = (exp * 10 + i64::from(d - b'0')).min(MAX_EXPONENT + 1);
            }
            if exp_negative {
                exp = -exp;
            }
            rest = &[];
        }
        rest.is_empty().then_some(Decimal {
            negative,
            int,
            frac,
            exp,
        })
    }

    fn len(&self) -> usize {
        self.int.len() + self.frac.len()
    }

    /// The `i`-th digit of `int ++ frac`; `0` outside it.
    fn digit(&self, i: i64) -> u8 {
        let Ok(i) = usize::try_from(i) else {
            return b'0';
        };
        match i.checked_sub(self.int.len()) {
            None => self.int[i],
            Some(j) => self.frac.get(j).copied().unwrap_or(b'0'),
        }
    }

    fn leading_zeros(&self) -> usize {
        self.int
            .iter()
            .chain(self.frac)
            .take_while(|&&b| b == b'0')
            .count()
    }

    fn is_zero(&self) -> bool {
        self.leading_zeros() == self.len()
    }

    /// Digits before the decimal point in `int ++ frac` once the exponent
    /// is applied (may be negative or past the end).
    fn point(&self) -> i64 {
        self.int.len() as i64 + self.exp
    }

    /// Appends the canonical text: PostgreSQL `numeric_out` of what
    /// `numeric_in` reads, i.e. no exponent, `max(0, frac.len() - exp)`
    /// fractional digits, no sign on zero. `Err` when it would be longer
    /// than [`MAX_DIGITS`] digits or the exponent is out of bounds.
    pub(crate) fn write_canonical(&self, out: &mut Vec<u8>) -> Result<(), TooLong> {
        if self.exp.abs() > MAX_EXPONENT {
            return Err(TooLong);
        }
        let len = self.len() as i64;
        let scale = (self.frac.len() as i64 - self.exp).max(0);
        let point = self.point();
        let lz = self.leading_zeros() as i64;
        // All-zero digits make a zero integer part whatever the exponent.
        let int_digits = if point > lz && lz < len {
            point - lz
        } else {
            0
        };
        if int_digits.max(1) + scale > MAX_DIGITS as i64 {
            return Err(TooLong);
        }
        if self.negative && !self.is_zero() {
            out.push(b'-');
        }
        if int_digits == 0 {
            out.push(b'0');
        } else {
            out.extend((lz..point).map(|i| self.digit(i)));
        }
        if scale > 0 {
            // point + scale == len whenever scale > 0.
            out.push(b'.');
            out.extend((point..len).map(|i| self.digit(i)));
        }
        Ok(())
    }

    /// True when both texts denote the same decimal value (`-0` == `0`).
    pub(crate) fn same_value(&self, other: &Decimal<'_>) -> bool {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return true,
            (false, false) => {}
            _ => return false,
        }
        // Both non-zero: same sign, same significant digits, same position.
        let (a_mag, a) = self.significant();
        let (b_mag, b) = other.significant();
        self.negative == other.negative && a_mag == b_mag && a.eq(b)
    }

    /// How many significant digits the value has (none for zero).
    fn significant_digits(&self) -> usize {
        self.significant().1.count()
    }

    /// The position of the first significant digit relative to the
    /// decimal point, and the digits without leading or trailing zeros.
    fn significant(&self) -> (i64, impl Iterator<Item = &u8> + '_) {
        let lz = self.leading_zeros();
        let tz = self
            .int
            .iter()
            .chain(self.frac)
            .rev()
            .take_while(|&&b| b == b'0')
            .count();
        let digits = self
            .int
            .iter()
            .chain(self.frac)
            .skip(lz)
            .take(self.len().saturating_sub(lz + tz));
        (self.point() - lz as i64, digits)
    }
}

/// A number whose canonical text would be too long.
#[derive(Debug)]
pub(crate) struct TooLong;

/// True when the JSON number `text`, which parses to `parsed`, names that
/// f64 without loss: its decimal value is a shortest round-trip form of
/// `parsed` (no decimal with fewer significant digits parses to it; where
/// two such forms tie, as 1256137158978403.2 and .3 for ...403.25, either
/// one), or the exact binary value. `0.1`, `1e2` and `18446744073709551616`
/// pass, `9007199254740993` and `0.10000000000000001` (which reads back as
/// `0.1`) do not.
pub(crate) fn is_exact_f64(text: &str, parsed: f64) -> bool {
    let Some(given) = Decimal::parse(text) else {
        return false;
    };
    // Display of a finite f64 never uses an exponent and fits the buffer
    // (at most 327 bytes: `-0.` + 323 zeros + a digit).
    let mut buf = StackText::<400>::default();
    if write!(buf, "{parsed}").is_ok() {
        if buf.same_value(&given) {
            return true;
        }
        // Another shortest form: as many digits at most, and the exact value
        // correctly rounded to them (`{:e}` rounds half to even, Display may
        // take the other side of a tie).
        let shortest = buf.decimal().map_or(0, |d| d.significant_digits());
        let digits = given.significant_digits().max(1);
        let mut rounded = StackText::<400>::default();
        if digits <= shortest
            && write!(rounded, "{parsed:.*e}", digits - 1).is_ok()
            && rounded.same_value(&given)
        {
            return true;
        }
    }
    // The exact binary value has at most 1074 fractional digits; only
    // texts that already failed the common check pay for writing them.
    let mut buf = StackText::<1500>::default();
    write!(buf, "{parsed:.1074}").is_ok() && buf.same_value(&given)
}

/// A fixed buffer for one formatted f64: no allocation per metric.
struct StackText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for StackText<N> {
    fn default() -> Self {
        StackText {
            bytes: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> StackText<N> {
    fn decimal(&self) -> Option<Decimal<'_>> {
        Decimal::parse(std::str::from_utf8(&self.bytes[..self.len]).ok()?)
    }

    fn same_value(&self, other: &Decimal<'_>) -> bool {
        self.decimal().is_some_and(|d| d.same_value(other))
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> Option<String> {
        let mut out = Vec::new();
        Decimal::parse(text)?.write_canonical(&mut out).ok()?;
        String::from_utf8(out).ok()
    }

    #[test]
    fn canonical_numbers_are_postgres_numeric_text() {
        for (given, expected) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("1e2", "100"),
            ("1E+2", "100"),
            ("1.50", "1.50"),
            ("100e-2", "1.00"),
            ("1.5e1", "15"),
            ("1E-3", "0.001"),
            ("1e-7", "0.0000001"),
            ("0e-5", "0.00000"),
            ("0e5", "0"),
            ("0.000e2", "0.0"),
            ("0.0001e3", "0.1"),
            ("-12.5e-1", "-1.25"),
            ("1e0000002", "100"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
        ] {
            assert_eq!(canonical(given).as_deref(), Some(expected), "{given}");
            assert_eq!(canonical(expected).as_deref(), Some(expected), "{expected}");
        }
        assert_eq!(canonical("1e400").map(|t| t.len()), Some(401));
    }

    #[test]
    fn too_long_numbers_and_bad_tokens_are_refused() {
        assert!(canonical("1e999").is_some());
        assert!(canonical("1e1000").is_none());
        assert!(canonical("1e-999").is_some());
        assert!(canonical("1e-1000").is_none());
        assert!(canonical("0e2000000000").is_none());
        for bad in ["", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1x", "NaN"] {
            assert!(Decimal::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn exactness_compares_decimal_values() {
        for ok in [
            "450",
            "0.1",
            "1.0",
            "1e2",
            "-0",
            "12.50",
            "5e-324",
            "1e300",
            "18446744073709551616",
            "18446744073709552000",
            "0.1000000000000000055511151231257827021181583404541015625",
            // Both shortest forms of 1256137158978403.25 (found by the property test).
            "1256137158978403.2",
            "1256137158978403.3",
        ] {
            let parsed: f64 = ok.parse().expect("a number");
            assert!(is_exact_f64(ok, parsed), "{ok}");
        }
        for bad in [
            "123456789012345678901234567890",
            "9007199254740993",
            "0.10000000000000001",
            "18446744073709551615",
            "1e-400",
        ] {
            let parsed: f64 = bad.parse().expect("a number");
            assert!(!is_exact_f64(bad, parsed), "{bad}");
        }
    }
}
