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
//! - everything else, and every product autograd must record (the paths above are invisible
//!   to it): libtorch's `linear`.

mod few_rows;
mod int8;
mod packed;

pub use int8::available as int8_available;

use tch::{Device, Kind, Tensor};

/// A weight and optional bias, with the packed copy of the weight that [`packed`] keeps.
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    packed: packed::Cache,
    int8: int8::Cache,
}

/// The weights a forward pass reads: the f32 ones, or the int8 rollout copy where it applies
/// (products of up to 16 rows outside autograd: decoding). Training, teacher-forced log-probs
/// and checkpoints always use f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            other => Err(crate::Error::InvalidArgument(format!(
                "unknown precision `{other}` (expected f32 or int8)"
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
            Some(rows) => (precision == Precision::Int8)
                .then(|| self.int8.linear(x, w, b, rows))
                .flatten()
                .or_else(|| few_rows::linear(x, w, b, rows))
                .or_else(|| self.packed.linear(x, w, b, rows))
                .unwrap_or_else(|| x.linear(w, b)),
            None => x.linear(w, b),
        }
    }

    /// Makes the int8 rollout copy now if the weight changed since it was made (otherwise
    /// the first int8 product does).
    pub fn refresh_int8(&self) {
        self.int8.refresh(&self.weight);
    }

    /// Bytes held by the int8 rollout copy (0 until it is first made).
    pub fn int8_bytes(&self) -> usize {
        self.int8.bytes()
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
