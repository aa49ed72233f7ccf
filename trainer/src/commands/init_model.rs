//! `azr-trainer init-model`: a random-weight model in the Hugging Face layout.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// The arguments of `azr-trainer init-model` (the command's help is its doc in `main.rs`).
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "qwen2")]
    pub arch: String,
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Positions the model accepts (prompts are long).
    #[arg(long, default_value_t = 8192)]
    pub max_positions: i64,
    /// The model's shape: `tiny` (a few thousand weights), or the shape of a real model
    /// with random weights, for speed and memory measurements: `smollm2-135m`
    /// (llama) or `qwen2.5-0.5b` (qwen2). A named shape sets the architecture.
    #[arg(long, default_value = "tiny")]
    pub shape: String,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        arch,
        output,
        seed,
        max_positions,
        shape,
    } = args;
    let arch = match arch.as_str() {
        "qwen2" => azr_trainer::Arch::Qwen2,
        "llama" => azr_trainer::Arch::Llama,
        other => bail!("--arch {other}: expected qwen2 or llama"),
    };
    // A real width needs transformers-sized weights (0.02) to keep activations sane.
    let (mut config, scale) = match shape.as_str() {
        "tiny" => (azr_trainer::Config::tiny(arch), 1.0),
        named => (
            azr_trainer::Config::named_shape(named).with_context(|| {
                format!("--shape {named}: expected tiny, smollm2-135m or qwen2.5-0.5b")
            })?,
            0.1,
        ),
    };
    config.max_position_embeddings = max_positions;
    let tokenizer = azr_trainer::TextTokenizer::word_level(config.vocab_size)?;
    config.eos_token_ids = tokenizer.eos_ids.clone();
    let weights = azr_trainer::model::llama::random_weights_scaled(&config, seed, scale);
    let model =
        azr_trainer::Model::from_weights(config, weights, tch::Device::Cpu, tch::Kind::Float)?;
    azr_trainer::loading::safetensors::save_hf_dir(&model, &tokenizer, &output)
        .with_context(|| format!("writing {}", output.display()))?;
    println!("{}", output.display());
    Ok(())
}
