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

use super::lora::Adapter;

/// A weight and optional bias, with the packed copy of the weight that [`packed`] keeps and,
/// when the model is trained through adapters, the weight's low-rank adapter (see
/// [`super::lora`]): every product then adds the adapter's to the weight's.
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    packed: packed::Cache,
    int8: int8::Cache,
    int4: int4::Cache,
    adapter: Option<Adapter>,
}

pub use azr::config::Precision;

/// Whether this CPU has the kernel of `precision` (f32 always runs); where it does not,
/// products fall back to f32.
pub fn kernel_available(precision: Precision) -> bool {
    match precision {
        Precision::F32 => true,
        Precision::Int8 => int8::available(),
        Precision::Int4 => int4::available(),
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
            adapter: None,
        }
    }

    /// Puts `adapter` on this weight (replacing any): products add its share from now on.
    pub fn set_adapter(&mut self, adapter: Adapter) {
        self.adapter = Some(adapter);
    }

    /// The weight (without any adapter's share).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `x · wᵀ + b` over the last dimension of `x`, as `Tensor::linear`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_at(x, Precision::F32)
    }

    /// [`Linear::forward`] from the weights `precision` names, where that path applies.
    pub fn forward_at(&self, x: &Tensor, precision: Precision) -> Tensor {
        let y = self.weight_forward_at(x, precision);
        match &self.adapter {
            Some(adapter) => {
                let record = super::grad_mode_enabled();
                y + adapter.forward(x, record)
            }
            None => y,
        }
    }

    /// The weight's product alone (no adapter) from the weights `precision` names.
    fn weight_forward_at(&self, x: &Tensor, precision: Precision) -> Tensor {
        let (w, b) = (&self.weight, self.bias.as_ref());
        let Some(rows) = inference_rows(x, w, b) else {
            return x.linear(w, b);
        };
        if let Some(kernel) = usize::try_from(rows)
            .ok()
            .and_then(|m| self.few_rows_kernel(m, precision))
        {
            let x = x.contiguous();
            let mut out_shape = x.size();
            if let Some(last) = out_shape.last_mut() {
                *last = w.size()[0];
            }
            let y = Tensor::empty(out_shape.as_slice(), (Kind::Float, Device::Cpu));
            let (m, n, k) = (rows as usize, w.size()[0] as usize, w.size()[1] as usize);
            // SAFETY: `x` is a contiguous f32 CPU tensor of m × k values (`inference_rows`),
            // `y` a fresh one of m × n that nothing else sees; both outlive the slices.
            let (xs, ys) = unsafe {
                (
                    std::slice::from_raw_parts(x.data_ptr() as *const f32, m * k),
                    std::slice::from_raw_parts_mut(y.data_ptr() as *mut f32, m * n),
                )
            };
            self.run_few_rows(kernel, xs, m, ys);
            return y;
        }
        self.packed
            .linear(x, w, b, rows)
            .unwrap_or_else(|| x.linear(w, b))
    }

    /// `y = x · wᵀ + b` for `m` rows given as slices (`x` m × k, `y` m × n), by the kernel
    /// for `precision` where one applies and by [`Linear::forward_at`] otherwise: the fused
    /// decode step's products, which never leave a result in a tensor.
    ///
    /// Outside autograd only, for an f32 CPU weight (the caller's checks).
    pub(crate) fn forward_rows(&self, x: &[f32], m: usize, y: &mut [f32], precision: Precision) {
        let (n, k) = (
            self.weight.size()[0] as usize,
            self.weight.size()[1] as usize,
        );
        assert!(
            x.len() == m * k && y.len() == m * n,
            "a product of {m} rows by a {n} × {k} weight was given {} inputs and {} outputs",
            x.len(),
            y.len()
        );
        let rows = || Tensor::from_slice(x).view([m as i64, k as i64]);
        if self.is_plain()
            && let Some(kernel) = self.few_rows_kernel(m, precision)
        {
            self.run_few_rows(kernel, x, m, y);
            if let Some(adapter) = &self.adapter {
                let mut delta = vec![0f32; m * n];
                adapter.forward(&rows(), false).copy_data(&mut delta, m * n);
                for (out, d) in y.iter_mut().zip(delta) {
                    *out += d;
                }
            }
            return;
        }
        let xt = rows();
        self.forward_at(&xt, precision).copy_data(y, m * n);
    }

    /// The kernel that takes a product of `m` rows at `precision`, if one does on this CPU.
    /// The operands must already be known plain (see [`Linear::is_plain`]).
    fn few_rows_kernel(&self, m: usize, precision: Precision) -> Option<FewRows> {
        match precision {
            Precision::Int8 if int8::applies(m) => Some(FewRows::Int8),
            Precision::Int4 if int4::applies(&self.weight, m) => Some(FewRows::Int4),
            _ if few_rows::applies(m) => Some(FewRows::F32),
            _ => None,
        }
    }

    fn run_few_rows(&self, kernel: FewRows, x: &[f32], m: usize, y: &mut [f32]) {
        let b = self.bias.as_ref().map(|b| {
            // SAFETY: the bias is a contiguous f32 CPU vector of n values (`is_plain` or
            // `inference_rows` checked it), alive and unwritten while `self` is borrowed.
            unsafe { std::slice::from_raw_parts(b.data_ptr() as *const f32, b.numel()) }
        });
        match kernel {
            FewRows::F32 => few_rows::product(&self.weight, b, x, m, y),
            FewRows::Int8 => self.int8.product(&self.weight, b, x, m, y),
            FewRows::Int4 => self.int4.product(&self.weight, b, x, m, y),
        }
    }

    /// Whether the weight and bias are what the few-row kernels read: contiguous f32 CPU
    /// tensors of shapes `[n, k]` and `[n]`, with a row of at least one value.
    fn is_plain(&self) -> bool {
        let f32_cpu = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
        let w = &self.weight;
        f32_cpu(w)
            && w.dim() == 2
            && w.is_contiguous()
            && w.size()[1] > 0
            && self
                .bias
                .as_ref()
                .is_none_or(|b| f32_cpu(b) && b.size() == [w.size()[0]] && b.is_contiguous())
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

/// The few-row kernels (see the module's documentation).
#[derive(Debug, Clone, Copy)]
enum FewRows {
    F32,
    Int8,
    Int4,
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
