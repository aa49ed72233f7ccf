//! Linear layers, `x · wᵀ + b`, each product by the fastest path that gives libtorch's result
//! up to rounding:
//!
//! - 2–16 rows, f32 on CPU (batched decoding): [`few_rows`], a kernel that streams the
//!   weight once at memory bandwidth, where MKL's matrix-matrix path packs it first;
//! - more rows, f32 on CPU (prefill, teacher-forced log-probs) through a [`Linear`]:
//!   [`packed`], MKL's product with the weight packed once into MKL's own layout and reused
//!   until the weight changes, where `linear` repacks it on every call;
//! - 1–16 rows when generation asks for [`Precision::Int8`]: [`int8`], the weight's int8
//!   rollout copy, a quarter of the bytes to stream per decode step;
//! - 1–16 rows when generation asks for [`Precision::Int4`]: [`int4`], 4-bit blocks against
//!   int8 activations, five bits per weight (rows that are not whole 32-blocks stay f32);
//! - everything else, and every product autograd must record (the paths above are invisible
//!   to it): libtorch's `linear`.

mod few_rows;
mod int4;
mod int8;
mod packed;

use tch::{Device, Kind, Tensor};

/// A weight and optional bias, with the packed copy of the weight that [`packed`] keeps.
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    packed: packed::Cache,
    int8: int8::Cache,
    int4: int4::Cache,
}

/// The weights a forward pass reads: the f32 ones, or a rollout copy where it applies
/// (products of up to 16 rows outside autograd: decoding). Training, teacher-forced log-probs
/// and checkpoints always use f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// Per-row int8 weights, f32 activations.
    Int8,
    /// 4-bit weights in 32-blocks (scale and minimum in f16), activations rounded to int8
    /// per 32-block: the smallest copy, and the most rounding.
    Int4,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
        }
    }

    /// Whether this CPU has the kernel of this precision (f32 always runs); where it does
    /// not, products fall back to f32.
    pub fn available(self) -> bool {
        match self {
            Precision::F32 => true,
            Precision::Int8 => int8::available(),
            Precision::Int4 => int4::available(),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            "int4" => Ok(Precision::Int4),
            other => Err(crate::Error::InvalidArgument(format!(
                "unknown precision `{other}` (expected f32, int8 or int4)"
            ))),
        }
    }
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight,
            bias,
            packed: packed::Cache::default(),
            int8: int8::Cache::default(),
            int4: int4::Cache::default(),
        }
    }

    /// `x · wᵀ + b` over the last dimension of `x`, as `Tensor::linear`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_at(x, Precision::F32)
    }

    /// [`Linear::forward`] from the weights `precision` names, where that path applies.
    pub fn forward_at(&self, x: &Tensor, precision: Precision) -> Tensor {
        let (w, b) = (&self.weight, self.bias.as_ref());
        match inference_rows(x, w, b) {
            Some(rows) => match precision {
                Precision::F32 => None,
                Precision::Int8 => self.int8.linear(x, w, b, rows),
                Precision::Int4 => self.int4.linear(x, w, b, rows),
            }
            .or_else(|| few_rows::linear(x, w, b, rows))
            .or_else(|| self.packed.linear(x, w, b, rows))
            .unwrap_or_else(|| x.linear(w, b)),
            None => x.linear(w, b),
        }
    }

    /// Makes the rollout copy of `precision` now if the weight changed since it was made
    /// (otherwise the first product at that precision does). Nothing for f32.
    pub fn refresh_rollout_copy(&self, precision: Precision) {
        match precision {
            Precision::F32 => {}
            Precision::Int8 => self.int8.refresh(&self.weight),
            Precision::Int4 => self.int4.refresh(&self.weight),
        }
    }

    /// Bytes held by the rollout copies (0 until one is first made).
    pub fn rollout_copy_bytes(&self) -> usize {
        self.int8.bytes() + self.int4.bytes()
    }
}

/// The number of rows of `x` when the product can leave libtorch: f32 CPU operands, a
/// contiguous `[n, k]` weight matching `x`, a contiguous `[n]` bias, and nothing that
/// autograd must record.
fn inference_rows(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Option<i64> {
    let f32_cpu = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    if !f32_cpu(x) || !f32_cpu(w) || w.dim() != 2 || !w.is_contiguous() {
        return None;
    }
    let (n, k) = (w.size()[0], w.size()[1]);
    let x_shape = x.size();
    if x_shape.last() != Some(&k) || k == 0 || n == 0 {
        return None;
    }
    if let Some(b) = b
        && (!f32_cpu(b) || b.size() != [n] || !b.is_contiguous())
    {
        return None;
    }
    let recorded = match b {
        Some(b) => super::autograd_records(&[x, w, b]),
        None => super::autograd_records(&[x, w]),
    };
    if recorded {
        return None;
    }
    Some(x_shape[..x_shape.len() - 1].iter().product::<i64>())
}

/// The order the few-row kernels walk a product in: weight rows `n0..n1` in panels of `nr`
/// (a last, narrower panel one row at a time), and against each panel the `m` input rows in
/// blocks of at most `row_block`; `panel(i, mr, j, width)` computes one block by one panel.
/// Inlined into each kernel's column loop.
#[inline(always)]
fn for_each_panel(
    m: usize,
    n0: usize,
    n1: usize,
    nr: usize,
    row_block: usize,
    mut panel: impl FnMut(usize, usize, usize, usize),
) {
    let mut j = n0;
    while j < n1 {
        let width = if n1 - j >= nr { nr } else { 1 };
        let mut i = 0;
        while i < m {
            let mr = (m - i).min(row_block);
            panel(i, mr, j, width);
            i += mr;
        }
        j += width;
    }
}

/// Vector helpers the x86-64 kernels share.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The sum of the eight lanes of `v`.
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) fn sum8(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

/// What a copy of a weight (packed, quantised) was made from: the weight's version counter,
/// which every write bumps, and its data address, which a load or a move changes. A copy
/// whose key differs from the weight's is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WeightKey {
    version: i64,
    source: usize,
}

impl WeightKey {
    fn of(w: &Tensor) -> Self {
        WeightKey {
            version: w.internal_version(),
            source: w.data_ptr() as usize,
        }
    }
}

/// Marks `w` as written (bumps its version counter, shared with every view of it), for code
/// that writes a weight's memory directly rather than through a libtorch operation: a
/// [`Linear`] then repacks it before its next product instead of using a stale copy.
pub fn mark_written(w: &Tensor) {
    if w.dim() > 0 {
        // An in-place operation on an empty view of `w` touches no value but counts as a write.
        // Under no_grad: in-place writes to a view of a parameter are refused while recording.
        tch::no_grad(|| {
            let _ = w.narrow(0, 0, 0).zero_();
        });
    }
}
