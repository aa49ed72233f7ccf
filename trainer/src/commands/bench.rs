//! `azr-trainer bench`: prefill, decode and training-step throughput, beside transformers or
//! llama.cpp when asked, taking turns.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use azr_trainer::model::Precision;

use super::PlacementArgs;

/// The arguments of `azr-trainer bench` (the command's help is its doc in `main.rs`).
#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Prompt tokens before the decode measurements' steps (attention over a long cache
    /// is part of self-play's decoding; the llama.cpp and transformers sides use 16).
    #[arg(long, default_value_t = 16)]
    pub decode_context: usize,
    /// Skip the training step (it needs about four times the model's memory).
    #[arg(long)]
    pub no_train: bool,
    /// Take only these measurements (comma-separated: prefill, decode_b1, decode_b8,
    /// train), e.g. to profile one of them.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also run bench/reference.py with this python (the reference venv's).
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// The transformers side of --compare (default: trainer/bench/reference.py in the
    /// checkout this binary was built from).
    #[arg(long)]
    pub reference_script: Option<PathBuf>,
    /// Also run llama.cpp on the same GGUF file, with this python (the venv
    /// scripts/llama-cpp-venv.sh makes): bench/llama_cpp_reference.py.
    #[arg(long)]
    pub compare_llama_cpp: Option<PathBuf>,
    /// The weights our decoding reads: int8 (the rollout copy self-play samples from by
    /// default), int4 or f32. Prefill and the training step are f32 either way.
    #[arg(long, default_value = "int8")]
    pub precision: Precision,
    /// Also measure our own decoding at this precision, taking turns with the other sides
    /// (e.g. f32, to see what a rollout copy gains in one run).
    #[arg(long)]
    pub compare_precision: Option<Precision>,
    /// Also measure our decoding at --precision (and --compare-precision) with every step
    /// through libtorch's operators (as before decode steps were fused), taking turns
    /// with the other sides.
    #[arg(long)]
    pub compare_unfused: bool,
    /// Skip the rollout copies' mismatch against f32 (printed before the measurements).
    #[arg(long)]
    pub no_mismatch: bool,
    /// Device, dtype and threads; the reference sides run with the same.
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        repeats,
        decode_context,
        no_train,
        only,
        compare,
        reference_script,
        compare_llama_cpp,
        precision,
        compare_precision,
        compare_unfused,
        no_mismatch,
        placement,
    } = args;
    let device = placement.device.clone();
    let (threads, placement) = placement.apply()?;
    let loaded = azr_trainer::load(&model, placement).context("loading the model")?;
    let spec = azr_trainer::bench::BenchSpec {
        repeats,
        decode_context,
        ..Default::default()
    };
    use azr_trainer::bench::Measure;
    let chosen: Vec<Measure> = if only.is_empty() {
        Measure::ALL.to_vec()
    } else {
        only.iter()
            .map(|name| Measure::parse(name.trim()))
            .collect::<azr_trainer::Result<_>>()
            .context("--only")?
    };
    // --no-train holds with --only too.
    let measures: Vec<Measure> = chosen
        .into_iter()
        .filter(|&m| !(no_train && m == Measure::Train))
        .collect();
    eprintln!("azr-trainer bench: {threads} threads, {spec:?}");
    let bench_script = |given: Option<PathBuf>, name: &str| -> Result<PathBuf> {
        let script = given.unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("bench")
                .join(name)
        });
        if !script.is_file() {
            bail!("{} not found (give --reference-script)", script.display());
        }
        Ok(script)
    };
    if decode_context != 16 && (compare.is_some() || compare_llama_cpp.is_some()) {
        bail!("the reference sides decode after 16 prompt tokens: leave --decode-context at 16");
    }
    let mut references = Vec::new();
    if let Some(python) = compare {
        let script = bench_script(reference_script, "reference.py")?;
        let kind = if placement.kind == tch::Kind::BFloat16 {
            "bf16"
        } else {
            "f32"
        };
        let mut cmd = std::process::Command::new(&python);
        cmd.arg(&script).arg("--model").arg(&model).args([
            "--threads",
            &threads.to_string(),
            "--device",
            &device,
            "--dtype",
            kind,
            "--serve",
        ]);
        eprintln!("starting the transformers side ({})", python.display());
        references.push(
            azr_trainer::bench::Reference::spawn("transformers", cmd)
                .context("starting bench/reference.py")?,
        );
    }
    if let Some(python) = compare_llama_cpp {
        if model.extension().and_then(|e| e.to_str()) != Some("gguf") {
            bail!("--compare-llama-cpp needs a .gguf model (llama.cpp reads only those)");
        }
        let script = bench_script(None, "llama_cpp_reference.py")?;
        let mut cmd = std::process::Command::new(&python);
        cmd.arg(&script).arg("--model").arg(&model).args([
            "--threads",
            &threads.to_string(),
            "--serve",
        ]);
        eprintln!("starting the llama.cpp side ({})", python.display());
        references.push(
            azr_trainer::bench::Reference::spawn("llama.cpp", cmd)
                .context("starting bench/llama_cpp_reference.py")?,
        );
    }
    let copies = [Some(precision), compare_precision]
        .into_iter()
        .flatten()
        .filter(|&p| p != Precision::F32 && !no_mismatch);
    for copy in copies {
        let name = copy.name();
        if !azr_trainer::model::linear::kernel_available(copy) {
            eprintln!("no {name} kernel on this CPU (see --precision): decoding reads f32");
            println!("mismatch {name} vs f32: none ({name} unavailable here)");
        } else if loaded.model.device() == tch::Device::Cpu {
            let m = azr_trainer::bench::mismatch::measure(&loaded.model, &loaded.tokenizer, copy)
                .with_context(|| format!("measuring the {name} copy against f32"))?;
            println!("mismatch {name} vs f32: {}", serde_json::to_value(&m)?);
        }
    }
    let train = measures.contains(&Measure::Train);
    let mut ours = azr_trainer::bench::Ours::new(&loaded.model, &spec, train, precision)?;
    let mut other_precision = match compare_precision {
        Some(p) if p == precision => bail!("--compare-precision equals --precision"),
        Some(p) => Some(azr_trainer::bench::Ours::new(
            &loaded.model,
            &spec,
            train,
            p,
        )?),
        None => None,
    };
    // One libtorch-operator side per precision measured, in the same order.
    let mut unfused = Vec::new();
    if compare_unfused {
        for p in std::iter::once(precision).chain(compare_precision) {
            unfused.push(
                azr_trainer::bench::Ours::new(&loaded.model, &spec, train, p)?
                    .with_libtorch_steps(),
            );
        }
    }
    let mut sides: Vec<&mut dyn azr_trainer::bench::Side> = vec![&mut ours];
    if let Some(other) = other_precision.as_mut() {
        sides.push(other);
    }
    for other in &mut unfused {
        sides.push(other);
    }
    for r in &mut references {
        sides.push(r);
    }
    let names: Vec<String> = sides.iter().map(|s| s.name()).collect();
    let times = azr_trainer::bench::run(&spec, &measures, &mut sides, |line| eprintln!("{line}"))
        .context("running the benchmark")?;
    drop(sides);
    drop(references);
    let results: Vec<serde_json::Value> = times
        .iter()
        .map(|t| serde_json::to_value(t.result(&spec)))
        .collect::<Result<_, _>>()?;
    for (name, r) in names.iter().zip(&results) {
        println!("{name}: {r}");
    }
    let ours = &results[0];
    for (name, theirs) in names.iter().zip(&results).skip(1) {
        for key in [
            "prefill_tokens_per_s",
            "decode_b1_tokens_per_s",
            "decode_b8_tokens_per_s",
        ] {
            if let (Some(a), Some(b)) = (ours[key].as_f64(), theirs[key].as_f64()) {
                println!("{key}: {a:.1} vs {b:.1} ({name}) -> {:.2}x", a / b);
            }
        }
        if let (Some(a), Some(b)) = (
            ours["train_step_s"].as_f64(),
            theirs["train_step_s"].as_f64(),
        ) {
            println!("train_step_s: {a:.2} vs {b:.2} ({name}) -> {:.2}x", b / a);
        }
    }
    Ok(())
}
