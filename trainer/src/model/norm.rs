//! RMS norm, as transformers computes it: in f32, `w * (x * rsqrt(mean(x²) + eps))`.
//!
//! Why a loop of our own: libtorch runs the formula as eight operators (a cast, `pow`,
//! `mean`, `add`, `rsqrt`, `mul`, a cast, `mul`), each with its dispatch, allocation and
//! thread-pool bookkeeping. For the one to eight rows of a decode step the arithmetic is
//! nothing and that overhead is the cost; two norms per layer made it a tenth of a
//! batch-1 decode step. Outside autograd, for f32 on CPU, one pass here does the same
//! arithmetic in the same order per element (the mean's sum is taken in another order, so
//! results differ by rounding); every other case runs the libtorch formula.

use tch::{Device, Kind, Tensor};

/// `weight * (x * rsqrt(mean(x², -1) + eps))`, computed in f32 and returned in `x`'s dtype.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Tensor {
    fused(x, weight, eps).unwrap_or_else(|| {
        let kind = x.kind();
        let xf = x.to_kind(Kind::Float);
        let var = xf.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = (xf * (var + eps).rsqrt()).to_kind(kind);
        weight * normed
    })
}

fn fused(x: &Tensor, weight: &Tensor, eps: f64) -> Option<Tensor> {
    let f32_cpu = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    if !f32_cpu(x) || !f32_cpu(weight) || !weight.is_contiguous() || weight.dim() != 1 {
        return None;
    }
    let h = weight.size()[0];
    if x.size().last() != Some(&h) || h == 0 || super::autograd_records(&[x, weight]) {
        return None;
    }
    let x = x.contiguous();
    let y = x.empty_like();
    let (n, h) = (x.numel(), h as usize);
    // SAFETY: `x` and `y` are contiguous f32 CPU tensors of `n` values (a multiple of `h`),
    // `weight` one of `h` values (checked above); `y` is fresh and nothing else uses them.
    let (xs, ws, ys) = unsafe {
        (
            std::slice::from_raw_parts(x.data_ptr() as *const f32, n),
            std::slice::from_raw_parts(weight.data_ptr() as *const f32, h),
            std::slice::from_raw_parts_mut(y.data_ptr() as *mut f32, n),
        )
    };
    rms_norm_rows(xs, ws, eps, ys);
    Some(y)
}

/// The norm of each row of `x` (rows as long as `weight`) into the same row of `y`: the
/// fused path's arithmetic, on slices (the fused decode step's norms).
pub(crate) fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f64, y: &mut [f32]) {
    let h = weight.len();
    assert!(h > 0 && x.len() == y.len() && x.len().is_multiple_of(h));
    let eps = eps as f32;
    for (x, y) in x.chunks_exact(h).zip(y.chunks_exact_mut(h)) {
        let var = sum_of_squares(x) / h as f32;
        let r = 1.0 / (var + eps).sqrt();
        for ((y, &x), &w) in y.iter_mut().zip(x).zip(weight) {
            *y = w * (x * r);
        }
    }
}

/// Σ x² with sixteen partial sums (which the compiler keeps in vector registers).
fn sum_of_squares(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
        let var = x.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        w * (x * (var + eps).rsqrt())
    }

    #[test]
    fn the_fused_norm_equals_the_libtorch_formula() {
        for &(rows, h) in &[(1, 576), (8, 896), (3, 37), (128, 64)] {
            tch::manual_seed(rows + h);
            let x = Tensor::randn([rows, 1, h], (Kind::Float, Device::Cpu)) * 3.0;
            let w = Tensor::randn([h], (Kind::Float, Device::Cpu));
            let ours = tch::no_grad(|| rms_norm(&x, &w, 1e-6));
            let d = (&ours - reference(&x, &w, 1e-6))
                .abs()
                .max()
                .double_value(&[]);
            assert!(d < 1e-5, "rows {rows} h {h}: {d}");
        }
    }

    #[test]
    fn a_norm_autograd_records_keeps_its_gradient() {
        let w = Tensor::ones([8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let x = Tensor::randn([2, 8], (Kind::Float, Device::Cpu));
        let y = rms_norm(&x, &w, 1e-5);
        assert!(y.requires_grad());
        y.sum(Kind::Float).backward();
        assert_eq!(w.grad().size(), [8]);
    }
}
