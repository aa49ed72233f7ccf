//! The rollout copy of a weight: int8 values with one f32 scale per output row, for the
//! products of decoding (1 to [`MAX_ROWS`] rows) when generation asks for
//! [`super::Precision::Int8`].
//!
//! Why: a decode step reads every weight of the model once per token, so on a CPU its time
//! is the time to stream the weights from memory. In f32 the 0.5B default model is 2 GB per
//! token; in int8 it is a quarter of that. Real RL stacks roll out in reduced precision
//! (vLLM in bf16) and train in f32, recomputing the log-probs the update needs with the
//! training weights; the trainer does the same, so only sampling sees this copy.
//!
//! Symmetric per-row quantisation: `q = round(w / s)` with `s = max |w_row| / 127`, so the
//! largest weight of each output row is exact and the rest are within `s / 2`. The product
//! dequantises on the fly (`x · q · s`), in f32, so activations are never rounded: the
//! error is the weights' alone, and the bench reports what it does to the next-token
//! distribution (KL and greedy agreement against f32).
//!
//! The copy is made at the first int8 product after the weight changes (a load, an optimiser
//! step: the weight's version counter, as for the packed copy) or ahead of time by
//! [`Cache::refresh`]. It needs an x86-64 CPU with AVX2 and FMA; elsewhere the f32 paths run
//! instead, and [`available`] says so.

use std::sync::{Mutex, MutexGuard};

use tch::{Device, Kind, Tensor};

use super::WeightKey;
use super::few_rows::MAX_ROWS;

/// Below this many multiply-adds a product runs on one thread: waking another costs more.
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// The quantised weight and what it was made from.
struct Quantized {
    /// The weight it was made from.
    key: WeightKey,
    /// `n × k` values, row-major.
    values: Vec<i8>,
    /// One per output row.
    scales: Vec<f32>,
}

/// The int8 copy of a [`super::Linear`]'s weight.
#[derive(Default)]
pub(super) struct Cache(Mutex<Option<Quantized>>);

/// Whether this CPU runs the int8 kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Cache {
    /// The copy for `w` (a contiguous f32 CPU matrix), made again if `w` changed since.
    fn current(&self, w: &Tensor) -> MutexGuard<'_, Option<Quantized>> {
        // A poisoned lock only means another product panicked; the copy is checked below.
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = WeightKey::of(w);
        let fresh = slot.as_ref().is_some_and(|q| q.key == key);
        if !fresh {
            *slot = None;
            let (n, k) = (w.size()[0] as usize, w.size()[1] as usize);
            // SAFETY: `w` is a contiguous n × k f32 CPU tensor (checked by the callers), alive
            // and not written for the duration of this borrow.
            let data = unsafe { std::slice::from_raw_parts(w.data_ptr() as *const f32, n * k) };
            let (values, scales) = quantize(data, n, k);
            *slot = Some(Quantized {
                key,
                values,
                scales,
            });
        }
        slot
    }

    /// Makes the copy now if `w` changed since it was made, so that the cost falls at a
    /// known time (after an optimiser step) rather than in the first decode step.
    pub(super) fn refresh(&self, w: &Tensor) {
        if is_quantizable(w) {
            drop(self.current(w));
        }
    }

    /// Bytes held by the copy (0 before the first int8 product).
    pub(super) fn bytes(&self) -> usize {
        let slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .map_or(0, |q| q.values.len() + 4 * q.scales.len())
    }

    /// `y = x · (q · s)ᵀ + b` for `m` rows (`x` m × k, `y` m × n) from the copy of `w`, made
    /// again first if `w` changed, where [`applies`]`(m)`. The caller has checked that `w` is
    /// a contiguous f32 CPU `[n, k]` matrix and the slices' lengths.
    pub(super) fn product(
        &self,
        w: &Tensor,
        b: Option<&[f32]>,
        x: &[f32],
        m: usize,
        y: &mut [f32],
    ) {
        let (n, k) = (w.size()[0] as usize, w.size()[1] as usize);
        assert!(x.len() == m * k && y.len() == m * n && b.is_none_or(|b| b.len() == n));
        let slot = self.current(w);
        let Some(q) = slot.as_ref() else {
            unreachable!("`current` leaves a copy in the slot")
        };
        let ops = Operands {
            x: x.as_ptr(),
            w: q.values.as_ptr(),
            scales: q.scales.as_ptr(),
            b: b.map(<[f32]>::as_ptr),
            y: y.as_mut_ptr(),
            m,
            n,
            k,
        };
        // SAFETY: `x` (m × k), `b` (n) and `y` (m × n) hold those many values (checked
        // above), `q` n × k values and n scales; all stay alive (the lock is held) for the
        // call, which writes `y` only; `applies` found AVX2 and FMA.
        unsafe { product_raw(ops) };
    }
}

/// Whether the kernel takes a product of `m` rows on this CPU.
pub(super) fn applies(m: usize) -> bool {
    (1..=MAX_ROWS as usize).contains(&m) && available()
}

fn is_quantizable(w: &Tensor) -> bool {
    w.device() == Device::Cpu && w.kind() == Kind::Float && w.dim() == 2 && w.is_contiguous()
}

/// Per-row symmetric int8: the values and one scale per row.
fn quantize(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    let mut values = vec![0i8; n * k];
    let mut scales = vec![0f32; n];
    let parts = if n * k >= MIN_PARALLEL_WORK * 16 {
        usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1)
    } else {
        1
    };
    let per_part = n.div_ceil(parts);
    let out = RowsOut {
        values: values.as_mut_ptr(),
        scales: scales.as_mut_ptr(),
    };
    crate::threads::for_each_part(n.div_ceil(per_part.max(1)), &|part| {
        // The whole struct, not its fields (closures capture fields separately).
        let out: &RowsOut = &out;
        let (r0, r1) = (part * per_part, ((part + 1) * per_part).min(n));
        for r in r0..r1 {
            let row = &w[r * k..(r + 1) * k];
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 && max.is_finite() {
                max / 127.0
            } else {
                1.0
            };
            let inv = 1.0 / scale;
            // SAFETY: each part writes rows r0..r1 only, disjoint from the other parts'; the
            // vectors outlive `for_each_part`, which joins every part before returning.
            unsafe {
                *out.scales.add(r) = scale;
                for (c, v) in row.iter().enumerate() {
                    *out.values.add(r * k + c) = (v * inv).round().clamp(-127.0, 127.0) as i8;
                }
            }
        }
    });
    (values, scales)
}

/// Where the quantising parts write; each part writes its own rows.
#[derive(Clone, Copy)]
struct RowsOut {
    values: *mut i8,
    scales: *mut f32,
}
// SAFETY: the parts write disjoint rows (see `quantize`).
unsafe impl Send for RowsOut {}
// SAFETY: as for `Send` above: shared only as the disjoint writes described there.
unsafe impl Sync for RowsOut {}

/// Raw pointers that the worker threads share; each writes its own columns of `y`.
#[derive(Clone, Copy)]
struct Operands {
    x: *const f32,
    w: *const i8,
    scales: *const f32,
    b: Option<*const f32>,
    y: *mut f32,
    m: usize,
    n: usize,
    k: usize,
}

// SAFETY: the pointers are only read, except `y`, of which every thread writes a disjoint
// set of columns; `product` joins the threads before it returns.
unsafe impl Send for Operands {}
// SAFETY: as for `Send` above: shared only as the disjoint writes described there.
unsafe impl Sync for Operands {}

/// # Safety
/// `ops.x`, `w`, `scales`, `b`, `y` point to m × k, n × k, n, n and m × n values; only `y`
/// is written; the CPU has AVX2 and FMA.
unsafe fn product_raw(ops: Operands) {
    let Operands { m, n, k, .. } = ops;
    let parallel = m * n * k >= MIN_PARALLEL_WORK;
    crate::threads::for_column_ranges(n, panel_rows(m.min(ROW_BLOCK)), parallel, &|n0, n1| {
        // SAFETY: forwarded from the caller; the ranges are disjoint and within 0..n.
        unsafe { columns(ops, n0, n1) }
    });
}

/// Input rows taken together against a panel of weight rows: AVX2's 16 registers hold
/// `mr × panel` accumulators, the panel's converted weight vectors and one input vector.
const ROW_BLOCK: usize = 4;

const fn panel_rows(mr: usize) -> usize {
    match mr {
        0..=1 => 7,
        2 => 4,
        _ => 3,
    }
}

/// # Safety
/// As [`product_raw`], with `n0 <= n1 <= n`.
unsafe fn columns(ops: Operands, n0: usize, n1: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `product` runs the kernel only where `applies` found AVX2 and FMA.
    unsafe {
        avx2::columns(ops, n0, n1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ops, n0, n1);
        unreachable!("the int8 kernel is only selected on x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Operands, ROW_BLOCK, panel_rows};
    use crate::model::linear::x86::sum8;
    use std::arch::x86_64::*;

    const LANES: usize = 8;

    /// # Safety
    /// As `super::columns`, on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn columns(ops: Operands, n0: usize, n1: usize) {
        let nr = panel_rows(ops.m.min(ROW_BLOCK));
        crate::model::linear::for_each_panel(ops.m, n0, n1, nr, ROW_BLOCK, |i, mr, j, width| {
            // SAFETY: rows i..i+mr of x and y, weight rows j..j+width, all in bounds.
            unsafe { dispatch(ops, i, mr, j, width) }
        });
    }

    /// Calls the panel kernel monomorphised for `mr` input rows and `width` weight rows.
    /// `width` is 1 or the panel width of the first (widest) row block, which a later,
    /// shorter block also fits in its registers.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dispatch(ops: Operands, i: usize, mr: usize, j: usize, width: usize) {
        macro_rules! go {
            ($($mr:literal),*) => {
                match (mr, width) {
                    $(
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 1) => unsafe { panel::<$mr, 1>(ops, i, j) },
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 3) => unsafe { panel::<$mr, 3>(ops, i, j) },
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 4) => unsafe { panel::<$mr, 4>(ops, i, j) },
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 7) => unsafe { panel::<$mr, 7>(ops, i, j) },
                    )*
                    _ => unreachable!("panel widths come from panel_rows"),
                }
            };
        }
        go!(1, 2, 3, 4)
    }

    /// Eight int8 values at `p` as f32 lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load8(p: *const i8) -> __m256 {
        // SAFETY: the caller passes 8 readable bytes.
        let bytes = unsafe { _mm_loadl_epi64(p as *const __m128i) };
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes))
    }

    /// `y[i..i+MR][j..j+NR] = (x[i..i+MR] · q[j..j+NR]ᵀ) · s[j..j+NR] (+ b[j..j+NR])`.
    // Indexing reads as the register block it is: `acc[r][q]` is weight row r by input row q.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn panel<const MR: usize, const NR: usize>(ops: Operands, i: usize, j: usize) {
        let k = ops.k;
        // Bounds every pointer below relies on: rows i..i+MR < m of x, rows j..j+NR <= n of w, and
        // offsets < k within a row, as `columns` guarantees.
        // SAFETY: input row i < m of x (m × k), as `columns` guarantees.
        let x = unsafe { ops.x.add(i * k) };
        // SAFETY: weight row j < n of w (n × k), as `columns` guarantees.
        let w = unsafe { ops.w.add(j * k) };
        let mut acc = [[_mm256_setzero_ps(); MR]; NR];
        let full = k / LANES * LANES;
        let mut c = 0;
        while c < full {
            let mut wv = [_mm256_setzero_ps(); NR];
            for (r, v) in wv.iter_mut().enumerate() {
                // SAFETY: weight row j + r < n, offset c < k within it.
                let at = unsafe { w.add(r * k + c) };
                // The same place in the next panel, a cache line at a time: the hardware
                // prefetcher alone keeps too few reads in flight across NR row streams.
                if c % 64 == 0 {
                    _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(NR * k));
                }
                // SAFETY: c + 8 <= k: `at` starts 8 readable int8 values.
                *v = unsafe { load8(at) };
            }
            for q in 0..MR {
                // SAFETY: input row i + q < m, c + 8 <= k.
                let xv = unsafe { _mm256_loadu_ps(x.add(q * k + c)) };
                for r in 0..NR {
                    acc[r][q] = _mm256_fmadd_ps(wv[r], xv, acc[r][q]);
                }
            }
            c += LANES;
        }
        let mut sums = [[0f32; MR]; NR];
        for r in 0..NR {
            for q in 0..MR {
                sums[r][q] = sum8(acc[r][q]);
            }
        }
        // The tail of a row whose length is not a multiple of 8.
        for c in full..k {
            for r in 0..NR {
                // SAFETY: weight row j + r < n, tail offset c < k.
                let wq = f32::from(unsafe { *w.add(r * k + c) });
                for q in 0..MR {
                    // SAFETY: input row i + q < m, tail offset c < k.
                    sums[r][q] += wq * unsafe { *x.add(q * k + c) };
                }
            }
        }
        for r in 0..NR {
            // SAFETY: one scale per weight row, and j + r < n.
            let scale = unsafe { *ops.scales.add(j + r) };
            let bias = match ops.b {
                // SAFETY: the bias holds n values and j + r < n.
                Some(b) => unsafe { *b.add(j + r) },
                None => 0.0,
            };
            for q in 0..MR {
                // SAFETY: (i + q, j + r) is within y (m × n), and only this panel writes it.
                unsafe { *ops.y.add((i + q) * ops.n + j + r) = sums[r][q] * scale + bias };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_ROWS, available, quantize};
    use crate::model::linear::{Linear, Precision};
    use tch::{Device, Kind, Tensor};

    fn random(shape: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn(shape, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn quantized_rows_keep_their_largest_weight_and_stay_within_half_a_step() {
        let w: Vec<f32> = vec![0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 3.0, -0.01, 2.0];
        let (q, s) = quantize(&w, 3, 3);
        assert_eq!(&q[..3], &[64, -127, 32]);
        // An all-zero row keeps a usable scale and zeros.
        assert_eq!(&q[3..6], &[0, 0, 0]);
        assert_eq!(s[1], 1.0);
        for (r, row) in w.chunks(3).enumerate() {
            for (c, v) in row.iter().enumerate() {
                let back = f32::from(q[r * 3 + c]) * s[r];
                assert!(
                    (back - v).abs() <= s[r] / 2.0 + 1e-7,
                    "{v} came back as {back}"
                );
            }
        }
    }

    /// The kernel against libtorch computing the same product from the dequantised weight:
    /// equal up to f32 rounding, for every row count it takes and ragged sizes; more rows
    /// go to the f32 paths.
    #[test]
    fn int8_products_equal_the_dequantized_weights_product() {
        if !available() {
            eprintln!("no AVX2/FMA: the int8 kernel is not used on this CPU");
            return;
        }
        for &(n, k) in &[(1, 1), (5, 7), (37, 33), (301, 576), (1000, 150)] {
            let w = random(&[n, k], n * 31 + k);
            let b = random(&[n], n + 7);
            let data = Vec::<f32>::try_from(w.flatten(0, -1)).unwrap();
            let (q, s) = quantize(&data, n as usize, k as usize);
            let deq = Tensor::from_slice(&q).to_kind(Kind::Float).view([n, k])
                * Tensor::from_slice(&s).view([n, 1]);
            for rows in 1..=MAX_ROWS + 2 {
                let x = random(&[rows, 1, k], rows);
                for bias in [None, Some(&b)] {
                    let layer = Linear::new(w.shallow_clone(), bias.map(Tensor::shallow_clone));
                    let ours = tch::no_grad(|| layer.forward_at(&x, Precision::Int8));
                    // More rows than the kernel takes (prefill) are computed in f32.
                    let exact = if rows <= MAX_ROWS {
                        x.linear(&deq, bias)
                    } else {
                        x.linear(&w, bias)
                    };
                    let scale = exact.abs().max().double_value(&[]).max(1e-30);
                    let d = (&ours - &exact).abs().max().double_value(&[]) / scale;
                    assert!(d < 1e-5, "n={n} k={k} rows={rows}: {d}");
                }
            }
        }
    }

    #[test]
    fn the_int8_copy_is_made_again_after_the_weight_changes() {
        if !available() {
            return;
        }
        let mut w = random(&[64, 32], 5);
        let x = random(&[2, 32], 6);
        let layer = Linear::new(w.shallow_clone(), None);
        let before = tch::no_grad(|| layer.forward_at(&x, Precision::Int8));
        tch::no_grad(|| {
            let _ = w.g_mul_scalar_(2.0);
        });
        let after = tch::no_grad(|| layer.forward_at(&x, Precision::Int8));
        let d = (&after - &before * 2.0).abs().max().double_value(&[]);
        assert!(d < 1e-4, "a stale copy was used: {d}");
    }
}
