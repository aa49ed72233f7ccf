//! A decode step as one pass of Rust over the model: the products by the few-row kernels
//! ([`Linear::forward_rows`](crate::model::linear::Linear)), and everything between them
//! (norms, rotary, the cache write, attention, SwiGLU, residuals) as loops over the step's
//! few rows. libtorch only allocates the logits.
//!
//! Why: outside its products, a decode step's arithmetic is a few vectors per layer, but the
//! libtorch path runs it as about fifteen operators per layer (splits, reshapes, the cache's
//! copies, the attention mask, SDPA, `silu`, `mul`, `add`), each with its dispatch,
//! allocation and thread-pool bookkeeping: on a 2-core Zen 3, SmolLM2-135M's batch-1 step
//! from its 4-bit copy took 11.7 ms through libtorch and takes 7.3 ms here (`bench
//! --compare-unfused`).
//!
//! The arithmetic is the libtorch path's, up to rounding: attention sums its scores and
//! values in another order and normalises once at the end, and `exp` (softmax, `silu`) is a
//! polynomial within 2 ulp of libm's. Tests pin the logits to the libtorch path's.
//!
//! It runs where the libtorch path would run the same kernels: f32 weights on the CPU,
//! outside autograd, a filled cache in the layout [`LayerCache`] keeps. Anything else
//! (a GPU, bf16, an empty cache) returns `None` and the caller takes the libtorch path.

use tch::{Device, Kind, Tensor};

use super::{KvCache, LayerCache, Model};
use crate::model::linear::Precision;
use crate::model::norm::rms_norm_rows;
use crate::model::rotary::rotate;
use crate::vector::{dot, exp, simd_fn};

/// Below this many multiply-adds, attention runs on one thread: waking another costs more.
const MIN_PARALLEL_WORK: usize = 1 << 15;

impl Model {
    /// The logits `[B, V]` (f32) after one new token per row, `tokens[r]` for row `r`,
    /// following what `cache` holds, read from the weights `precision` names; the cache gains
    /// the new position. `mask` is the batch's `[B, S]` attention mask row by row (1 = a real
    /// token, the new one included as its last column), as
    /// [`positions_and_bias`](crate::model::positions_and_bias) reads it.
    ///
    /// `None`, with the cache untouched but for room made for one more position, where the
    /// fused step does not apply (see the module's documentation) or the inputs do not match
    /// the cache: the caller then runs the libtorch path, which reports what is wrong.
    pub fn decode_fused(
        &self,
        tokens: &[i64],
        mask: &[i64],
        cache: &mut KvCache,
        precision: Precision,
    ) -> Option<Tensor> {
        let c = &self.config;
        let b = tokens.len();
        let cached = usize::try_from(cache.len()).ok()?;
        let s = cached + 1;
        if b == 0
            || mask.len() != b * s
            || cache.layers.len() != self.layers.len()
            || tokens.iter().any(|&t| t < 0 || t >= c.vocab_size)
            || !self.fused_applies()
        {
            return None;
        }
        for slot in &cache.layers {
            if !slot.as_ref().is_some_and(|l| l.fits(b, cached, c)) {
                return None;
            }
        }
        // Positions count real tokens, as `positions_and_bias` does.
        let positions: Vec<usize> = mask
            .chunks_exact(s)
            .map(|row| row.iter().filter(|&&m| m > 0).count().saturating_sub(1))
            .collect();
        if positions
            .iter()
            .any(|&p| p >= c.max_position_embeddings as usize)
        {
            return None;
        }
        let allowed: Vec<bool> = mask.iter().map(|&m| m > 0).collect();
        for layer in cache.layers.iter_mut().flatten() {
            layer.reserve(1);
        }

        let h = c.hidden_size as usize;
        let hd = c.head_dim as usize;
        let (heads, kv_heads) = (c.num_heads as usize, c.num_kv_heads as usize);
        let (q_out, kv_out) = (heads * hd, kv_heads * hd);
        let qkv_width = q_out + 2 * kv_out;
        let inter = c.intermediate_size as usize;
        let eps = c.rms_norm_eps;
        // What the slices of tensors below rely on: `fused_applies` checked that each is a
        // contiguous f32 CPU tensor; the model is borrowed, so none is freed or written
        // while the slices live.
        // SAFETY: `fused_applies` checked a contiguous f32 CPU tensor; the model is borrowed.
        let embed = unsafe { values(&self.embed) };
        // SAFETY: as for `embed`: contiguous f32 CPU tensors of the borrowed model.
        let (cos, sin) = unsafe { (values(&self.cos), values(&self.sin)) };

        let mut x = vec![0f32; b * h];
        for (row, &t) in x.chunks_exact_mut(h).zip(tokens) {
            row.copy_from_slice(&embed[t as usize * h..][..h]);
        }
        let mut normed = vec![0f32; b * h];
        let mut qkv = vec![0f32; b * qkv_width];
        let mut q = vec![0f32; b * q_out];
        let mut attn = vec![0f32; b * q_out];
        let mut proj = vec![0f32; b * h];
        let mut gate_up = vec![0f32; b * 2 * inter];
        let mut act = vec![0f32; b * inter];
        for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let Some(kv) = slot.as_mut() else {
                unreachable!("every layer's cache was checked above")
            };
            // SAFETY: a contiguous f32 CPU tensor of the borrowed model (`fused_applies`).
            rms_norm_rows(&x, unsafe { values(&layer.input_norm) }, eps, &mut normed);
            layer.attn.qkv.forward_rows(&normed, b, &mut qkv, precision);

            // Rotary on the new queries and keys; the keys and values go straight into the
            // cache at position `cached` of each row's heads.
            let cap = kv.k.size()[2] as usize;
            let head_at = |r: usize, g: usize| ((r * kv_heads + g) * cap + cached) * hd;
            let (kp, vp) = (kv.k.data_ptr() as *mut f32, kv.v.data_ptr() as *mut f32);
            for (r, (row, q)) in qkv
                .chunks_exact(qkv_width)
                .zip(q.chunks_exact_mut(q_out))
                .enumerate()
            {
                let p = positions[r];
                let (cos, sin) = (&cos[p * hd..][..hd], &sin[p * hd..][..hd]);
                for (src, dst) in row[..q_out].chunks_exact(hd).zip(q.chunks_exact_mut(hd)) {
                    rotate(src, cos, sin, dst);
                }
                for g in 0..kv_heads {
                    // SAFETY: `fits` checked the buffers are contiguous `[b, kv_heads, cap,
                    // hd]` f32 with `cached < cap` after `reserve`; this head's slot at
                    // `cached` is inside, and nothing else reads or writes it now.
                    let (kd, vd) = unsafe {
                        (
                            std::slice::from_raw_parts_mut(kp.add(head_at(r, g)), hd),
                            std::slice::from_raw_parts_mut(vp.add(head_at(r, g)), hd),
                        )
                    };
                    rotate(&row[q_out + g * hd..][..hd], cos, sin, kd);
                    vd.copy_from_slice(&row[q_out + kv_out + g * hd..][..hd]);
                }
            }
            attention(&Attention {
                q: &q,
                keys: kp,
                values: vp,
                allowed: &allowed,
                out: Out(attn.as_mut_ptr()),
                rows: b,
                heads,
                kv_heads,
                head_dim: hd,
                capacity: cap,
                len: s,
            });

            layer.attn.o.forward_rows(&attn, b, &mut proj, precision);
            add_into(&mut x, &proj);
            // SAFETY: a contiguous f32 CPU tensor of the borrowed model (`fused_applies`).
            rms_norm_rows(&x, unsafe { values(&layer.post_norm) }, eps, &mut normed);
            layer
                .gate_up
                .forward_rows(&normed, b, &mut gate_up, precision);
            swiglu(&gate_up, inter, &mut act);
            layer.down.forward_rows(&act, b, &mut proj, precision);
            add_into(&mut x, &proj);
        }
        for layer in cache.layers.iter_mut().flatten() {
            layer.len += 1;
        }
        // SAFETY: a contiguous f32 CPU tensor of the borrowed model (`fused_applies`).
        rms_norm_rows(&x, unsafe { values(&self.norm) }, eps, &mut normed);
        let vocab = c.vocab_size as usize;
        let logits = Tensor::empty([b as i64, c.vocab_size], (Kind::Float, Device::Cpu));
        // SAFETY: a fresh contiguous f32 tensor of b × vocab values that nothing else sees.
        let out =
            unsafe { std::slice::from_raw_parts_mut(logits.data_ptr() as *mut f32, b * vocab) };
        self.lm_head.forward_rows(&normed, b, out, precision);
        Some(logits)
    }

    /// Whether the weights and tables the fused step reads as slices are contiguous f32 CPU
    /// tensors, and autograd is off (the step is invisible to it).
    fn fused_applies(&self) -> bool {
        let plain =
            |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous();
        let c = &self.config;
        let (h, hd) = (c.hidden_size, c.head_dim);
        !crate::model::grad_mode_enabled()
            && hd % 2 == 0
            && plain(&self.embed)
            && self.embed.size() == [c.vocab_size, h]
            && plain(&self.norm)
            && plain(&self.cos)
            && plain(&self.sin)
            && self.cos.size() == [c.max_position_embeddings, hd]
            && self.sin.size() == [c.max_position_embeddings, hd]
            && self
                .layers
                .iter()
                .all(|l| plain(&l.input_norm) && plain(&l.post_norm))
    }
}

impl LayerCache {
    /// Whether the buffers are what the fused step writes into: contiguous f32 CPU
    /// `[rows, kv_heads, capacity, head_dim]` with `cached` positions filled.
    fn fits(&self, rows: usize, cached: usize, c: &crate::model::Config) -> bool {
        let ok = |t: &Tensor| {
            t.device() == Device::Cpu
                && t.kind() == Kind::Float
                && t.is_contiguous()
                && t.dim() == 4
                && t.size()[..2] == [rows as i64, c.num_kv_heads]
                && t.size()[3] == c.head_dim
        };
        self.len == cached as i64 && ok(&self.k) && ok(&self.v) && self.k.size() == self.v.size()
    }
}

/// The values of a contiguous f32 CPU tensor.
///
/// # Safety
/// `t` is a contiguous f32 CPU tensor, not freed or written while the slice lives.
unsafe fn values(t: &Tensor) -> &[f32] {
    // SAFETY: as the caller guarantees.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

simd_fn! {
    /// `silu(gate) · up` for each row of `gate_up` (`[gate | up]`, `inter` each) into `act`.
    fn swiglu(gate_up: &[f32], inter: usize, act: &mut [f32]) {
        for (gu, a) in gate_up
            .chunks_exact(2 * inter)
            .zip(act.chunks_exact_mut(inter))
        {
            let (gate, up) = gu.split_at(inter);
            for ((a, &g), &u) in a.iter_mut().zip(gate).zip(up) {
                // libtorch's silu: x / (1 + exp(−x)).
                *a = g / (1.0 + exp(-g)) * u;
            }
        }
    }
}

/// Where the attention parts write: each its own heads' outputs.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: the parts write disjoint heads (see `attention`).
unsafe impl Send for Out {}
// SAFETY: as for `Send` above: shared only as the disjoint writes described there.
unsafe impl Sync for Out {}

/// One layer's attention for the new position of every row.
struct Attention<'a> {
    /// Rotated queries `[rows, heads, head_dim]`.
    q: &'a [f32],
    /// The cache's buffers `[rows, kv_heads, capacity, head_dim]`, `len` positions filled
    /// (the new one included).
    keys: *const f32,
    values: *const f32,
    /// `[rows, len]`: whether each row attends to each position.
    allowed: &'a [bool],
    /// `[rows, heads, head_dim]`, written.
    out: Out,
    rows: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

// SAFETY: `keys` and `values` are only read while `attention` runs; `out` see `Out`.
unsafe impl Sync for Attention<'_> {}

/// Softmax attention of each row's query heads over that row's allowed positions, the
/// heads split across libtorch's threads when there is enough work.
fn attention(a: &Attention) {
    let units = a.rows * a.heads;
    let work = units * a.len * a.head_dim;
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
    let parts = if work >= MIN_PARALLEL_WORK {
        threads.min(units)
    } else {
        1
    };
    let per_part = units.div_ceil(parts);
    crate::threads::for_each_part(units.div_ceil(per_part), &|part| {
        let mut scores = vec![0f32; a.len];
        for unit in part * per_part..((part + 1) * per_part).min(units) {
            let (r, head) = (unit / a.heads, unit % a.heads);
            let g = head / (a.heads / a.kv_heads);
            let hd = a.head_dim;
            let at = (r * a.kv_heads + g) * a.capacity * hd;
            // SAFETY: the buffers hold `rows · kv_heads · capacity · hd` values with `len ≤
            // capacity` filled per head (see `Attention`), read only here; this unit's output
            // head is written by this part alone.
            let (keys, values, out) = unsafe {
                (
                    std::slice::from_raw_parts(a.keys.add(at), a.len * hd),
                    std::slice::from_raw_parts(a.values.add(at), a.len * hd),
                    std::slice::from_raw_parts_mut(a.out.0.add(unit * hd), hd),
                )
            };
            attend(
                &a.q[unit * hd..][..hd],
                keys,
                values,
                &a.allowed[r * a.len..][..a.len],
                &mut scores,
                out,
            );
        }
    });
}

simd_fn! {
    /// One query head over its positions: `out = Σ softmax(q·k / √d) v` over the allowed
    /// ones.
    fn attend(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        allowed: &[bool],
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let hd = q.len();
        let scale = 1.0 / (hd as f32).sqrt();
        let mut max = f32::NEG_INFINITY;
        for ((score, key), &ok) in scores.iter_mut().zip(keys.chunks_exact(hd)).zip(allowed) {
            if ok {
                *score = dot(q, key) * scale;
                max = max.max(*score);
            }
        }
        let mut sum = 0.0;
        for (score, &ok) in scores.iter_mut().zip(allowed) {
            *score = if ok { exp(*score - max) } else { 0.0 };
            sum += *score;
        }
        out.fill(0.0);
        for (&p, value) in scores.iter().zip(values.chunks_exact(hd)) {
            if p != 0.0 {
                for (o, &v) in out.iter_mut().zip(value) {
                    *o += p * v;
                }
            }
        }
        // At least the new position is allowed, so `sum` ≥ 1.
        let inv = 1.0 / sum;
        for o in out.iter_mut() {
            *o *= inv;
        }
    }
}
