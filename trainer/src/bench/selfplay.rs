//! `bench-selfplay`: one self-play step's generation phase on the path self-play takes now
//! against the plain path (f32 weights, every prompt row, libtorch's operators), taking
//! turns, from the same seeds.
//!
//! Why a whole phase and not the kernels: what a user waits for is the step, and a step's
//! generation mixes prompt passes of hundreds of tokens, decoding at the batch sizes the
//! preset gives, sampling and stop strings. The throughput bench measures the parts; this
//! measures what they add up to.
//!
//! The plain path ([`SelfPlay::measure_generation`] with `reference`) decodes from the f32
//! weights, runs every prompt row in full (no shared opening, no merged repeats) and takes
//! every decode step through libtorch's operators. It keeps what cannot be switched off
//! (the preallocated KV cache, sampling in Rust), so it is a little faster than the code
//! was: the ratios printed understate the gain, never overstate it.
//!
//! The two paths sample from different weights (f32 and the rollout copy), so their tokens
//! differ; both the generation time and the tokens per second are reported, with the
//! tokens' digest. With `--set rollout.precision='"f32"'` the new path samples from f32
//! too, and the digests say whether the tokens are the same.

use serde::Serialize;

use super::median;
use crate::selfplay::{GenerationFigures, SelfPlay};
use anyhow::Result;

/// Both paths' figures, round by round.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub new: Vec<GenerationFigures>,
    pub old: Vec<GenerationFigures>,
}

/// The medians of one path's rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Medians {
    pub generate_s: f64,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub tokens_per_s: f64,
    /// Every round's digest, deduplicated: one entry when the rounds generated the same.
    pub tokens_digests: Vec<String>,
    pub logprob_gap: Option<f64>,
}

impl Medians {
    pub fn of(rounds: &[GenerationFigures]) -> Self {
        let m = |f: fn(&GenerationFigures) -> f64| {
            median(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
        };
        let mut tokens_digests: Vec<String> =
            rounds.iter().map(|r| r.tokens_digest.clone()).collect();
        tokens_digests.dedup();
        Medians {
            generate_s: m(|r| r.generate_s),
            prefill_s: m(|r| r.prefill_s),
            decode_s: m(|r| r.decode_s),
            prompt_tokens: m(|r| r.prompt_tokens as f64) as usize,
            generated_tokens: m(|r| r.generated_tokens as f64) as usize,
            tokens_per_s: m(GenerationFigures::tokens_per_s),
            tokens_digests,
            logprob_gap: rounds.iter().find_map(|r| r.logprob_gap),
        }
    }
}

/// Runs the next step's generation phase `repeats` times on each path, the paths taking
/// turns (round r starts with the new path when r is even); `progress` gets a line per run.
/// With `gap`, the new path's first run also measures its log-prob gap to f32 (untimed).
pub fn run(
    selfplay: &mut SelfPlay,
    repeats: usize,
    gap: bool,
    mut progress: impl FnMut(String),
) -> Result<Comparison> {
    let mut out = Comparison {
        new: vec![],
        old: vec![],
    };
    selfplay.prepare_generation()?;
    let repeats = repeats.max(1);
    for round in 0..repeats {
        for turn in 0..2 {
            let reference = (round + turn) % 2 == 1;
            let gap = gap && !reference && out.new.is_empty();
            let f = selfplay.measure_generation(reference, gap)?;
            progress(format!(
                "round {}/{repeats} {}: generation {:.1} s = prompts {:.1} + decode {:.1}, \
                 {} prompt positions, {} tokens ({:.1} tok/s), sandbox {:.1} s, digest {}",
                round + 1,
                if reference { "old" } else { "new" },
                f.generate_s,
                f.prefill_s,
                f.decode_s,
                f.prompt_tokens,
                f.generated_tokens,
                f.tokens_per_s(),
                f.sandbox_s,
                f.tokens_digest
            ));
            if reference {
                out.old.push(f);
            } else {
                out.new.push(f);
            }
        }
    }
    Ok(out)
}
