//! The 4-bit rollout copy of a weight, for the products of decoding (1 to [`MAX_ROWS`] rows)
//! when generation asks for [`super::Precision::Int4`].
//!
//! Why: a decode step streams every weight once per token, and on this project's CPUs the
//! [`super::int8`] copy already runs at the memory's bandwidth (0.5 GB per token for the
//! 0.5B default model). llama.cpp reads its Q4_K_M file's ≈ 0.4 GB; to be faster than it at
//! batch 1 a copy must be smaller still. This one is 5 bits per weight (0.31 GB).
//!
//! Weights: blocks of [`BLOCK`] along a row, each `w ≈ d · q + m` with `q` in 0..=15 and the
//! block's minimum `m` and step `d = (max − min) / 15` stored as f16 (the shape of GGUF's
//! Q4_1, and of each 32-weight sub-block of Q4_K: weights loaded from a Q4_K file come back
//! close to exactly). A row is a run of 20-byte blocks, `d`, `m`, then 16 bytes whose byte
//! `i` holds `q[i]` (low nibble) and `q[i + 16]` (high nibble), so that each row is one
//! stream for the prefetcher.
//!
//! Activations: each input row is rounded to int8 per block of 32 (`x ≈ e · p`, `e = max |x|
//! / 127`), so that AVX2's `maddubs` multiplies 32 weight-activation pairs in one instruction
//! where the int8 path converts each weight to f32 first; on a 2-core Zen 1 that conversion,
//! not the memory, bounded batch 8. A block's product is then exact in integers:
//! `Σ w·x ≈ d·e·Σ q·p + m·e·Σ p`.
//!
//! The error is therefore the weights' and the activations' rounding; the bench reports what
//! it does to the next-token distribution (KL, greedy agreement against f32), and self-play
//! recomputes every log-prob the update uses in f32. Rows whose length is not a multiple of
//! [`BLOCK`] are not quantised: their products stay f32. Needs AVX2, FMA and F16C.

use std::sync::{Mutex, MutexGuard};

use half::f16;
use tch::{Device, Kind, Tensor};

use super::WeightKey;
use super::few_rows::MAX_ROWS;

/// Weights (and activations) per block.
pub const BLOCK: usize = 32;

/// Bytes per stored block: `d` and `m` (f16 each) and 32 nibbles.
const BLOCK_BYTES: usize = 4 + BLOCK / 2;

/// The coarsest grid `quantize_block` tries: 8 steps from a block's minimum to its maximum.
const MIN_LEVELS: usize = 8;

/// Below this many multiply-adds a product runs on one thread: waking another costs more.
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// The quantised weight and what it was made from.
struct Quantized {
    key: WeightKey,
    /// `n` rows of `k / BLOCK` blocks of [`BLOCK_BYTES`].
    blocks: Vec<u8>,
}

/// The 4-bit copy of a [`super::Linear`]'s weight.
#[derive(Default)]
pub(super) struct Cache(Mutex<Option<Quantized>>);

/// Whether this CPU runs the 4-bit kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FEATURES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FEATURES.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether `w` can have a 4-bit copy: a contiguous f32 CPU matrix whose rows are whole
/// blocks.
fn is_quantizable(w: &Tensor) -> bool {
    w.device() == Device::Cpu
        && w.kind() == Kind::Float
        && w.dim() == 2
        && w.is_contiguous()
        && w.size()[1] > 0
        && (w.size()[1] as usize).is_multiple_of(BLOCK)
}

impl Cache {
    /// The copy for `w` (quantisable), made again if `w` changed since.
    fn current(&self, w: &Tensor) -> MutexGuard<'_, Option<Quantized>> {
        // A poisoned lock only means another product panicked; the copy is checked below.
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = WeightKey::of(w);
        if !slot.as_ref().is_some_and(|q| q.key == key) {
            *slot = None;
            let (n, k) = (w.size()[0] as usize, w.size()[1] as usize);
            // SAFETY: `w` is a contiguous n × k f32 CPU tensor (`is_quantizable`), alive and
            // not written for the duration of this borrow.
            let data = unsafe { std::slice::from_raw_parts(w.data_ptr() as *const f32, n * k) };
            *slot = Some(Quantized {
                key,
                blocks: quantize(data, n, k),
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

    /// Bytes held by the copy (0 before it is first made).
    pub(super) fn bytes(&self) -> usize {
        let slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map_or(0, |q| q.blocks.len())
    }

    /// `y = x · wᵀ + b` for `m` rows (`x` m × k, `y` m × n) from the 4-bit copy of `w`, made
    /// again first if `w` changed, and `x` rounded to int8, where [`applies`]`(w, m)`. The
    /// caller has checked that `w` is a contiguous f32 CPU `[n, k]` matrix and the slices'
    /// lengths.
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
        let acts = Activations::quantize(x, m, k);
        let slot = self.current(w);
        let Some(q) = slot.as_ref() else {
            unreachable!("`current` leaves a copy in the slot")
        };
        let ops = Operands {
            x: acts.values.as_ptr(),
            x_scales: acts.scales.as_ptr(),
            x_sums: acts.sums.as_ptr(),
            w: q.blocks.as_ptr(),
            b: b.map(<[f32]>::as_ptr),
            y: y.as_mut_ptr(),
            m,
            n,
            k,
        };
        // SAFETY: `acts` holds m × k values and m × k / BLOCK scales and sums, `q` n rows of
        // k / BLOCK blocks, `b` n values and `y` m × n (checked above); all stay alive (the
        // lock is held) for the call, which writes `y` only; `applies` found AVX2, FMA, F16C.
        unsafe { product_raw(ops) };
    }
}

/// Whether the kernel takes a product of `m` rows by `w` on this CPU.
pub(super) fn applies(w: &Tensor, m: usize) -> bool {
    (1..=MAX_ROWS as usize).contains(&m) && available() && is_quantizable(w)
}

/// Rounds each block of `w`'s rows to `d · q + m` (see the module's documentation).
fn quantize(w: &[f32], n: usize, k: usize) -> Vec<u8> {
    let row_bytes = k / BLOCK * BLOCK_BYTES;
    let mut blocks = vec![0u8; n * row_bytes];
    let parts = if n * k >= MIN_PARALLEL_WORK * 16 {
        usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1)
    } else {
        1
    };
    let per_part = n.div_ceil(parts).max(1);
    let out = Out(blocks.as_mut_ptr());
    crate::threads::for_each_part(n.div_ceil(per_part), &|part| {
        // The whole struct, not its field (closures capture fields separately).
        let out: &Out = &out;
        let (r0, r1) = (part * per_part, ((part + 1) * per_part).min(n));
        // SAFETY: each part writes rows r0..r1 only, disjoint from the other parts'; the
        // vector outlives `for_each_part`, which joins every part before returning.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(out.0.add(r0 * row_bytes), (r1 - r0) * row_bytes)
        };
        let src = &w[r0 * k..r1 * k];
        quantize_rows(src, dst);
    });
    blocks
}

/// `quantize_block` over whole rows, compiled for AVX2 where the CPU has it: the grid search
/// then runs eight lanes at a time (the copy is made again after every optimiser step).
fn quantize_rows(src: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        #[target_feature(enable = "avx2,fma,f16c")]
        fn rows_avx2(src: &[f32], dst: &mut [u8]) {
            for (block, values) in dst
                .chunks_exact_mut(BLOCK_BYTES)
                .zip(src.chunks_exact(BLOCK))
            {
                quantize_block(values, block);
            }
        }
        // SAFETY: `available` found AVX2, FMA and F16C on this CPU.
        return unsafe { rows_avx2(src, dst) };
    }
    for (block, values) in dst
        .chunks_exact_mut(BLOCK_BYTES)
        .zip(src.chunks_exact(BLOCK))
    {
        quantize_block(values, block);
    }
}

#[inline(always)]
fn quantize_block(values: &[f32], out: &mut [u8]) {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    // The grid from the block's minimum with 15 steps to its maximum, or fewer, coarser steps
    // when those fit the values better: a weight loaded from a Q4_K file can lie on a grid whose
    // levels its block does not all use, and the step that matches it brings it back exactly.
    // d and m are rounded to f16 first and the nibbles against the stored values, so that
    // what the kernel reconstructs is the nearest point of the grid it actually uses.
    let m = f16::from_f32(lo);
    let mf = m.to_f32();
    let mut best = (f32::INFINITY, f16::ZERO, [0u8; BLOCK]);
    for levels in (MIN_LEVELS..=15).rev() {
        let d = f16::from_f32((hi - lo) / levels as f32);
        let df = d.to_f32();
        let inv = if df > 0.0 && df.is_finite() {
            1.0 / df
        } else {
            0.0
        };
        let mut q = [0u8; BLOCK];
        // Eight partial sums and no saturating conversion: the loop then runs as AVX2
        // vectors (it runs eight times per block after every optimiser step).
        let mut partial = [0f32; 8];
        for (qs, vs) in q.chunks_exact_mut(8).zip(values.chunks_exact(8)) {
            for l in 0..8 {
                // Rounding half up; below 0 only through m's own f16 rounding (a block whose
                // spread is tiny beside its values), clamped like the top.
                // Not `clamp`, which keeps a NaN (a NaN or infinite weight): `max` and `min`
                // return the number.
                #[allow(clippy::manual_clamp)]
                let x = ((vs[l] - mf) * inv + 0.5).max(0.0).min(15.0);
                // SAFETY: `x` is in [0, 15], as said above.
                let level = unsafe { x.to_int_unchecked::<i32>() };
                qs[l] = level as u8;
                let e = vs[l] - (df * level as f32 + mf);
                partial[l] += e * e;
            }
        }
        let err: f32 = partial.iter().sum();
        if err < best.0 {
            best = (err, d, q);
        }
        if err == 0.0 {
            break;
        }
    }
    let (_, d, q) = best;
    out[..2].copy_from_slice(&d.to_bits().to_le_bytes());
    out[2..4].copy_from_slice(&m.to_bits().to_le_bytes());
    for i in 0..BLOCK / 2 {
        out[4 + i] = q[i] | (q[i + BLOCK / 2] << 4);
    }
}

/// The weight `quantize` stores, back in f32 (`n × k`, for tests).
#[cfg(test)]
fn dequantize(blocks: &[u8], n: usize, k: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * k);
    for block in blocks.chunks_exact(BLOCK_BYTES) {
        let d = f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        let m = f16::from_bits(u16::from_le_bytes([block[2], block[3]])).to_f32();
        let nib = |i: usize| {
            let byte = block[4 + i % (BLOCK / 2)];
            f32::from(if i < BLOCK / 2 { byte & 15 } else { byte >> 4 })
        };
        out.extend((0..BLOCK).map(|i| d * nib(i) + m));
    }
    out
}

/// Input rows rounded to int8 per block: `x ≈ e · p`, with `Σ p` per block ready for the
/// weights' `m` term.
struct Activations {
    values: Vec<i8>,
    /// `e` per block.
    scales: Vec<f32>,
    /// `e · Σ p` per block.
    sums: Vec<f32>,
}

impl Activations {
    fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        let blocks = m * k / BLOCK;
        let mut out = Activations {
            values: vec![0; m * k],
            scales: vec![0.0; blocks],
            sums: vec![0.0; blocks],
        };
        for (b, (src, dst)) in x
            .chunks_exact(BLOCK)
            .zip(out.values.chunks_exact_mut(BLOCK))
            .enumerate()
        {
            let max = src.iter().fold(0f32, |a, v| a.max(v.abs()));
            let (e, inv) = if max > 0.0 && max.is_finite() {
                (max / 127.0, 127.0 / max)
            } else {
                (0.0, 0.0)
            };
            let mut sum = 0i32;
            for (p, v) in dst.iter_mut().zip(src) {
                *p = (v * inv).round().clamp(-127.0, 127.0) as i8;
                sum += i32::from(*p);
            }
            out.scales[b] = e;
            out.sums[b] = e * sum as f32;
        }
        out
    }

    /// The rounded rows back in f32 (for tests).
    #[cfg(test)]
    fn dequantize(&self) -> Vec<f32> {
        self.values
            .chunks_exact(BLOCK)
            .zip(&self.scales)
            .flat_map(|(p, e)| p.iter().map(move |&v| f32::from(v) * e))
            .collect()
    }
}

/// Where the quantising parts write; each part writes its own rows.
#[derive(Clone, Copy)]
struct Out(*mut u8);
// SAFETY: the parts write disjoint rows (see `quantize`).
unsafe impl Send for Out {}
// SAFETY: as for `Send` above: shared only as the disjoint writes described there.
unsafe impl Sync for Out {}

/// Raw pointers that the worker threads share; each writes its own columns of `y`.
#[derive(Clone, Copy)]
struct Operands {
    x: *const i8,
    x_scales: *const f32,
    x_sums: *const f32,
    w: *const u8,
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

/// Input rows taken together against a panel of weight rows.
const ROW_BLOCK: usize = 4;

/// Weight rows per panel for `mr` input rows: AVX2's 16 registers hold `mr × panel`
/// accumulators, the panel's unpacked weights, the constant ones and an input block.
const fn panel_rows(mr: usize) -> usize {
    match mr {
        0..=1 => 4,
        2 => 3,
        _ => 2,
    }
}

/// # Safety
/// As `Cache::linear` describes the operands; the CPU has AVX2, FMA and F16C.
unsafe fn product_raw(ops: Operands) {
    let Operands { m, n, k, .. } = ops;
    let parallel = m * n * k >= MIN_PARALLEL_WORK;
    crate::threads::for_column_ranges(n, panel_rows(m.min(ROW_BLOCK)), parallel, &|n0, n1| {
        // SAFETY: forwarded from the caller; the ranges are disjoint and within 0..n.
        unsafe { columns(ops, n0, n1) }
    });
}

/// # Safety
/// As [`product_raw`], with `n0 <= n1 <= n`.
unsafe fn columns(ops: Operands, n0: usize, n1: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `product` runs the kernel only where `applies` found AVX2, FMA and F16C.
    unsafe {
        avx2::columns(ops, n0, n1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ops, n0, n1);
        unreachable!("the 4-bit kernel is only selected on x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK, BLOCK_BYTES, Operands, ROW_BLOCK, panel_rows};
    use crate::model::linear::x86::sum8;
    use std::arch::x86_64::*;

    /// # Safety
    /// As `super::columns`, on a CPU with AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
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
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dispatch(ops: Operands, i: usize, mr: usize, j: usize, width: usize) {
        macro_rules! go {
            ($($mr:literal),*) => {
                match (mr, width) {
                    $(
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 1) => unsafe { panel::<$mr, 1>(ops, i, j) },
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 2) => unsafe { panel::<$mr, 2>(ops, i, j) },
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 3) => unsafe { panel::<$mr, 3>(ops, i, j) },
                        // SAFETY: forwarded from the caller: input rows i..i+mr and weight rows j..j+width are in bounds.
                        ($mr, 4) => unsafe { panel::<$mr, 4>(ops, i, j) },
                    )*
                    _ => unreachable!("panel widths come from panel_rows"),
                }
            };
        }
        go!(1, 2, 3, 4)
    }

    /// `y[i..i+MR][j..j+NR] = x[i..i+MR] · w[j..j+NR]ᵀ (+ b[j..j+NR])`, block by block.
    // Indexing reads as the register block it is: `acc[r][q]` is weight row r by input row q.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn panel<const MR: usize, const NR: usize>(ops: Operands, i: usize, j: usize) {
        let k = ops.k;
        let nb = k / BLOCK;
        let row_bytes = nb * BLOCK_BYTES;
        // Bounds every pointer below relies on: rows i..i+MR < m of the activations, rows
        // j..j+NR <= n of the weight, blocks < nb within a row, as `columns` guarantees.
        // SAFETY: weight row j < n, each `row_bytes` long, as `columns` guarantees.
        let w = unsafe { ops.w.add(j * row_bytes) };
        let nibble = _mm_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); MR]; NR];
        let mut mins = [[0f32; MR]; NR];
        for blk in 0..nb {
            let mut wv = [_mm256_setzero_si256(); NR];
            let mut d = [0f32; NR];
            let mut m = [0f32; NR];
            for r in 0..NR {
                // SAFETY: weight row j + r < n, block blk < nb within it.
                let at = unsafe { w.add(r * row_bytes + blk * BLOCK_BYTES) };
                // The same place in the next panel: the hardware prefetcher alone keeps too
                // few reads in flight across NR row streams.
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(NR * row_bytes) as *const i8);
                // SAFETY: a block is BLOCK_BYTES readable bytes: d and m, then 16 nibble pairs.
                let dm =
                    unsafe { _mm_cvtph_ps(_mm_cvtsi32_si128((at as *const i32).read_unaligned())) };
                d[r] = _mm_cvtss_f32(dm);
                m[r] = _mm_cvtss_f32(_mm_movehdup_ps(dm));
                // SAFETY: the block's 16 nibble pairs follow its 4 bytes of d and m.
                let raw = unsafe { _mm_loadu_si128(at.add(4) as *const __m128i) };
                let lo = _mm_and_si128(raw, nibble);
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(raw), nibble);
                wv[r] = _mm256_set_m128i(hi, lo);
            }
            for q in 0..MR {
                let block = (i + q) * nb + blk;
                // SAFETY: activation block (i + q) · nb + blk holds BLOCK int8 values.
                let xv = unsafe { _mm256_loadu_si256(ops.x.add(block * BLOCK) as *const __m256i) };
                // SAFETY: one scale per activation block, and `block` is one.
                let e = unsafe { *ops.x_scales.add(block) };
                // SAFETY: one sum per activation block, and `block` is one.
                let sum = unsafe { *ops.x_sums.add(block) };
                for r in 0..NR {
                    // 15 · 127 · 2 fits the 16-bit pair sums of `maddubs`.
                    let pairs = _mm256_maddubs_epi16(wv[r], xv);
                    let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                    acc[r][q] = _mm256_fmadd_ps(dot, _mm256_set1_ps(d[r] * e), acc[r][q]);
                    mins[r][q] += m[r] * sum;
                }
            }
        }
        for r in 0..NR {
            let bias = match ops.b {
                // SAFETY: the bias holds n values and j + r < n.
                Some(b) => unsafe { *b.add(j + r) },
                None => 0.0,
            };
            for q in 0..MR {
                let v = sum8(acc[r][q]) + mins[r][q] + bias;
                // SAFETY: (i + q, j + r) is within y (m × n), and only this panel writes it.
                unsafe { *ops.y.add((i + q) * ops.n + j + r) = v };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Activations, BLOCK, BLOCK_BYTES, MIN_LEVELS, available, dequantize, quantize};
    use crate::model::linear::few_rows::MAX_ROWS;
    use crate::model::linear::{Linear, Precision};
    use tch::{Device, Kind, Tensor};

    fn random(shape: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn(shape, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn quantized_blocks_stay_within_half_a_step_of_their_coarsest_grid() {
        let w: Vec<f32> = (0..2 * BLOCK)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.013 + if i >= BLOCK { 5.0 } else { 0.0 })
            .collect();
        let blocks = quantize(&w, 1, 2 * BLOCK);
        assert_eq!(blocks.len(), 2 * BLOCK_BYTES);
        let back = dequantize(&blocks, 1, 2 * BLOCK);
        for (b, (orig, got)) in w.chunks(BLOCK).zip(back.chunks(BLOCK)).enumerate() {
            let (lo, hi) = orig
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            // f16 storage of d and m adds its own rounding (relative 2⁻¹¹ of the values).
            let slack = hi.abs().max(lo.abs()) * 2e-3;
            let coarsest = (hi - lo) / MIN_LEVELS as f32;
            for (v, g) in orig.iter().zip(got) {
                assert!(
                    (v - g).abs() <= coarsest / 2.0 + slack,
                    "block {b}: {v} came back as {g}"
                );
            }
            // Never worse overall than the plain 15-step grid.
            let step = (hi - lo) / 15.0;
            let plain: f32 = orig
                .iter()
                .map(|v| (v - (lo + ((v - lo) / step).round() * step)).powi(2))
                .sum();
            let ours: f32 = orig.iter().zip(got).map(|(v, g)| (v - g).powi(2)).sum();
            assert!(ours <= plain * 1.01 + 1e-9, "block {b}: {ours} > {plain}");
        }
        // A constant block (a zero step) comes back as itself.
        let flat = quantize(&[0.25; BLOCK], 1, BLOCK);
        assert!(dequantize(&flat, 1, BLOCK).iter().all(|&v| v == 0.25));
    }

    /// A block whose spread is far below its values' f16 resolution still comes back
    /// within that resolution (no level wraps around).
    #[test]
    fn a_block_with_a_tiny_spread_far_from_zero_stays_close() {
        let w: Vec<f32> = (0..BLOCK).map(|i| 5.0 + 1e-5 * i as f32).collect();
        let back = dequantize(&quantize(&w, 1, BLOCK), 1, BLOCK);
        for (v, g) in w.iter().zip(&back) {
            assert!((v - g).abs() < 5.0 * 2e-3, "{v} came back as {g}");
        }
    }

    /// A diverged weight (NaN, infinite) quantises without a panic; only its block is lost.
    #[test]
    fn a_block_with_a_nan_or_an_infinity_quantizes_without_a_panic() {
        let mut w = vec![0.5f32; 3 * BLOCK];
        w[3] = f32::NAN;
        w[BLOCK + 4] = f32::INFINITY;
        let back = dequantize(&quantize(&w, 1, 3 * BLOCK), 1, 3 * BLOCK);
        assert!(back[2 * BLOCK..].iter().all(|&v| v == 0.5));
    }

    /// A block already on a 4-bit grid whose levels it does not all use (as weights loaded
    /// from a Q4_K or Q5_0 file often are) comes back exactly, not on a finer, shifted grid.
    #[test]
    fn weights_on_a_grid_with_unused_levels_come_back_exactly() {
        let step = 0.0625f32;
        let w: Vec<f32> = (0..BLOCK)
            .map(|i| -0.5 + step * (2 + i % 11) as f32)
            .collect();
        let back = dequantize(&quantize(&w, 1, BLOCK), 1, BLOCK);
        assert_eq!(back, w);
    }

    #[test]
    fn activations_round_per_block_within_half_a_step() {
        let x: Vec<f32> = (0..3 * BLOCK)
            .map(|i| (i as f32 * 0.7).sin() * (1 + i / BLOCK) as f32)
            .collect();
        let acts = Activations::quantize(&x, 1, 3 * BLOCK);
        let back = acts.dequantize();
        for (b, e) in acts.scales.iter().enumerate() {
            for c in b * BLOCK..(b + 1) * BLOCK {
                assert!((x[c] - back[c]).abs() <= e / 2.0 + 1e-7);
            }
            let sum: i32 = acts.values[b * BLOCK..(b + 1) * BLOCK]
                .iter()
                .map(|&v| i32::from(v))
                .sum();
            assert!((acts.sums[b] - e * sum as f32).abs() < 1e-6);
        }
    }

    /// The kernel against libtorch computing the same product from the dequantised weight
    /// and activations: equal up to f32 rounding (the block products are exact integers),
    /// for every row count it takes; more rows, and rows that are not whole blocks, go to
    /// the f32 paths.
    #[test]
    fn int4_products_equal_the_dequantized_operands_product() {
        if !available() {
            eprintln!("no AVX2/FMA/F16C: the 4-bit kernel is not used on this CPU");
            return;
        }
        for &(n, k) in &[(1, 32), (5, 64), (37, 96), (301, 576), (1000, 160), (7, 33)] {
            let w = random(&[n, k], n * 31 + k);
            let b = random(&[n], n + 7);
            let whole = (k as usize).is_multiple_of(BLOCK);
            let deq_w = if whole {
                let data = Vec::<f32>::try_from(w.flatten(0, -1)).unwrap();
                let blocks = quantize(&data, n as usize, k as usize);
                Tensor::from_slice(&dequantize(&blocks, n as usize, k as usize)).view([n, k])
            } else {
                w.shallow_clone()
            };
            for rows in 1..=MAX_ROWS + 2 {
                let x = random(&[rows, 1, k], rows);
                let in_kernel = whole && rows <= MAX_ROWS;
                let deq_x = if in_kernel {
                    let data = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
                    let acts = Activations::quantize(&data, rows as usize, k as usize);
                    Tensor::from_slice(&acts.dequantize()).view([rows, 1, k])
                } else {
                    x.shallow_clone()
                };
                for bias in [None, Some(&b)] {
                    let layer = Linear::new(w.shallow_clone(), bias.map(Tensor::shallow_clone));
                    let ours = tch::no_grad(|| layer.forward_at(&x, Precision::Int4));
                    let exact = if in_kernel {
                        deq_x.linear(&deq_w, bias)
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
    fn the_int4_copy_is_made_again_after_the_weight_changes() {
        if !available() {
            return;
        }
        let mut w = random(&[64, 64], 5);
        let x = random(&[2, 64], 6);
        let layer = Linear::new(w.shallow_clone(), None);
        let before = tch::no_grad(|| layer.forward_at(&x, Precision::Int4));
        tch::no_grad(|| {
            let _ = w.g_mul_scalar_(2.0);
        });
        let after = tch::no_grad(|| layer.forward_at(&x, Precision::Int4));
        let d = (&after - &before * 2.0).abs().max().double_value(&[]);
        assert!(d < 1e-3, "a stale copy was used: {d}");
    }
}
