//! The Llama decoder (Llama 2/3, SmolLM2), which Qwen2 reuses with q/k/v biases.
//!
//! Pre-norm blocks: `x + attn(rmsnorm(x))`, then `x + mlp(rmsnorm(x))`; grouped-query attention
//! with rotary embeddings in the "rotate half" layout Hugging Face checkpoints use; SwiGLU MLP.
//! Weights live in a `tch::nn::VarStore` under their Hugging Face names
//! (`model.layers.0.self_attn.q_proj.weight`, …), except that each layer's q/k/v projections
//! are stored as one `qkv_proj` and its gate/up projections as one `gate_up_proj`: one matrix
//! product instead of three and two (larger products run faster, ≈ 10 % of a prefill on 2
//! CPU cores), with the same numbers per output. [`Model::named_weights`] gives every weight
//! under its Hugging Face name (views into the fused tensors), so saving is unchanged.

use std::collections::HashMap;

use serde_json::Value;
use tch::{Device, Kind, Tensor, nn};

use super::linear::{Linear, Precision};
use super::norm::rms_norm;
use super::rotary::{self, Rope};
use super::{Arch, AttnMask, Config, hf_base_config};
use crate::{Error, Result};

mod adapters;
mod step;

/// Reads a Llama `config.json`.
pub fn config_from_hf(v: &Value) -> Result<Config> {
    let o_bias = v
        .get("attention_bias")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if o_bias || v.get("mlp_bias").and_then(Value::as_bool).unwrap_or(false) {
        return Err(Error::Unsupported(
            "Llama with attention_bias/mlp_bias".into(),
        ));
    }
    let mut config = hf_base_config(v, Arch::Llama, false)?;
    // Llama configs may give the head size explicitly (it need not be hidden / heads).
    if let Some(head_dim) = v.get("head_dim").and_then(Value::as_i64) {
        config.head_dim = head_dim;
    }
    Ok(config)
}

/// Per-layer keys and values of everything seen so far, `[B, kv_heads, S, head_dim]`.
///
/// Why preallocated: appending a step's keys by concatenation copies the whole cache, every
/// layer, every token; at self-play's lengths (prompts of a thousand tokens, batches of 16)
/// that copy outweighs the step's own work. Each layer's keys and values live in a buffer
/// with room for `capacity` positions; a step writes its positions in place and attention
/// reads a view of the filled part. A step past the capacity doubles it (one copy).
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    /// Positions each layer's buffer is made for when the first step arrives (0: exactly
    /// the first step's).
    capacity: i64,
}

/// One layer's buffers `[B, kv_heads, capacity, head_dim]` and how many positions are filled.
#[derive(Debug)]
pub struct LayerCache {
    k: Tensor,
    v: Tensor,
    len: i64,
}

impl LayerCache {
    /// Makes room for `t` more positions: doubles the buffers (one copy) when they are full.
    fn reserve(&mut self, t: i64) {
        let room = self.k.size()[2];
        if self.len + t <= room {
            return;
        }
        let grown = (2 * room).max(self.len + t);
        let len = self.len;
        let grow = |x: &Tensor| {
            let mut shape = x.size();
            shape[2] = grown;
            let bigger = Tensor::empty(shape.as_slice(), (x.kind(), x.device()));
            bigger.narrow(2, 0, len).copy_(&x.narrow(2, 0, len));
            bigger
        };
        self.k = grow(&self.k);
        self.v = grow(&self.v);
    }

    /// Writes this step's keys and values `[B, kv_heads, T, head_dim]` after the filled part
    /// (growing the buffers if they are full) and returns views of everything filled.
    fn append(
        slot: &mut Option<LayerCache>,
        k: Tensor,
        v: Tensor,
        capacity: i64,
    ) -> (Tensor, Tensor) {
        let t = k.size()[2];
        let layer = match slot {
            Some(layer) => layer,
            None => {
                let shape = |x: &Tensor| {
                    let mut s = x.size();
                    s[2] = capacity.max(t);
                    s
                };
                slot.insert(LayerCache {
                    k: Tensor::empty(shape(&k).as_slice(), (k.kind(), k.device())),
                    v: Tensor::empty(shape(&v).as_slice(), (v.kind(), v.device())),
                    len: 0,
                })
            }
        };
        layer.reserve(t);
        layer.k.narrow(2, layer.len, t).copy_(&k);
        layer.v.narrow(2, layer.len, t).copy_(&v);
        layer.len += t;
        (
            layer.k.narrow(2, 0, layer.len),
            layer.v.narrow(2, 0, layer.len),
        )
    }
}

impl KvCache {
    pub fn new(num_layers: i64) -> Self {
        Self::with_capacity(num_layers, 0)
    }

    /// A cache whose buffers hold `capacity` positions before they must grow: the prompt's
    /// length plus the tokens to generate.
    pub fn with_capacity(num_layers: i64, capacity: i64) -> Self {
        KvCache {
            layers: (0..num_layers).map(|_| None).collect(),
            capacity,
        }
    }

    /// Number of positions cached.
    pub fn len(&self) -> i64 {
        match self.layers.first() {
            Some(Some(layer)) => layer.len,
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every layer's filled keys, then values, as `[B, kv_heads, len, head_dim]` views: what
    /// a test compares between two ways of filling a cache.
    pub fn tensors(&self) -> Vec<Tensor> {
        self.layers
            .iter()
            .flatten()
            .flat_map(|l| [l.k.narrow(2, 0, l.len), l.v.narrow(2, 0, l.len)])
            .collect()
    }

    /// Appends the rows of `other` after this cache's, the two aligned at their last
    /// position: the shorter side's rows start with zeros, which the attention mask must mark
    /// as padding (as [`super::left_pad`] marks a prompt's). Each side keeps the room for new
    /// positions it had. Continuous batching admits prompts this way into a running batch.
    pub fn append_rows(&mut self, other: KvCache) {
        let len = self.len().max(other.len());
        for (mine, theirs) in self.layers.iter_mut().zip(other.layers) {
            let Some(b) = theirs else { continue };
            let Some(a) = mine.as_mut() else {
                *mine = Some(b);
                continue;
            };
            let room = (a.k.size()[2] - a.len).max(b.k.size()[2] - b.len);
            let merge = |x: &Tensor, xl: i64, y: &Tensor, yl: i64| {
                let (bx, by) = (x.size()[0], y.size()[0]);
                let mut shape = x.size();
                shape[0] = bx + by;
                shape[2] = len + room;
                let out = Tensor::empty(shape.as_slice(), (x.kind(), x.device()));
                for (rows, t, tl) in [
                    (out.narrow(0, 0, bx), x, xl),
                    (out.narrow(0, bx, by), y, yl),
                ] {
                    let _ = rows.narrow(2, 0, len - tl).zero_();
                    rows.narrow(2, len - tl, tl).copy_(&t.narrow(2, 0, tl));
                }
                out
            };
            a.k = merge(&a.k, a.len, &b.k, b.len);
            a.v = merge(&a.v, a.len, &b.v, b.len);
            a.len = len;
        }
    }

    /// Keeps the batch rows `rows` (a 1-D int64 tensor of indices), in that order; an index
    /// given twice copies its row.
    pub fn keep_rows(&mut self, rows: &Tensor) {
        for layer in self.layers.iter_mut().flatten() {
            layer.k = layer.k.index_select(0, rows);
            layer.v = layer.v.index_select(0, rows);
        }
    }
}

/// Splits the last dimension into parts of `sizes`. One `split` rather than a `narrow` per
/// part: its backward pass concatenates the parts' gradients, where each `narrow` writes its
/// gradient into a zero-filled tensor of the whole size and autograd then adds those up
/// (under `perf`, zero-fills went from 2.5 % to 0.9 % of a training step).
fn split_last(x: &Tensor, sizes: &[i64]) -> Vec<Tensor> {
    x.split_with_sizes(sizes, -1)
}

struct Attention {
    /// q, k and v projections stacked: `[q_out + 2 kv_out, H]`, with their biases (Qwen2).
    qkv: Linear,
    o: Linear,
}

struct Layer {
    input_norm: Tensor,
    attn: Attention,
    post_norm: Tensor,
    /// gate and up projections stacked: `[2 I, H]`.
    gate_up: Linear,
    down: Linear,
}

impl Layer {
    /// The block's projections, attention's then the MLP's.
    fn projections_mut(&mut self) -> [&mut Linear; 4] {
        [
            &mut self.attn.qkv,
            &mut self.attn.o,
            &mut self.gate_up,
            &mut self.down,
        ]
    }
}

/// Hugging Face weights stacked as the model stores them, and how to take them apart.
const FUSED: [(&str, &[&str]); 3] = [
    (
        "self_attn.qkv_proj.weight",
        &[
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
        ],
    ),
    (
        "self_attn.qkv_proj.bias",
        &[
            "self_attn.q_proj.bias",
            "self_attn.k_proj.bias",
            "self_attn.v_proj.bias",
        ],
    ),
    (
        "mlp.gate_up_proj.weight",
        &["mlp.gate_proj.weight", "mlp.up_proj.weight"],
    ),
];

/// Output rows of each part of a fused weight, in order.
fn fused_sizes(c: &Config, fused: &str) -> Vec<i64> {
    let (q_out, kv_out) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    if fused.starts_with("self_attn.qkv_proj") {
        vec![q_out, kv_out, kv_out]
    } else {
        vec![c.intermediate_size, c.intermediate_size]
    }
}

/// A decoder-only language model (Llama or Qwen2) with its weights.
pub struct Model {
    pub config: Config,
    pub vs: nn::VarStore,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// The output projection; shares the embedding's weight when they are tied.
    lm_head: Linear,
    /// Rotary tables `[max_positions, head_dim]`, f32.
    cos: Tensor,
    sin: Tensor,
    /// Low-rank adapters, when the model is trained through them (see [`super::lora`]).
    adapters: Option<adapters::Adapters>,
}

/// The Hugging Face name and shape of every weight of a model with this config.
pub fn weight_shapes(c: &Config) -> Vec<(String, Vec<i64>)> {
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let (q_out, kv_out) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![c.vocab_size, h],
    )];
    for l in 0..c.num_layers {
        let p = format!("model.layers.{l}");
        out.push((format!("{p}.input_layernorm.weight"), vec![h]));
        out.push((format!("{p}.self_attn.q_proj.weight"), vec![q_out, h]));
        out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv_out, h]));
        out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv_out, h]));
        if c.qkv_bias {
            out.push((format!("{p}.self_attn.q_proj.bias"), vec![q_out]));
            out.push((format!("{p}.self_attn.k_proj.bias"), vec![kv_out]));
            out.push((format!("{p}.self_attn.v_proj.bias"), vec![kv_out]));
        }
        out.push((format!("{p}.self_attn.o_proj.weight"), vec![h, q_out]));
        out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
        out.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
        out.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
        out.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
    }
    out.push(("model.norm.weight".to_string(), vec![h]));
    if !c.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![c.vocab_size, h]));
    }
    out
}

/// Random weights for unit tests: norms at 1, embeddings standard normal (so that a tiny
/// model's logits are well separated and greedy choices are not near-ties decided by rounding),
/// projections normal with std 0.2. Drawn from our own generator, so the same seed gives the
/// same model whatever else runs in the process.
pub fn random_weights(c: &Config, seed: u64) -> HashMap<String, Tensor> {
    random_weights_scaled(c, seed, 1.0)
}

/// [`random_weights`] with every standard deviation multiplied by `scale`: a model of a real
/// width needs smaller weights (transformers initialises with 0.02) for its activations to
/// stay in a realistic range.
pub fn random_weights_scaled(c: &Config, seed: u64, scale: f64) -> HashMap<String, Tensor> {
    let mut rng = azr::rng::SplitMix64::new(seed);
    weight_shapes(c)
        .into_iter()
        .map(|(name, shape)| {
            let n: i64 = shape.iter().product();
            let std = scale
                * if name.contains("embed_tokens") || name.starts_with("lm_head") {
                    1.0
                } else {
                    0.2
                };
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    if name.ends_with("norm.weight") {
                        1.0
                    } else {
                        (rng.normal() * std) as f32
                    }
                })
                .collect();
            (name, Tensor::from_slice(&values).view(shape.as_slice()))
        })
        .collect()
}

impl Model {
    /// Builds the model from Hugging Face-named f32 weights, checking that every weight is present
    /// with the right shape, then moves it to `device` in `kind`.
    pub fn from_weights(
        config: Config,
        mut weights: HashMap<String, Tensor>,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        config.validate()?;
        let mut checked = HashMap::new();
        for (name, shape) in weight_shapes(&config) {
            let t = weights
                .remove(&name)
                .ok_or_else(|| Error::MissingWeight(name.clone()))?;
            if t.size() != shape {
                return Err(Error::Shape {
                    name,
                    got: t.size(),
                    want: shape,
                });
            }
            checked.insert(name, t);
        }
        // Stack the weights that are stored fused.
        for l in 0..config.num_layers {
            let p = format!("model.layers.{l}");
            for (fused, parts) in FUSED {
                let names: Vec<String> = parts.iter().map(|part| format!("{p}.{part}")).collect();
                // Biases exist only for some architectures.
                if names.iter().all(|n| checked.contains_key(n)) {
                    let parts: Vec<Tensor> =
                        names.iter().filter_map(|n| checked.remove(n)).collect();
                    checked.insert(format!("{p}.{fused}"), Tensor::cat(&parts, 0));
                }
            }
        }
        let mut vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        for (name, t) in checked {
            let _var = var_named(&root, &name, &t.to_kind(Kind::Float))?;
        }
        vs.set_device(device);
        vs.set_kind(kind);
        let vars = vs.variables();
        let get = |name: &str| -> Result<Tensor> {
            vars.get(name)
                .map(Tensor::shallow_clone)
                .ok_or_else(|| Error::MissingWeight(name.to_string()))
        };
        let opt = |name: &str| vars.get(name).map(Tensor::shallow_clone);
        let mut layers = Vec::new();
        for l in 0..config.num_layers {
            let p = format!("model.layers.{l}");
            layers.push(Layer {
                input_norm: get(&format!("{p}.input_layernorm.weight"))?,
                attn: Attention {
                    qkv: Linear::new(
                        get(&format!("{p}.self_attn.qkv_proj.weight"))?,
                        opt(&format!("{p}.self_attn.qkv_proj.bias")),
                    ),
                    o: Linear::new(get(&format!("{p}.self_attn.o_proj.weight"))?, None),
                },
                post_norm: get(&format!("{p}.post_attention_layernorm.weight"))?,
                gate_up: Linear::new(get(&format!("{p}.mlp.gate_up_proj.weight"))?, None),
                down: Linear::new(get(&format!("{p}.mlp.down_proj.weight"))?, None),
            });
        }
        let embed = get("model.embed_tokens.weight")?;
        let lm_head = if config.tie_word_embeddings {
            embed.shallow_clone()
        } else {
            get("lm_head.weight")?
        };
        let (cos, sin) = rope_tables(&config, device);
        Ok(Model {
            norm: get("model.norm.weight")?,
            embed,
            layers,
            lm_head: Linear::new(lm_head, None),
            cos,
            sin,
            config,
            vs,
            adapters: None,
        })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn kind(&self) -> Kind {
        self.embed.kind()
    }

    /// Runs the decoder over `ids` `[B, T]` and returns the final hidden states `[B, T, H]`.
    ///
    /// `positions` `[B, T]` and the attention mask come from `super::positions_and_bias`; with
    /// a cache, the new keys/values are appended to it and `S` = cached + `T`.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &AttnMask,
        cache: Option<&mut KvCache>,
    ) -> Tensor {
        self.forward_hidden_at(ids, positions, bias, cache, Precision::F32)
    }

    /// [`Model::forward_hidden`] from the weights `precision` names (see [`Precision`]).
    pub fn forward_hidden_at(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &AttnMask,
        mut cache: Option<&mut KvCache>,
        precision: Precision,
    ) -> Tensor {
        let rope = self.rope(positions);
        let mut x = self.embed(ids);
        for l in 0..self.layers.len() {
            let slot = cache.as_deref_mut().map(|c| (&mut c.layers[l], c.capacity));
            x = self.layer_at(l, &x, &rope, bias, slot, precision);
        }
        self.final_norm(&x)
    }

    /// Input embeddings of `ids` `[B, T]`: `[B, T, H]`.
    pub fn embed(&self, ids: &Tensor) -> Tensor {
        let (b, t) = (ids.size()[0], ids.size()[1]);
        self.embed
            .index_select(0, &ids.flatten(0, -1))
            .view([b, t, self.config.hidden_size])
    }

    /// Rotary cos/sin for `positions` `[B, T]`, each `[B, 1, T, head_dim]` in the model dtype.
    pub fn rope(&self, positions: &Tensor) -> Rope {
        let (b, t) = (positions.size()[0], positions.size()[1]);
        let d = self.config.head_dim;
        let flat = positions.flatten(0, -1);
        let pick = |table: &Tensor| {
            table
                .index_select(0, &flat)
                .view([b, 1, t, d])
                .to_kind(self.kind())
        };
        Rope {
            cos: pick(&self.cos),
            sin: pick(&self.sin),
        }
    }

    /// The final norm, applied to the last layer's output.
    pub fn final_norm(&self, x: &Tensor) -> Tensor {
        rms_norm(x, &self.norm, self.config.rms_norm_eps)
    }

    /// Decoder block `l` on `x` `[B, T, H]` from the weights `precision` names; with a cache
    /// slot (and the capacity a new one is made with), appends this step's keys and values to
    /// it and attends over all of them.
    pub fn layer_at(
        &self,
        l: usize,
        x: &Tensor,
        rope: &Rope,
        bias: &AttnMask,
        cache: Option<(&mut Option<LayerCache>, i64)>,
        precision: Precision,
    ) -> Tensor {
        let c = &self.config;
        let layer = &self.layers[l];
        let (b, t) = (x.size()[0], x.size()[1]);
        let h = rms_norm(x, &layer.input_norm, c.rms_norm_eps);
        let a = &layer.attn;
        let (q_out, kv_out) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let qkv = a.qkv.forward_at(&h, precision);
        let [q, k, v]: [Tensor; 3] = split_last(&qkv, &[q_out, kv_out, kv_out])
            .try_into()
            .unwrap_or_else(|_| unreachable!("split into three sizes gives three parts"));
        // `[B, T, heads, head_dim]` views; attention wants `[B, heads, T, head_dim]`.
        let heads = |x: &Tensor, n: i64| x.reshape([b, t, n, c.head_dim]);
        let q = rotary::apply(&heads(&q, c.num_heads), rope);
        let k = rotary::apply(&heads(&k, c.num_kv_heads), rope);
        let v = heads(&v, c.num_kv_heads).transpose(1, 2);
        let (k, v) = match cache {
            Some((slot, capacity)) => LayerCache::append(slot, k, v, capacity),
            None => (k, v),
        };
        let s = k.size()[2];
        let rep = c.num_heads / c.num_kv_heads;
        if let (1, true, AttnMask::Bias(bias)) = (t, rep > 1, bias) {
            // One new position (a decode step): the `rep` query heads that share a key/value
            // head are the rows of one attention over it, so the keys and values are read
            // in place rather than copied `rep` times. The bias `[B, 1, 1, S]` applies to
            // every row alike, as it does to every head.
            let q = q.reshape([b, c.num_kv_heads, rep, c.head_dim]);
            let attn = attend(&q, &k, &v, &AttnMask::Bias(bias.shallow_clone()));
            let attn = attn.reshape([b, t, c.num_heads * c.head_dim]);
            return self.layer_rest(layer, x, &attn, precision);
        }
        // Grouped-query attention: each key/value head serves `rep` query heads. (Expanding here
        // measured no slower than SDPA's `enable_gqa` on CPU.)
        let expand = |x: &Tensor| {
            x.unsqueeze(2)
                .expand([b, c.num_kv_heads, rep, s, c.head_dim], false)
                .reshape([b, c.num_heads, s, c.head_dim])
        };
        let (k, v) = (expand(&k), expand(&v));
        let attn =
            attend(&q, &k, &v, bias)
                .transpose(1, 2)
                .reshape([b, t, c.num_heads * c.head_dim]);
        self.layer_rest(layer, x, &attn, precision)
    }

    /// The rest of a decoder block after attention `[B, T, heads · head_dim]`: the output
    /// projection, the residual, the MLP.
    fn layer_rest(&self, layer: &Layer, x: &Tensor, attn: &Tensor, precision: Precision) -> Tensor {
        let c = &self.config;
        let a = &layer.attn;
        // `x + …`, never `+=`: tch's `+=` adds in place, which would overwrite the residual
        // stream that autograd saved for the norms' backward pass.
        let x = x + a.o.forward_at(attn, precision);
        let h = rms_norm(&x, &layer.post_norm, c.rms_norm_eps);
        let gate_up = layer.gate_up.forward_at(&h, precision);
        let i = c.intermediate_size;
        let [gate, up]: [Tensor; 2] = split_last(&gate_up, &[i, i])
            .try_into()
            .unwrap_or_else(|_| unreachable!("split into two sizes gives two parts"));
        let mlp = layer.down.forward_at(&(gate.silu() * up), precision);
        x + mlp
    }

    /// Logits (always f32, whatever the model dtype) of hidden states `[..., H]`.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.logits_at(hidden, Precision::F32)
    }

    /// [`Model::logits`] from the weights `precision` names.
    pub fn logits_at(&self, hidden: &Tensor, precision: Precision) -> Tensor {
        self.lm_head
            .forward_at(hidden, precision)
            .to_kind(Kind::Float)
    }

    fn linears(&self) -> impl Iterator<Item = &Linear> {
        self.layers
            .iter()
            .flat_map(|l| [&l.attn.qkv, &l.attn.o, &l.gate_up, &l.down])
            .chain(std::iter::once(&self.lm_head))
    }

    /// Makes the `precision` rollout copy of every weight that changed since its copy was
    /// made (after a load or an optimiser step), so that generation does not pay for it in
    /// its first step. Does nothing for f32 or where that precision's kernel does not run.
    pub fn refresh_rollout_copy(&self, precision: Precision) {
        if crate::model::linear::kernel_available(precision) {
            for linear in self.linears() {
                linear.refresh_rollout_copy(precision);
            }
        }
    }

    /// Bytes held by the rollout copies.
    pub fn rollout_copy_bytes(&self) -> usize {
        self.linears().map(Linear::rollout_copy_bytes).sum()
    }

    /// All weights under their Hugging Face names (tied `lm_head` omitted); the parts of a
    /// fused weight are views into it, so writing to one writes to the model.
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (name, t) in self.vs.variables() {
            let fused = FUSED.iter().find_map(|(fused, parts)| {
                name.strip_suffix(fused)
                    .map(|prefix| (prefix, *fused, *parts))
            });
            match fused {
                Some((prefix, fused, parts)) => {
                    let mut start = 0;
                    for (part, rows) in parts.iter().zip(fused_sizes(&self.config, fused)) {
                        out.push((format!("{prefix}{part}"), t.narrow(0, start, rows)));
                        start += rows;
                    }
                }
                None => out.push((name, t)),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The parameters as stored (fused weights whole), sorted by name: what the optimiser
    /// updates and where gradients accumulate.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// A variable of `root`'s store holding a copy of `t`, stored under the dotted `name`
/// itself (VarStore joins path components with '.', so a Hugging Face or PEFT name is kept
/// as it is).
fn var_named(root: &nn::Path, name: &str, t: &Tensor) -> Result<Tensor> {
    let mut parts: Vec<&str> = name.split('.').collect();
    let leaf = parts.pop().unwrap_or_default();
    let path = parts.iter().fold(root.clone(), |p, c| p / *c);
    Ok(tch::no_grad(|| path.f_var_copy(leaf, t))?)
}

/// Scaled dot-product attention of `q` over `k`, `v` under `mask`.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: &AttnMask) -> Tensor {
    match mask {
        AttnMask::Causal => {
            Tensor::scaled_dot_product_attention::<Tensor>(q, k, v, None, 0.0, true, None, false)
        }
        AttnMask::Bias(bias) => {
            Tensor::scaled_dot_product_attention(q, k, v, Some(bias), 0.0, false, None, false)
        }
    }
}

/// cos/sin of `position * inv_freq`, duplicated across the two halves of the head dimension,
/// computed as transformers does (f32, `inv_freq = 1 / theta^(2i/d)`).
fn rope_tables(c: &Config, device: Device) -> (Tensor, Tensor) {
    let half = c.head_dim / 2;
    let exponent = Tensor::arange_start_step(0, c.head_dim, 2, (Kind::Int64, Device::Cpu))
        .to_kind(Kind::Float)
        / c.head_dim as f64;
    let inv_freq = Tensor::scalar_tensor(c.rope_theta, (Kind::Float, Device::Cpu))
        .pow(&exponent)
        .reciprocal();
    let pos =
        Tensor::arange(c.max_position_embeddings, (Kind::Int64, Device::Cpu)).to_kind(Kind::Float);
    let freqs = pos.view([-1, 1]) * inv_freq.view([1, half]);
    let emb = Tensor::cat(&[&freqs, &freqs], -1);
    (emb.cos().to_device(device), emb.sin().to_device(device))
}
