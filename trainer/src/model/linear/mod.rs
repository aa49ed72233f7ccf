//! Linear layers, `x · wᵀ + b`, each product by the fastest path that gives libtorch's result
//! up to rounding:
//!
//! - 2–16 rows, f32 on CPU (batched decoding): [`few_rows`], a kernel that streams the
//!   weight once at memory bandwidth, where MKL's matrix-matrix path packs it first;
//! - more rows, f32 on CPU (prefill, teacher-forced log-probs) through a [`Linear`]:
//!   [`packed`], MKL's product with the weight packed once into MKL's own layout and reused
//!   until the weight changes, where `linear` repacks it on every call;
//! - everything else, and every product autograd must record (the two paths above are
//!   invisible to it): libtorch's `linear`.

mod few_rows;
mod packed;

use tch::{Device, Kind, Tensor};

/// A weight and optional bias, with the packed copy of the weight that [`packed`] keeps.
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    packed: packed::Cache,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight,
            bias,
            packed: packed::Cache::default(),
        }
    }

    /// `x · wᵀ + b` over the last dimension of `x`, as `Tensor::linear`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (w, b) = (&self.weight, self.bias.as_ref());
        match inference_rows(x, w, b) {
            Some(rows) => few_rows::linear(x, w, b, rows)
                .or_else(|| self.packed.linear(x, w, b, rows))
                .unwrap_or_else(|| x.linear(w, b)),
            None => x.linear(w, b),
        }
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
