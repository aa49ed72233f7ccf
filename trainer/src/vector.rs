//! Loops over f32 slices written so that the compiler vectorises them, and the switch that
//! compiles a loop for AVX2 and FMA where the CPU has them (the baseline x86-64 build has
//! only SSE2: four lanes, no fused multiply-add, and no vector rounding).

/// Defines a function whose body is compiled twice, for the baseline target and for AVX2
/// and FMA, and picks at run time: a loop over slices then runs eight lanes at a time where
/// the CPU allows, with one copy of its source.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            if $crate::vector::simd() {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                // SAFETY: `simd` found AVX2 and FMA on this CPU.
                return unsafe { avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// Whether loops may be compiled for AVX2 and FMA (eight lanes at a time, where
/// the baseline x86-64 build has four).
#[cfg(target_arch = "x86_64")]
pub fn simd() -> bool {
    static FEATURES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FEATURES.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// `eˣ` as Cephes' `expf` computes it: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, a degree-7
/// polynomial for `eʳ`, and `2ⁿ` built in the exponent bits; within 2 ulp of libm's over
/// the range kept, and branch-free, so a loop of it compiles to vector instructions (libm's
/// `expf` is a call per element). Inputs are clamped to [−87.3, 88]: below, the result is
/// ≈ 1e-38 rather than a subnormal or 0; above, ≈ 1.7e38 rather than infinity.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n is an integer in [−126, 127]: 2ⁿ has the biased exponent n + 127 and no mantissa.
    let n = t.to_bits() as i32 - ROUND.to_bits() as i32;
    f32::from_bits(((n + 127) << 23) as u32) * y
}

/// `a · b` with eight partial sums (one vector register's worth).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for (acc, (x, y)) in acc.iter_mut().zip(x.iter().zip(y)) {
            *acc += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest value (−∞ for none; NaN is skipped unless all are NaN).
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

simd_fn! {
    /// `out[i] = e^(x[i] − shift)`, and the sum of `out`.
    pub fn exp_shifted(x: &[f32], shift: f32, out: &mut [f32]) -> f32 {
        assert_eq!(x.len(), out.len());
        let mut acc = [0f32; 8];
        let mut xs = x.chunks_exact(8);
        let mut outs = out.chunks_exact_mut(8);
        for (x, o) in (&mut xs).zip(&mut outs) {
            for ((a, o), &x) in acc.iter_mut().zip(o).zip(x) {
                *o = exp(x - shift);
                *a += *o;
            }
        }
        let mut tail = 0.0;
        for (o, &x) in outs.into_remainder().iter_mut().zip(xs.remainder()) {
            *o = exp(x - shift);
            tail += *o;
        }
        acc.iter().sum::<f32>() + tail
    }
}

#[cfg(test)]
mod tests {
    use super::{exp, exp_shifted, max};

    #[test]
    fn the_polynomial_exp_stays_within_two_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, libm) = (exp(x), x.exp());
            let ulp = (libm.to_bits() as i64 - ours.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {ours}, libm {libm} ({ulp} ulp)");
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e30) > 0.0 && exp(-1e30) < 1e-37);
        assert!(exp(f32::INFINITY).is_finite());
    }

    #[test]
    fn shifted_exps_and_their_sum_match_libm_for_every_tail_length() {
        for n in [0usize, 1, 7, 8, 9, 100] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
            let m = max(&x);
            let want_max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(m, want_max);
            let mut out = vec![0.0; n];
            let sum = exp_shifted(&x, m, &mut out);
            let mut want = 0.0f64;
            for (o, &v) in out.iter().zip(&x) {
                let e = (v - m).exp();
                assert!((o - e).abs() <= 1e-6 * e, "{o} vs {e}");
                want += f64::from(e);
            }
            assert!((f64::from(sum) - want).abs() <= 1e-5 * want.max(1.0));
        }
    }
}
