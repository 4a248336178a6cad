//! IEEE 754 half precision (`FP16`) to and from `f32`, for FP16 tensors sent or
//! answered as JSON numbers. Conversion to half rounds to nearest, ties to even;
//! overflow becomes infinity and NaN stays NaN.

/// The half-precision bits nearest to `x`.
pub(super) fn from_f32(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x007f_ffff;
    if exp == 0xff {
        // Infinity or NaN (keep NaN quiet and non-zero).
        let nan = if man != 0 { 0x0200 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero): shift the implicit-one mantissa into place.
        if e < -10 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rest = m & ((1 << shift) - 1);
        let midpoint = 1 << (shift - 1);
        let round = rest > midpoint || (rest == midpoint && half & 1 == 1);
        return sign | (half as u16 + u16::from(round));
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    let round = rest > 0x1000 || (rest == 0x1000 && half & 1 == 1);
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    sign | (half + u32::from(round)) as u16
}

/// The `f32` value of half-precision bits (exact).
pub(super) fn to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x03ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip() {
        for (x, h) in [
            (0.0f32, 0x0000u16),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (0.5, 0x3800),
            (65504.0, 0x7bff),
            (f32::INFINITY, 0x7c00),
            (5.960_464_5e-8, 0x0001),
        ] {
            assert_eq!(from_f32(x), h, "{x}");
            assert_eq!(to_f32(h), x, "{h:#x}");
        }
        assert!(to_f32(from_f32(f32::NAN)).is_nan());
        // Too large for half: infinity; too small: zero.
        assert_eq!(from_f32(1e6), 0x7c00);
        assert_eq!(from_f32(1e-9), 0x0000);
        // Rounds to nearest: 1 + 2^-11 is a tie between 1 and 1 + 2^-10 (even: 1).
        assert_eq!(from_f32(1.0 + f32::powi(2.0, -11)), 0x3c00);
        assert_eq!(from_f32(1.0 + 3.0 * f32::powi(2.0, -11)), 0x3c02);
        // Every half value survives the trip through f32.
        for h in 0..=u16::MAX {
            let x = to_f32(h);
            if !x.is_nan() {
                assert_eq!(from_f32(x), h, "{h:#x}");
            }
        }
    }
}
