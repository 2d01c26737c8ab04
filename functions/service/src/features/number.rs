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
    Some(eight_digit_value(x))
}

/// The value of 8 ASCII digits in `x` (the first digit in the lowest byte),
/// which the caller has checked are digits.
#[inline(always)]
fn eight_digit_value(x: u64) -> u64 {
    let mut v = x - 0x3030_3030_3030_3030;
    v = v.wrapping_mul(10) + (v >> 8);
    ((v & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
        >> 32
}

/// Per byte of `x`, the high bit set when the byte is not an ASCII digit.
#[inline(always)]
fn non_digit_bytes(x: u128) -> u128 {
    const ZEROS: u128 = u128::from_le_bytes([b'0'; 16]);
    const LOW7: u128 = u128::from_le_bytes([0x7F; 16]);
    const TO_TEN: u128 = u128::from_le_bytes([0x76; 16]);
    const HIGH: u128 = u128::from_le_bytes([0x80; 16]);
    // `t` is the digit value for a digit; adding 0x76 to its low 7 bits sets
    // the high bit from 10 up (no carry leaves a byte: 0x7F + 0x76 < 0x100).
    let t = x ^ ZEROS;
    (t | ((t & LOW7) + TO_TEN)) & HIGH
}

/// The low `n` bytes of a `u128` set (`n < 16`).
#[inline(always)]
fn low_bytes(n: usize) -> u128 {
    (1u128 << (8 * n)) - 1
}

/// The common cell in one 16-byte window, without a loop per digit:
/// `digits[.digits]` at `buf[i..]`, followed inside the window by a byte
/// that is not a digit, `.`, `e` or `E` (so at most 15 digits, 14 with a
/// point). Returns the unsigned value and the index past the number, or
/// `None` for anything else (no 16 bytes left, an exponent, more digits):
/// [`long_decimal`] then reads it. Both compute the same mantissa and power
/// of ten, so the same bits.
#[inline(always)]
fn short_decimal(buf: &[u8], i: usize) -> Option<(f64, usize)> {
    // Two word loads straight into registers (a 16-byte array would go
    // through the stack, and its halves' loads wait on the store).
    let window = buf.get(i..i + 16)?;
    let word = |k: usize| u64::from_le_bytes(window[k..k + 8].try_into().unwrap_or_default());
    let x = u128::from(word(0)) | (u128::from(word(8)) << 64);
    let byte = |k: usize| (x >> (8 * k)) as u8;
    let stops = non_digit_bytes(x);
    if stops == 0 {
        return None;
    }
    let first = (stops.trailing_zeros() / 8) as usize;
    let (digits, frac, end) = if byte(first) == b'.' {
        let rest = stops & (stops - 1);
        if rest == 0 {
            return None;
        }
        let end = (rest.trailing_zeros() / 8) as usize;
        // Drop the point: the fraction's bytes move down one place.
        let joined = (x & low_bytes(first)) | ((x >> 8) & low_bytes(end - 1) & !low_bytes(first));
        (joined, end - first - 1, end)
    } else {
        (x & low_bytes(first), 0, first)
    };
    let n = end - usize::from(end != first);
    if n == 0 || matches!(byte(end), b'.' | b'e' | b'E') {
        return None;
    }
    // Right-align the n digits in 16 bytes, leading zeros in front.
    let shift = 16 - n;
    let aligned = (digits << (8 * shift)) | (u128::from_le_bytes([b'0'; 16]) & low_bytes(shift));
    let high = eight_digit_value(aligned as u64);
    let low = eight_digit_value((aligned >> 64) as u64);
    // At most 15 digits: below 10^15 < 2^52, exact.
    let m = exact_f64(high * 100_000_000 + low);
    let value = if frac == 0 { m } else { m / POW10[frac] };
    Some((value, i + end))
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

/// Parses `[+-]?digits[.digits][(e|E)[+-]?digits]` starting at `buf[pos]`.
///
/// Returns the value and the index just past the number, or `None` when the
/// bytes are not such a number or the value cannot be computed exactly by the
/// fast path; the caller then looks at the whole cell with [`parse_cell`].
///
/// The common short cell is read inline in the caller's loop; the rest out
/// of line ([`long_decimal`]), so the result stays in a register rather
/// than passing through memory.
#[inline(always)]
pub(crate) fn fast_decimal(buf: &[u8], pos: usize) -> Option<(f64, usize)> {
    // The sign without a branch: signs are random in real data, and a
    // mispredicted branch per cell cost as much as the rest of the window.
    let lead = buf.get(pos).copied().unwrap_or(0);
    let negative = lead == b'-';
    let sign_bit = u64::from(negative) << 63;
    if let Some((value, end)) = short_decimal(buf, pos + usize::from(negative | (lead == b'+'))) {
        return Some((f64::from_bits(value.to_bits() | sign_bit), end));
    }
    long_decimal(buf, pos)
}

/// [`fast_decimal`] digit by digit: exponents, long mantissas, the end of
/// the buffer.
#[inline(never)]
fn long_decimal(buf: &[u8], pos: usize) -> Option<(f64, usize)> {
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

    /// Decimals of every length from 1 to 17 digits, with the point at every
    /// place, signs and exponents, read both with 16 bytes of room after them
    /// behind one of several terminators (the one-window path) and at the
    /// end of the buffer (the digit loop): both give std's bits and the digit
    /// loop's result, or leave the cell to the slow path; every plain decimal
    /// that fits the window is read by it.
    #[test]
    fn window_and_loop_agree_with_std() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Terminators the window must stop at, each with room after it.
        let tails = [
            ",1234567890123456789",
            "\n1234567890123456789",
            "\r\n123456789012345678",
            ";1234567890123456789",
            "\"xxxxxxxxxxxxxxxxxxx",
            "\u{e9}xxxxxxxxxxxxxxxxxx",
            "-1234567890123456789",
        ];
        let bits = |r: Option<(f64, usize)>| r.map(|(v, end)| (v.to_bits(), end));
        for _ in 0..200_000 {
            let len = (next() % 17 + 1) as usize;
            let mut body: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            let point = (next() % (len as u64 + 2)) as usize;
            if point <= len {
                body.insert(point, '.');
            }
            let sign = ["-", "+", ""][(next() % 3) as usize];
            let exponent = match next() % 4 {
                0 => format!("e{}", next() % 30),
                1 => format!("E-{}", next() % 30),
                _ => String::new(),
            };
            let s = format!("{sign}{body}{exponent}");
            let Ok(expected) = s.parse::<f64>() else {
                continue;
            };
            let tail = tails[(next() % tails.len() as u64) as usize];
            for tail in [tail, ""] {
                let cell = format!("{s}{tail}");
                let got = fast_decimal(cell.as_bytes(), 0);
                assert_eq!(bits(got), bits(long_decimal(cell.as_bytes(), 0)), "{cell}");
                match got {
                    Some((v, end)) => {
                        assert_eq!(end, s.len(), "{cell}");
                        assert_eq!(v.to_bits(), expected.to_bits(), "{cell}");
                    }
                    None => match parse_cell(s.as_bytes()) {
                        CellNumber::Finite(v) => assert_eq!(v.to_bits(), expected.to_bits()),
                        other => panic!("{s}: {other:?}"),
                    },
                }
            }
            // Every plain decimal that fits the window is read by it.
            if exponent.is_empty() && body.len() <= 15 {
                let cell = format!("{s}{tail}");
                let window = short_decimal(cell.as_bytes(), sign.len());
                assert!(window.is_some(), "{cell}");
            }
        }
        for cell in [".", "+", "-", "-.", "+-5", "--5", "-e5"] {
            let padded = format!("{cell},1234567890123456789");
            assert_eq!(fast_decimal(padded.as_bytes(), 0), None, "{cell}");
        }
        let negative_zero = fast_decimal(b"-0,1234567890123456789", 0);
        assert_eq!(bits(negative_zero), Some(((-0.0f64).to_bits(), 2)));
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
