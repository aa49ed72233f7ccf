//! Rotary position embedding applied to query or key heads:
//! `x * cos + rotate_half(x) * sin`, with `rotate_half([x1, x2]) = [-x2, x1]`.
//!
//! Why a loop of our own: libtorch runs the formula as six operators per tensor (`mul`, a
//! split, `neg`, `cat`, `mul`, `add`), and a transposed copy first; for the few rows of a
//! decode step that dispatch overhead is the whole cost. Outside autograd, for f32 on CPU,
//! one pass here does exactly the same multiplications and additions per element (so the
//! same values); every other case runs the libtorch formula.

use tch::{Device, Kind, Tensor};

/// Rotary-embedding factors for one batch of positions.
pub struct Rope {
    pub cos: Tensor,
    pub sin: Tensor,
}

/// `x` `[B, T, heads, head_dim]` (any strides with a contiguous last dimension) rotated by
/// `rope` (`[B, 1, T, head_dim]`), returned as `[B, heads, T, head_dim]`.
pub fn apply(x: &Tensor, rope: &Rope) -> Tensor {
    fused(x, rope).unwrap_or_else(|| {
        let x = x.transpose(1, 2);
        &x * &rope.cos + rotate_half(&x) * &rope.sin
    })
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[x.dim() - 1] / 2;
    match x.split_with_sizes([half, half], -1).as_slice() {
        [x1, x2] => Tensor::cat(&[x2.neg(), x1.shallow_clone()], -1),
        _ => unreachable!("split into two sizes gives two parts"),
    }
}

fn fused(x: &Tensor, rope: &Rope) -> Option<Tensor> {
    let f32_cpu = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    if !f32_cpu(x) || !f32_cpu(&rope.cos) || !f32_cpu(&rope.sin) || x.dim() != 4 {
        return None;
    }
    let [b, t, heads, d] = <[i64; 4]>::try_from(x.size()).ok()?;
    let strides = x.stride();
    let want = [b, 1, t, d];
    let table_ok = |c: &Tensor| c.size() == want && c.is_contiguous();
    if d % 2 != 0
        || strides[3] != 1
        || strides.iter().any(|&s| s < 0)
        || !table_ok(&rope.cos)
        || !table_ok(&rope.sin)
        || super::autograd_records(&[x, &rope.cos, &rope.sin])
    {
        return None;
    }
    // Written as `[B, heads, T, head_dim]`, contiguous, as the libtorch formula leaves it.
    let y = Tensor::empty([b, heads, t, d], (Kind::Float, Device::Cpu));
    let [b, t, heads, d] = [b, t, heads, d].map(|v| v as usize);
    let [s0, s1, s2, _] = <[i64; 4]>::try_from(strides).ok()?.map(|v| v as usize);
    // SAFETY: `x` is an f32 CPU tensor whose element (i, j, h, e) sits at offset
    // i·s0 + j·s1 + h·s2 + e (non-negative strides, last one 1), read only; the tables are
    // contiguous `[b, 1, t, d]` f32 tensors; `y` is a fresh contiguous `[b, heads, t, d]`
    // tensor that nothing else uses. Every offset below stays within those shapes.
    unsafe {
        let xp = x.data_ptr() as *const f32;
        let (cp, sp) = (
            rope.cos.data_ptr() as *const f32,
            rope.sin.data_ptr() as *const f32,
        );
        let yp = y.data_ptr() as *mut f32;
        for i in 0..b {
            for j in 0..t {
                let table = (i * t + j) * d;
                let cos = std::slice::from_raw_parts(cp.add(table), d);
                let sin = std::slice::from_raw_parts(sp.add(table), d);
                for h in 0..heads {
                    let src = std::slice::from_raw_parts(xp.add(i * s0 + j * s1 + h * s2), d);
                    let dst =
                        std::slice::from_raw_parts_mut(yp.add(((i * heads + h) * t + j) * d), d);
                    rotate(src, cos, sin, dst);
                }
            }
        }
    }
    Some(y)
}

/// One head `x` rotated by one position's `cos` and `sin` into `y` (all of the head's
/// length, even): the libtorch formula's multiplications and additions, element by element.
pub(crate) fn rotate(x: &[f32], cos: &[f32], sin: &[f32], y: &mut [f32]) {
    let half = x.len() / 2;
    assert!(x.len().is_multiple_of(2) && cos.len() == x.len() && sin.len() == x.len());
    let (x1, x2) = x.split_at(half);
    let (y1, y2) = y.split_at_mut(half);
    for e in 0..half {
        y1[e] = x1[e] * cos[e] + (-x2[e]) * sin[e];
        y2[e] = x2[e] * cos[half + e] + x1[e] * sin[half + e];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fused_rotation_equals_the_libtorch_formula_exactly() {
        let (b, t, heads, d) = (2, 5, 3, 8);
        tch::manual_seed(3);
        // A view with a row stride larger than its width, as a part of the fused q/k/v output.
        let qkv = Tensor::randn([b, t, heads * d + 7], (Kind::Float, Device::Cpu));
        let x = qkv.narrow(2, 0, heads * d).reshape([b, t, heads, d]);
        let rope = Rope {
            cos: Tensor::randn([b, 1, t, d], (Kind::Float, Device::Cpu)),
            sin: Tensor::randn([b, 1, t, d], (Kind::Float, Device::Cpu)),
        };
        let ours = tch::no_grad(|| apply(&x, &rope));
        let xt = x.transpose(1, 2);
        let theirs = &xt * &rope.cos + rotate_half(&xt) * &rope.sin;
        assert_eq!(ours.size(), [b, heads, t, d]);
        assert!(ours.is_contiguous());
        assert_eq!((ours - theirs).abs().max().double_value(&[]), 0.0);
    }
}
