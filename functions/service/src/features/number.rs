//! Number parsing for CSV cells without allocation.
//!
//! Most numeric cells are short decimals (`-0.73244835`, `42`, `1.5e3`).
//! For those, [`fast_decimal`] computes the value exactly with Clinger's fast
//! path (a mantissa below 2^53 times or divided by an exact power of ten is
//! correctly rounded by one IEEE operation), straight from the bytes. Anything
//! else (long mantissas, large exponents, `inf`, padding) falls back to
//! [`parse_cell`], which trims and uses the standard library parser.

/// Exact powers of ten representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Largest mantissa the fast path accepts (2^52: exact, and convertible with
/// the bit trick in [`exact_f64`]).
const MAX_EXACT: u64 = 1 << 52;

/// `m as f64` for `m < 2^52`, through the bits of 2^52 + m. Why not `as`:
/// `cvtsi2sd` only writes the low lane of its register, so it waits for the
/// register's previous value, which here is the previous cell's division:
/// that false dependency chained every cell's division to the next one.
#[inline(always)]
fn exact_f64(m: u64) -> f64 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    f64::from_bits(0x4330_0000_0000_0000 | m) - TWO_52
}

/// Below this a mantissa can take 8 more digits without overflowing a u64.
const TAKES_EIGHT: u64 = 100_000_000_000; // 1e11
/// Below this a mantissa can take one more digit.
const TAKES_ONE: u64 = 1_000_000_000_000_000_000; // 1e18

/// The value of 8 ASCII digits at `buf[i..i + 8]`, if they all are digits
/// (SWAR: one 64-bit load instead of eight byte steps).
#[inline(always)]
fn eight_digits(buf: &[u8], i: usize) -> Option<u64> {
    let bytes: [u8; 8] = buf.get(i..i + 8)?.try_into().ok()?;
    let x = u64::from_le_bytes(bytes);
    let all_digits = ((x & 0xF0F0_F0F0_F0F0_F0F0)
        | (((x.wrapping_add(0x0606_0606_0606_0606)) & 0xF0F0_F0F0_F0F0_F0F0) >> 4))
        == 0x3333_3333_3333_3333;
    if !all_digits {
        return None;
    }
    let mut v = x - 0x3030_3030_3030_3030;
    v = v.wrapping_mul(10) + (v >> 8);
    v = ((v & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some(v)
}

/// Appends a run of digits at `buf[*i..]` to `mantissa`; returns how many
/// were read, or `None` if the mantissa would overflow (slow path then).
#[inline(always)]
fn digit_run(buf: &[u8], i: &mut usize, mantissa: &mut u64) -> Option<usize> {
    let start = *i;
    while *mantissa < TAKES_EIGHT {
        match eight_digits(buf, *i) {
            Some(v) => {
                *mantissa = *mantissa * 100_000_000 + v;
                *i += 8;
            }
            None => break,
        }
    }
    while let Some(&c) = buf.get(*i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if *mantissa >= TAKES_ONE {
            return None;
        }
        *mantissa = *mantissa * 10 + u64::from(d);
        *i += 1;
    }
    Some(*i - start)
}

/// Parses `[+-]?digits[.digits][(e|E)[+-]?digits]` starting at `buf[pos]`.
///
/// Returns the value and the index just past the number, or `None` when the
/// bytes are not such a number or the value cannot be computed exactly by the
/// fast path; the caller then looks at the whole cell with [`parse_cell`].
/// Consumes an optional `+` or `-` at `*i`; true for `-`.
#[inline]
fn take_sign(buf: &[u8], i: &mut usize) -> bool {
    match buf.get(*i) {
        Some(b'-') => {
            *i += 1;
            true
        }
        Some(b'+') => {
            *i += 1;
            false
        }
        _ => false,
    }
}

#[inline]
pub(crate) fn fast_decimal(buf: &[u8], pos: usize) -> Option<(f64, usize)> {
    let mut i = pos;
    let negative = take_sign(buf, &mut i);
    let mut mantissa: u64 = 0;
    let int_len = digit_run(buf, &mut i, &mut mantissa)?;
    let mut exponent: i32 = 0;
    let mut frac_len = 0;
    if buf.get(i) == Some(&b'.') {
        i += 1;
        frac_len = digit_run(buf, &mut i, &mut mantissa)?;
        exponent = -(frac_len as i32);
    }
    if int_len == 0 && frac_len == 0 {
        return None;
    }
    if matches!(buf.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = take_sign(buf, &mut i);
        let start_exp = i;
        let mut e: i32 = 0;
        while let Some(&c) = buf.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if e > 10_000 {
                return None;
            }
            e = e * 10 + i32::from(d);
            i += 1;
        }
        if i == start_exp {
            return None;
        }
        exponent += if exp_negative { -e } else { e };
    }
    if mantissa >= MAX_EXACT {
        return None;
    }
    let m = exact_f64(mantissa);
    let value = if exponent == 0 {
        m
    } else if (1..=22).contains(&exponent) {
        m * POW10[exponent as usize]
    } else if (-22..0).contains(&exponent) {
        m / POW10[(-exponent) as usize]
    } else if mantissa == 0 {
        0.0
    } else {
        return None;
    };
    Some((if negative { -value } else { value }, i))
}

/// What a whole cell holds when read as a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CellNumber {
    /// Empty or blank: a missing value.
    Missing,
    /// A finite number.
    Finite(f64),
    /// `inf`, `NaN`, `1e999`...: looks numeric but is not allowed.
    NonFinite,
    /// Not a number at all (text).
    NotNumber,
}

/// Reads a whole cell (already unquoted) as a number.
pub(crate) fn parse_cell(cell: &[u8]) -> CellNumber {
    let trimmed = cell.trim_ascii();
    if trimmed.is_empty() {
        return CellNumber::Missing;
    }
    if let Some((v, end)) = fast_decimal(trimmed, 0) {
        if end == trimmed.len() {
            return CellNumber::Finite(v);
        }
    }
    let Ok(text) = std::str::from_utf8(trimmed) else {
        return CellNumber::NotNumber;
    };
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => CellNumber::Finite(v),
        Ok(_) => CellNumber::NonFinite,
        Err(_) => CellNumber::NotNumber,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_matches_std_on_typical_cells() {
        for s in [
            "0",
            "-0.73244835",
            "707.450917",
            "3.84097889",
            "-869.587696",
            "1e3",
            "2.5E-3",
            "+12",
            ".5",
            "5.",
            "123456789012345678",
            "0.000000000000000000001",
            "9007199254740993",
            "12345678.87654321",
            "0.0000000012345678",
            "-123456789012.5",
            "99999999999999999999",
        ] {
            let expected: f64 = s.parse().unwrap();
            match fast_decimal(s.as_bytes(), 0) {
                Some((v, end)) => {
                    assert_eq!(end, s.len(), "{s}");
                    assert_eq!(v.to_bits(), expected.to_bits(), "{s}");
                }
                None => assert_eq!(
                    parse_cell(s.as_bytes()),
                    CellNumber::Finite(expected),
                    "{s}"
                ),
            }
        }
    }

    #[test]
    fn stops_at_the_cell_end() {
        assert_eq!(fast_decimal(b"12,3", 0), Some((12.0, 2)));
        assert_eq!(fast_decimal(b"x,12\n", 2), Some((12.0, 4)));
        assert_eq!(fast_decimal(b"-", 0), None);
        assert_eq!(fast_decimal(b"1e", 0), None);
    }

    #[test]
    fn cells_classify() {
        assert_eq!(parse_cell(b""), CellNumber::Missing);
        assert_eq!(parse_cell(b"  "), CellNumber::Missing);
        assert_eq!(parse_cell(b" 4 "), CellNumber::Finite(4.0));
        assert_eq!(parse_cell(b"inf"), CellNumber::NonFinite);
        assert_eq!(parse_cell(b"NaN"), CellNumber::NonFinite);
        assert_eq!(parse_cell(b"-Infinity"), CellNumber::NonFinite);
        assert_eq!(parse_cell(b"1e999"), CellNumber::NonFinite);
        assert_eq!(parse_cell(b"pro"), CellNumber::NotNumber);
        assert_eq!(parse_cell(b"1_000"), CellNumber::NotNumber);
        assert_eq!(parse_cell(b"1e400").clone(), CellNumber::NonFinite);
        assert_eq!(
            parse_cell(b"1.7976931348623157e308"),
            CellNumber::Finite(f64::MAX)
        );
    }
}
