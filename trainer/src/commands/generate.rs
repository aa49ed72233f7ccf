//! `azr-trainer generate`: one prompt's continuation, as text or JSON.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use azr_trainer::generate::{SamplingParams, generate_text};
use azr_trainer::model::Precision;

use super::PlacementArgs;

/// The arguments of `azr-trainer generate` (the command's help is its doc in `main.rs`).
#[derive(clap::Args)]
pub struct Args {
    /// A .gguf file or a Hugging Face model directory.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub prompt: String,
    /// Pick the most likely token each step (otherwise sample with --temperature/--top-p).
    #[arg(long)]
    pub greedy: bool,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Wrap the prompt in the model's chat template as a user message.
    #[arg(long)]
    pub chat: bool,
    /// Stop when the text contains this string (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// The weights decoding reads: f32, int8 (the rollout copy self-play samples from) or
    /// int4 (4-bit blocks; needs AVX2, FMA and F16C, as int8 needs AVX2 and FMA: f32
    /// elsewhere).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Print one JSON object (ids, text, per-token log-probs, finish) instead of the text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        prompt,
        greedy,
        temperature,
        top_p,
        max_new_tokens,
        chat,
        stop,
        seed,
        precision,
        placement,
        json,
    } = args;
    let device = placement.device.clone();
    let (threads, placement) = placement.apply()?;
    let t0 = Instant::now();
    let loaded = azr_trainer::load(&model, placement).context("loading the model")?;
    eprintln!(
        "loaded {:?} ({} layers) on {device} with {threads} threads in {:.1} s",
        loaded.model.config.arch,
        loaded.model.config.num_layers,
        t0.elapsed().as_secs_f64()
    );
    let params = SamplingParams {
        max_new_tokens,
        temperature: if greedy { 0.0 } else { temperature },
        top_p,
        stop_strings: stop,
        seed,
        precision,
        ..SamplingParams::default()
    };
    let t1 = Instant::now();
    let out = generate_text(&loaded.model, &loaded.tokenizer, &prompt, chat, &params)
        .context("generating")?;
    let secs = t1.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ids": out.tokens,
                "text": out.text,
                "logprobs": out.logprobs,
                "finish": format!("{:?}", out.finish),
            })
        );
    } else {
        println!("{}", out.text);
    }
    eprintln!(
        "{} tokens in {secs:.2} s ({:.1} tokens/s), finished by {:?}",
        out.tokens.len(),
        out.tokens.len() as f64 / secs.max(1e-9),
        out.finish
    );
    Ok(())
}
