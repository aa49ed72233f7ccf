//! How far decoding from a rollout copy (int8, int4) is from decoding in f32, on text the model has
//! not been tuned on here: per-token KL divergence of the next-token distributions
//! (teacher-forced through the decode path, so every product is the one sampling makes), and
//! how many greedy tokens agree before the first difference.

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::generate::{SamplingParams, decode_step, generate};
use crate::model::{KvCache, Model, Precision, left_pad, positions_and_bias};
use crate::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// A short program and its explanation, written for this measurement (not from any dataset
/// the model trains on here): code and prose, as self-play's prompts mix them.
const HELD_OUT_TEXT: &str = r#"Here is a function that merges overlapping intervals, with a short explanation.

def merge(intervals):
    """Return the union of closed intervals as a sorted list of disjoint intervals."""
    out = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out

Sorting by the start puts every interval that can overlap the last merged one right after it,
so one pass suffices: an interval either extends the last merged interval or starts a new one.
For example, merge([(1, 3), (2, 6), (8, 10)]) returns [[1, 6], [8, 10]]."#;

/// The prompt greedy agreement is measured on.
const GREEDY_PROMPT: &str = "Write a Python function that returns the n-th Fibonacci number \
iteratively, then explain its running time.\n\ndef fib(n):";

/// Greedy tokens compared.
pub const GREEDY_TOKENS: usize = 64;

/// Tokens of the held-out text given before the teacher-forced decode steps start.
const CONTEXT_TOKENS: usize = 8;

#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// Next-token distributions compared (decode steps of the held-out text).
    pub positions: usize,
    /// KL(p_f32 ‖ p_copy) per position, in nats: mean, 99th percentile and largest.
    pub kl_mean: f64,
    pub kl_p99: f64,
    pub kl_max: f64,
    /// Positions whose most likely token is the same under both.
    pub top1_agreement: f64,
    /// Greedy tokens that agree before the first difference, of [`GREEDY_TOKENS`].
    pub greedy_same_prefix: usize,
}

/// Measures the `precision` rollout copy against f32 on `model`.
pub fn measure(model: &Model, tokenizer: &TextTokenizer, precision: Precision) -> Result<Mismatch> {
    let text = tokenizer.encode(HELD_OUT_TEXT)?;
    if text.len() <= CONTEXT_TOKENS + 1 {
        return Err(Error::InvalidArgument(
            "the held-out text is too short".into(),
        ));
    }
    let f32_logp = forced_logprobs(model, &text, Precision::F32)?;
    let copy_logp = forced_logprobs(model, &text, precision)?;
    // KL(p ‖ q) = Σ p (log p − log q), per position.
    let kl = (f32_logp.exp() * (&f32_logp - &copy_logp)).sum_dim_intlist(-1, false, Kind::Double);
    let mut kl = Vec::<f64>::try_from(kl)?;
    let same_top = f32_logp
        .argmax(-1, false)
        .eq_tensor(&copy_logp.argmax(-1, false))
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    kl.sort_by(f64::total_cmp);
    let positions = kl.len();
    let p99 = kl[((positions as f64 * 0.99).ceil() as usize).clamp(1, positions) - 1];

    let prompt = tokenizer.encode(GREEDY_PROMPT)?;
    let greedy = |precision| -> Result<Vec<i64>> {
        let params = SamplingParams {
            precision,
            ..SamplingParams::greedy(GREEDY_TOKENS)
        };
        let mut out = generate(model, tokenizer, std::slice::from_ref(&prompt), &params)?;
        Ok(out.pop().map(|c| c.tokens).unwrap_or_default())
    };
    let (a, b) = (greedy(Precision::F32)?, greedy(precision)?);
    let same = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    Ok(Mismatch {
        positions,
        kl_mean: kl.iter().sum::<f64>() / positions as f64,
        kl_p99: p99,
        kl_max: kl.last().copied().unwrap_or(0.0),
        top1_agreement: same_top,
        greedy_same_prefix: same,
    })
}

/// Log-probs `[positions, V]` of the next token after each token of `text` past the first
/// `CONTEXT_TOKENS`, fed one at a time through the decode path at `precision`.
fn forced_logprobs(model: &Model, text: &[i64], precision: Precision) -> Result<Tensor> {
    tch::no_grad(|| {
        let device = model.device();
        let context = text[..CONTEXT_TOKENS].to_vec();
        let (ids, mut mask) = left_pad(std::slice::from_ref(&context), 0, device)?;
        let mut cache = KvCache::new(model.config.num_layers);
        let (pos, bias) = positions_and_bias(&mask, ids.size()[1], model.kind());
        let _ = model.forward_hidden(&ids, &pos, &bias, Some(&mut cache));
        let mut rows = Vec::new();
        for &token in &text[CONTEXT_TOKENS..] {
            let next = Tensor::from_slice(&[token]).view([1, 1]).to_device(device);
            let logits = decode_step(model, &mut mask, &mut cache, &next, precision);
            rows.push(logits.log_softmax(-1, Kind::Float).to_kind(Kind::Double));
        }
        Ok(Tensor::cat(&rows, 0))
    })
}
