//! The products with a few rows that batched decoding makes on CPU.
//!
//! Why: a decode step multiplies a handful of rows (one per sequence) by every weight of the
//! model, so its time is the time to read the weights from memory. MKL reads them well for a
//! single row (its matrix-vector path), but for 2–16 rows its matrix-matrix path packs the
//! weight first and reaches a fraction of the memory bandwidth: on the 2-core machine this
//! was written on, `linear` of 8 rows by SmolLM2's 49152 × 576 `lm_head` took 23 ms where
//! streaming its 113 MB once takes 7 ms. The kernel here reads each weight row once (with
//! software prefetching: the hardware prefetcher alone kept too few reads in flight and
//! reached half the bandwidth), keeps a few weight rows in registers against every input
//! row, and splits the weight's rows across libtorch's OpenMP threads (8 ms for that
//! product).
//!
//! Only where it applies: 2 to [`MAX_ROWS`] rows and an x86-64 CPU with AVX-512F (the
//! caller checks the rest). The sums are taken in another order than MKL's, so results
//! differ from it by rounding (≈ 1e-7 relative), as MKL's own paths for different row
//! counts differ from each other.

use tch::Tensor;

/// The most rows the kernel takes. Above this, MKL's matrix-matrix path is compute-bound
/// and efficient.
pub const MAX_ROWS: i64 = 16;

/// Below this many multiply-adds a product runs on one thread: waking another costs more.
const MIN_PARALLEL_WORK: usize = 1 << 17;

/// Whether the kernel takes a product of `m` rows on this CPU.
pub(super) fn applies(m: usize) -> bool {
    (2..=MAX_ROWS as usize).contains(&m) && kernel_available()
}

/// `y = x · wᵀ + b` for `m` rows (`x` m × k, `y` m × n), where [`applies`]`(m)`. The caller
/// has checked that `w` is a contiguous f32 CPU `[n, k]` matrix, alive and unwritten for the
/// call, and the slices' lengths.
pub(super) fn product(w: &Tensor, b: Option<&[f32]>, x: &[f32], m: usize, y: &mut [f32]) {
    let (n, k) = (w.size()[0] as usize, w.size()[1] as usize);
    assert!(x.len() == m * k && y.len() == m * n && b.is_none_or(|b| b.len() == n));
    // SAFETY: `x` (m × k), `w` (n × k), `b` (n) and `y` (m × n) hold those many f32 values
    // (checked above and by the caller); they stay alive for the whole call, and the
    // kernel writes `y` only.
    unsafe {
        product_raw(Operands {
            x: x.as_ptr(),
            w: w.data_ptr() as *const f32,
            b: b.map(<[f32]>::as_ptr),
            y: y.as_mut_ptr(),
            m,
            n,
            k,
        })
    };
}

fn kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX512.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Raw pointers that the worker threads share; each writes its own columns of `y`.
#[derive(Clone, Copy)]
struct Operands {
    x: *const f32,
    w: *const f32,
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
/// `ops.x`, `w`, `b`, `y` point to m × k, n × k, n and m × n f32 values; only `y` is
/// written.
unsafe fn product_raw(ops: Operands) {
    let Operands { m, n, k, .. } = ops;
    let parallel = m * n * k >= MIN_PARALLEL_WORK;
    crate::threads::for_column_ranges(n, panel_rows(m.min(8)), parallel, &|n0, n1| {
        // SAFETY: forwarded from the caller; the ranges are disjoint and within 0..n.
        unsafe { columns(ops, n0, n1) }
    });
}

/// How many weight rows a panel holds for `mr` input rows: the accumulators (mr × panel),
/// the weight vectors (panel) and an input vector must fit AVX-512's 32 registers.
const fn panel_rows(mr: usize) -> usize {
    match mr {
        0..=2 => 8,
        3..=4 => 6,
        5..=6 => 4,
        _ => 3,
    }
}

/// Columns `n0..n1` of `y` (weight rows `n0..n1`), for every input row.
///
/// # Safety
/// As [`product_raw`], with `n0 <= n1 <= n`.
unsafe fn columns(ops: Operands, n0: usize, n1: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `product` runs the kernel only where `applies` found AVX-512F.
    unsafe {
        avx512::columns(ops, n0, n1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ops, n0, n1);
        unreachable!("the few-row kernel is only selected on x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Operands, panel_rows};
    use std::arch::x86_64::*;

    const LANES: usize = 16;

    /// # Safety
    /// As `super::columns`, on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn columns(ops: Operands, n0: usize, n1: usize) {
        let nr = panel_rows(ops.m.min(8));
        crate::model::linear::for_each_panel(ops.m, n0, n1, nr, 8, |i, mr, j, width| {
            // SAFETY: rows i..i+mr of x and y, weight rows j..j+width, all in bounds.
            unsafe { dispatch(ops, i, mr, j, width) }
        });
    }

    /// Calls the panel kernel monomorphised for `mr` input rows and `width` weight rows.
    /// `width` is 1 or the panel width of the first (widest) row block, which a later,
    /// shorter block also fits in its registers.
    #[target_feature(enable = "avx512f")]
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
                        ($mr, 6) => unsafe { panel::<$mr, 6>(ops, i, j) },
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 8) => unsafe { panel::<$mr, 8>(ops, i, j) },
                    )*
                    _ => unreachable!("panel widths come from panel_rows"),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6, 7, 8)
    }

    /// `y[i..i+MR][j..j+NR] = x[i..i+MR] · w[j..j+NR]ᵀ (+ b[j..j+NR])`.
    // Indexing reads as the register block it is: `acc[r][q]` is weight row r by input row q.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn panel<const MR: usize, const NR: usize>(ops: Operands, i: usize, j: usize) {
        let k = ops.k;
        // Bounds every pointer below relies on: rows i..i+MR < m of x, rows j..j+NR <= n of w, and
        // offsets < k within a row, as `columns` guarantees.
        // SAFETY: input row i < m of x (m × k), as `columns` guarantees.
        let x = unsafe { ops.x.add(i * k) };
        // SAFETY: weight row j < n of w (n × k), as `columns` guarantees.
        let w = unsafe { ops.w.add(j * k) };
        let mut acc = [[_mm512_setzero_ps(); MR]; NR];
        let full = k / LANES * LANES;
        let mut c = 0;
        while c < full {
            let mut wv = [_mm512_setzero_ps(); NR];
            for (r, v) in wv.iter_mut().enumerate() {
                // SAFETY: weight row j + r < n, offset c < k within it.
                let at = unsafe { w.add(r * k + c) };
                // The same place in the next panel: the hardware prefetcher alone keeps too
                // few reads in flight to stream the weight at memory bandwidth.
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(NR * k) as *const i8);
                // SAFETY: c + 16 <= k: `at` starts 16 readable f32 values.
                *v = unsafe { _mm512_loadu_ps(at) };
            }
            for q in 0..MR {
                // SAFETY: input row i + q < m, c + 16 <= k.
                let xv = unsafe { _mm512_loadu_ps(x.add(q * k + c)) };
                for r in 0..NR {
                    acc[r][q] = _mm512_fmadd_ps(wv[r], xv, acc[r][q]);
                }
            }
            c += LANES;
        }
        if c < k {
            let mask: __mmask16 = (1u16 << (k - c)) - 1;
            let mut wv = [_mm512_setzero_ps(); NR];
            for (r, v) in wv.iter_mut().enumerate() {
                // SAFETY: weight row j + r < n; the mask reads only offsets c..k.
                *v = unsafe { _mm512_maskz_loadu_ps(mask, w.add(r * k + c)) };
            }
            for q in 0..MR {
                // SAFETY: input row i + q < m; the mask reads only offsets c..k.
                let xv = unsafe { _mm512_maskz_loadu_ps(mask, x.add(q * k + c)) };
                for r in 0..NR {
                    acc[r][q] = _mm512_fmadd_ps(wv[r], xv, acc[r][q]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let bias = match ops.b {
                // SAFETY: the bias holds n values and j + r < n.
                Some(b) => unsafe { *b.add(j + r) },
                None => 0.0,
            };
            for (q, a) in acc.iter().enumerate() {
                // SAFETY: (i + q, j + r) is within y (m × n), and only this panel writes it.
                unsafe { *ops.y.add((i + q) * ops.n + j + r) = _mm512_reduce_add_ps(*a) + bias };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_ROWS;
    use crate::model::linear::Linear;
    use tch::{Device, Kind, Tensor};

    fn random(shape: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn(shape, (Kind::Float, Device::Cpu))
    }

    fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        Linear::new(w.shallow_clone(), b.map(Tensor::shallow_clone)).forward(x)
    }

    fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
        let scale = b.abs().max().double_value(&[]).max(1e-30);
        (a - b).abs().max().double_value(&[]) / scale
    }

    #[test]
    fn few_rows_equal_libtorch_for_every_row_count_and_ragged_sizes() {
        // Sizes that leave a vector tail (k % 16) and a last narrow panel (n % panel width).
        for &(n, k) in &[(1, 1), (5, 7), (37, 33), (301, 576), (1000, 150)] {
            let w = random(&[n, k], n * 31 + k);
            let b = random(&[n], n + 7);
            for rows in 1..=MAX_ROWS + 2 {
                let x = random(&[rows, 1, k], rows);
                for bias in [None, Some(&b)] {
                    let ours = tch::no_grad(|| linear(&x, &w, bias));
                    let theirs = x.linear(&w, bias);
                    assert_eq!(ours.size(), theirs.size());
                    let d = max_rel_diff(&ours, &theirs);
                    assert!(
                        d < 1e-5,
                        "n={n} k={k} rows={rows} bias={}: {d}",
                        bias.is_some()
                    );
                }
            }
        }
    }

    #[test]
    fn products_autograd_must_record_go_to_libtorch() {
        let w = random(&[64, 32], 1).set_requires_grad(true);
        let x = random(&[4, 32], 2);
        let y = linear(&x, &w, None);
        assert!(
            y.requires_grad(),
            "the product must stay on the autograd graph"
        );
        y.sum(Kind::Float).backward();
        assert_eq!(w.grad().size(), [64, 32]);
    }

    #[test]
    fn a_non_contiguous_input_is_taken_as_its_values() {
        let w = random(&[40, 24], 3);
        let x = random(&[24, 6], 4).transpose(0, 1);
        assert!(!x.is_contiguous());
        let ours = tch::no_grad(|| linear(&x, &w, None));
        assert!(max_rel_diff(&ours, &x.linear::<Tensor>(&w, None)) < 1e-5);
    }
}
