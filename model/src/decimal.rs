//! Fixed-point decimal text of an `f64` without the formatting machinery:
//! the same characters as `format!("{:.N}", x)`, several times faster for
//! the values a scores file is made of (probabilities, feature values).
//!
//! `format!` computes the exact decimal expansion of the binary value and
//! rounds it (ties to even). Here `x * 10^N` is rounded instead; the product
//! carries at most half an ulp of error, far below the distance to a
//! rounding boundary except near ties. So the fast path is taken only when
//! the scaled value is below 1e9 (error under 1.2e-7) and its fraction is at
//! least 1e-6 away from one half; everything else (near-ties, huge or
//! non-finite values) goes through `format!`, so the output is always
//! identical to it. Writing a scores file spent most of its time in float
//! formatting before this.

/// Largest `N` supported by the fast path (10^N must be exact in an f64).
const MAX_DECIMALS: usize = 9;
const POW10: [f64; MAX_DECIMALS + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Appends `x` with exactly `decimals` digits after the point, as
/// `format!("{x:.decimals$}")` would.
pub fn push_fixed(out: &mut String, x: f64, decimals: usize) {
    out.push_str(fixed(x, decimals).as_str());
}

/// `x` with exactly `decimals` digits after the point, as
/// `format!("{x:.decimals$}")` would; no allocation on the fast path.
pub fn fixed(x: f64, decimals: usize) -> Fixed {
    match fast_scaled(x, decimals) {
        Some(scaled) => {
            let mut text = Fixed::Short([0; SHORT], 0);
            push_digits(&mut text, x.is_sign_negative(), scaled, decimals);
            text
        }
        None => Fixed::Long(format!("{x:.decimals$}")),
    }
}

/// Room for the fast path's longest text: sign, 10 integer digits, point, 9 decimals.
const SHORT: usize = 24;

/// The text of [`fixed`]: inline when short (always on the fast path).
#[derive(Debug, Clone)]
pub enum Fixed {
    Short([u8; SHORT], usize),
    Long(String),
}

impl Fixed {
    /// The characters' bytes (ASCII on the fast path).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Fixed::Short(bytes, len) => &bytes[..*len],
            Fixed::Long(s) => s.as_bytes(),
        }
    }

    /// The characters.
    pub fn as_str(&self) -> &str {
        match self {
            // Only ASCII digits, '-' and '.' are ever written inline.
            Fixed::Short(bytes, len) => std::str::from_utf8(&bytes[..*len]).unwrap_or_default(),
            Fixed::Long(s) => s,
        }
    }
}

impl std::fmt::Write for Fixed {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        match self {
            Fixed::Short(bytes, len) if *len + s.len() <= SHORT => {
                bytes[*len..*len + s.len()].copy_from_slice(s.as_bytes());
                *len += s.len();
                Ok(())
            }
            Fixed::Short(..) => Err(std::fmt::Error),
            Fixed::Long(text) => {
                text.push_str(s);
                Ok(())
            }
        }
    }
}

/// `|x| * 10^decimals` rounded, when that is certainly what exact rounding gives.
fn fast_scaled(x: f64, decimals: usize) -> Option<u64> {
    if decimals > MAX_DECIMALS || !x.is_finite() {
        return None;
    }
    let scaled = x.abs() * POW10[decimals];
    if scaled >= 1e9 {
        return None;
    }
    let fraction = scaled - scaled.floor();
    if (fraction - 0.5).abs() < 1e-6 {
        return None;
    }
    Some(scaled.round() as u64)
}

fn push_digits(out: &mut Fixed, negative: bool, scaled: u64, decimals: usize) {
    let Fixed::Short(bytes, len) = out else {
        return;
    };
    // Rust prints the sign of every negative value, zero included ("-0.000").
    if negative {
        bytes[*len] = b'-';
        *len += 1;
    }
    // All the digits of `scaled`, zero-padded to one before the point, then
    // the point put in: no division by a power of ten unknown at compile time.
    let mut all = [b'0'; 20];
    let n = digits_from_end(scaled, &mut all).max(decimals + 1);
    let digits = &all[all.len() - n..];
    let (int, frac) = digits.split_at(n - decimals);
    bytes[*len..*len + int.len()].copy_from_slice(int);
    *len += int.len();
    if decimals == 0 {
        return;
    }
    bytes[*len] = b'.';
    bytes[*len + 1..*len + 1 + frac.len()].copy_from_slice(frac);
    *len += frac.len() + 1;
}

/// Writes the decimal digits of `n` at the end of `out` (room for 20),
/// right-aligned, and returns how many; what is left of them is untouched.
fn digits_from_end(mut n: u64, out: &mut [u8; 20]) -> usize {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.len() - i
}

/// Writes the decimal digits of `n` at the start of `out` (room for 20),
/// returns how many.
fn digits_of(n: u64, out: &mut [u8]) -> usize {
    let mut tmp = [0u8; 20];
    let k = digits_from_end(n, &mut tmp);
    out[..k].copy_from_slice(&tmp[20 - k..]);
    k
}

/// Writes `n` as `write!(w, "{n}")` would, without the formatting machinery.
pub fn write_integer<W: std::fmt::Write>(w: &mut W, n: i64) -> std::fmt::Result {
    let mut buf = [0u8; 21];
    let mut len = 0;
    if n < 0 {
        buf[0] = b'-';
        len = 1;
    }
    len += digits_of(n.unsigned_abs(), &mut buf[len..]);
    // Only ASCII digits and '-' were written.
    w.write_str(std::str::from_utf8(&buf[..len]).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn same_as_format(x: f64, decimals: usize) {
        let mut ours = String::new();
        push_fixed(&mut ours, x, decimals);
        assert_eq!(
            ours,
            format!("{x:.decimals$}"),
            "x = {x:e}, {decimals} decimals"
        );
    }

    #[test]
    fn matches_format_on_random_values_of_every_scale() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..200_000 {
            let mantissa: f64 = rng.gen_range(-1.0..1.0);
            let x = mantissa * 10f64.powi(rng.gen_range(-8..12));
            same_as_format(x, rng.gen_range(0..=9));
        }
        for _ in 0..200_000 {
            same_as_format(rng.gen::<f64>(), 6);
        }
    }

    #[test]
    fn integers_match_format() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let edges = [
            0,
            1,
            -1,
            9,
            10,
            -10,
            i64::MAX,
            i64::MIN,
            999_999_999_999_999,
        ];
        let random = (0..100_000).map(|_| rng.gen::<i64>() >> rng.gen_range(0..63));
        for n in edges.into_iter().chain(random) {
            let mut ours = String::new();
            write_integer(&mut ours, n).unwrap();
            assert_eq!(ours, n.to_string());
        }
    }

    #[test]
    fn ties_negative_zero_and_edges_match_format() {
        for x in [
            0.5,
            1.5,
            2.5,
            0.25,
            0.125,
            0.0005,
            0.0015,
            1.0005,
            -0.0001,
            -0.0,
            0.0,
            1e-300,
            0.9999995,
            0.1234565,
            999_999_999.5,
            1e20,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            for decimals in 0..=10 {
                same_as_format(x, decimals);
            }
        }
        // Every multiple of 1/1024 below 4 (many exact ties at 3 decimals).
        for k in 0..4096 {
            same_as_format(k as f64 / 1024.0, 3);
        }
    }
}
