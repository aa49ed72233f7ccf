//! Products with many rows against a weight packed once into MKL's internal layout.
//!
//! Why: for every product, MKL's `sgemm` first copies the weight into the blocked layout its
//! kernel reads. For a prefill of 128 tokens that copy is a large part of the work: on the
//! 2-core machine this was written on, SmolLM2's gate/up product took 2.27 ms through
//! `linear` and 1.86 ms from a weight packed beforehand (`down`: 1.25 → 0.89 ms). MKL's
//! packed API (`cblas_sgemm_pack`, `cblas_sgemm_compute`) does that copy once; the result
//! is the one `linear` gives (same kernel, same order of sums; measured identical for 16
//! rows and more). The packed copy is kept until the weight's version counter or address
//! changes (an optimiser step, a load), then made again at the next product.
//!
//! The packed copy costs memory: MKL asks ≈ 1.3 × the weight plus ≈ 10 MB per matrix. It is
//! used only where MKL's packed API is found in the process (libtorch built with MKL: the
//! x86-64 builds), for f32 on CPU, and only for more rows than the few-row kernel takes.

use std::ffi::{c_float, c_int, c_void};
use std::sync::{Mutex, OnceLock};

use tch::{Device, Kind, Tensor};

use super::WeightKey;
use super::few_rows::MAX_ROWS;

/// The packed copy of one weight, and what it was packed from.
struct Packed {
    /// The weight it was packed from.
    key: WeightKey,
    /// MKL's packed matrix; never moved (MKL forbids copying it elsewhere).
    buffer: Tensor,
}

/// The packed copy of a [`super::Linear`]'s weight, made at its first product with many rows.
#[derive(Default)]
pub(super) struct Cache(Mutex<Option<Packed>>);

impl Cache {
    /// `x · wᵀ + b` from the packed weight (packing it first if it is missing or stale), or
    /// `None` when this path does not apply. The caller has checked the operands as for
    /// `few_rows::linear`.
    pub(super) fn linear(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        rows: i64,
    ) -> Option<Tensor> {
        let mkl = mkl()?;
        let (n, k) = (w.size()[0], w.size()[1]);
        if rows <= MAX_ROWS {
            return None;
        }
        let (m, n32, k32) = (
            c_int::try_from(rows).ok()?,
            c_int::try_from(n).ok()?,
            c_int::try_from(k).ok()?,
        );
        // A poisoned lock only means another product panicked; the cache is rebuilt below
        // if its state is not the current weight's.
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = WeightKey::of(w);
        let fresh = slot.as_ref().is_some_and(|p| p.key == key);
        if !fresh {
            *slot = None;
            // SAFETY: MKL's documented query; no memory is touched.
            let bytes = unsafe { (mkl.get_size)(B_MATRIX, m, n32, k32) };
            if bytes == 0 {
                return None;
            }
            let buffer = Tensor::empty([bytes.div_ceil(4) as i64], (Kind::Float, Device::Cpu));
            // SAFETY: `w` is a contiguous n × k f32 matrix (checked by the caller), read as
            // op(B) = wᵀ with leading dimension k; `buffer` holds the bytes MKL asked for.
            unsafe {
                (mkl.pack)(
                    ROW_MAJOR,
                    B_MATRIX,
                    TRANS,
                    m,
                    n32,
                    k32,
                    1.0,
                    w.data_ptr() as *const c_float,
                    k32,
                    buffer.data_ptr() as *mut c_float,
                )
            };
            *slot = Some(Packed { key, buffer });
        }
        let packed = slot.as_ref()?;
        let x = x.contiguous();
        let mut out_shape = x.size();
        if let Some(last) = out_shape.last_mut() {
            *last = n;
        }
        let mut y = Tensor::empty(out_shape.as_slice(), (Kind::Float, Device::Cpu));
        // SAFETY: `x` is a contiguous m × k f32 matrix, `packed.buffer` the weight packed as
        // op(B) for these n and k, `y` a fresh contiguous m × n f32 matrix, all alive for
        // the call; MKL writes `y` only.
        unsafe {
            (mkl.compute)(
                ROW_MAJOR,
                NO_TRANS,
                PACKED,
                m,
                n32,
                k32,
                x.data_ptr() as *const c_float,
                k32,
                packed.buffer.data_ptr() as *const c_float,
                k32,
                0.0,
                y.data_ptr() as *mut c_float,
                n32,
            )
        };
        if let Some(b) = b {
            let _ = y.g_add_(b);
        }
        Some(y)
    }
}

// CBLAS constants (mkl_cblas.h).
const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;
const PACKED: c_int = 151;
const B_MATRIX: c_int = 162;

// The C signatures, with each argument's name in mkl_cblas.h.
/// `(identifier, m, n, k) -> bytes`
type GetSize = unsafe extern "C" fn(c_int, c_int, c_int, c_int) -> usize;
/// `(layout, identifier, trans, m, n, k, alpha, src, ld, dest)`
#[rustfmt::skip]
type Pack = unsafe extern "C" fn(
    c_int, c_int, c_int, c_int, c_int, c_int, c_float, *const c_float, c_int, *mut c_float,
);
/// `(layout, transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc)`
#[rustfmt::skip]
type Compute = unsafe extern "C" fn(
    c_int, c_int, c_int, c_int, c_int, c_int, *const c_float, c_int, *const c_float, c_int,
    c_float, *mut c_float, c_int,
);

struct Mkl {
    get_size: GetSize,
    pack: Pack,
    compute: Compute,
}

/// MKL's packed-GEMM entry points (32-bit integer interface), looked up in the process:
/// libtorch's x86-64 builds link MKL statically and export them.
fn mkl() -> Option<&'static Mkl> {
    static MKL: OnceLock<Option<Mkl>> = OnceLock::new();
    MKL.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT only looks symbols up; these three have the C
        // signatures above in MKL's LP64 interface, and libtorch (which contains them) stays
        // loaded for the life of the process.
        unsafe {
            let find = |name: &std::ffi::CStr| libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
            let get_size = find(c"cblas_sgemm_pack_get_size");
            let pack = find(c"cblas_sgemm_pack");
            let compute = find(c"cblas_sgemm_compute");
            if get_size.is_null() || pack.is_null() || compute.is_null() {
                return None;
            }
            Some(Mkl {
                get_size: std::mem::transmute::<*mut c_void, GetSize>(get_size),
                pack: std::mem::transmute::<*mut c_void, Pack>(pack),
                compute: std::mem::transmute::<*mut c_void, Compute>(compute),
            })
        }
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use crate::model::linear::{Linear, mark_written};
    use tch::{Device, Kind, Tensor};

    fn random(shape: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn(shape, (Kind::Float, Device::Cpu))
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn many_rows_equal_libtorch_whatever_the_row_count_the_weight_was_packed_for() {
        for &(n, k) in &[(37, 33), (300, 576), (1000, 150)] {
            let w = random(&[n, k], n + k);
            let b = random(&[n], n);
            for bias in [None, Some(b.shallow_clone())] {
                let layer =
                    Linear::new(w.shallow_clone(), bias.as_ref().map(|b| b.shallow_clone()));
                for rows in [17, 128, 40, 300, 17] {
                    let x = random(&[1, rows, k], rows);
                    let ours = tch::no_grad(|| layer.forward(&x));
                    let theirs = x.linear(&w, bias.as_ref());
                    assert_eq!(ours.size(), theirs.size());
                    let scale = theirs.abs().max().double_value(&[]);
                    let d = max_abs_diff(&ours, &theirs) / scale;
                    assert!(d < 1e-6, "n={n} k={k} rows={rows}: {d}");
                }
            }
        }
    }

    #[test]
    fn a_written_weight_is_packed_again() {
        let w = random(&[64, 48], 1);
        let layer = Linear::new(w.shallow_clone(), None);
        let x = random(&[32, 48], 2);
        let before = tch::no_grad(|| layer.forward(&x));
        // Written by libtorch: the version counter moves by itself.
        tch::no_grad(|| {
            let _ = w.shallow_clone().g_mul_scalar_(2.0);
        });
        let after = tch::no_grad(|| layer.forward(&x));
        assert!(max_abs_diff(&after, &(&before * 2.0)) < 1e-4);
        // Written through its memory, as the fused AdamW step does, then marked.
        // SAFETY: `w` is a contiguous f32 tensor of 64 × 48 values that nothing else uses now.
        let values = unsafe { std::slice::from_raw_parts_mut(w.data_ptr() as *mut f32, 64 * 48) };
        values.iter_mut().for_each(|v| *v = -*v);
        mark_written(&w);
        let negated = tch::no_grad(|| layer.forward(&x));
        assert!(max_abs_diff(&negated, &(&before * -2.0)) < 1e-4);
    }
}
