//! Low-rank adapters on tiny random models: they start as the base model, a step moves only
//! them, every product path computes the adapted model as its merged weights do, and they
//! save and load in PEFT's layout.

use std::collections::HashMap;

use crate::support::{tiny_model, tiny_tokenizer};
use crate::tiny_model::{decode_along, kl, prompts, rewarded_samples};

use azr_trainer::generate::{SamplingParams, generate, response_logprobs};
use azr_trainer::loading::safetensors::{load_hf_dir, save_hf_dir};
use azr_trainer::model::lora::LoraConfig;
use azr_trainer::model::{Model, Precision};
use azr_trainer::train::{Sample, TrainConfig, Trainer};
use azr_trainer::{Arch, device::Placement};
use tch::{Device, Kind, Tensor};

const LORA: LoraConfig = LoraConfig {
    rank: 4,
    alpha: 8.0,
};

fn responses() -> Vec<Vec<i64>> {
    vec![vec![4i64, 5, 6], vec![7, 8], vec![9, 10, 11, 12]]
}

fn weights_of(model: &Model) -> Vec<(String, Vec<f32>)> {
    model
        .named_weights()
        .into_iter()
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect()
}

/// Teacher-forced log-probs of `responses()` with autograd recording (the training path)
/// or not (the inference paths), and their mask.
fn logprobs(model: &Model, record: bool) -> (Tensor, Tensor) {
    let run = || response_logprobs(model, &prompts(), &responses(), 1.0).unwrap();
    let (lp, mask) = if record { run() } else { tch::no_grad(run) };
    (lp.detach(), mask)
}

fn largest_gap(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    ((a - b) * mask).abs().max().double_value(&[])
}

/// A tiny model with adapters after one step at lr 1e-2 on rewarded responses (so that
/// every `B` is non-zero), with its trainer.
fn trained(arch: Arch, config: TrainConfig) -> (Model, Trainer) {
    let mut model = tiny_model(arch);
    model.attach_lora(LORA, 11).unwrap();
    let (old, _) = logprobs(&model, false);
    let samples = rewarded_samples(&prompts(), &responses(), &old);
    let mut trainer = Trainer::new(&model, config).unwrap();
    trainer.step(&model, &samples).unwrap();
    (model, trainer)
}

fn step_config() -> TrainConfig {
    TrainConfig {
        lr: 1e-2,
        ..Default::default()
    }
}

/// The model the merged weights describe, as a plain model.
fn merged(model: &Model) -> Model {
    let weights: HashMap<String, Tensor> = model.merged_weights().into_iter().collect();
    Model::from_weights(model.config.clone(), weights, Device::Cpu, Kind::Float).unwrap()
}

#[test]
fn fresh_adapters_leave_the_models_output_unchanged() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let mut model = tiny_model(arch);
        let (before, mask) = logprobs(&model, false);
        model.attach_lora(LORA, 1).unwrap();
        for record in [false, true] {
            let (after, _) = logprobs(&model, record);
            let gap = largest_gap(&before, &after, &mask);
            assert!(gap < 1e-5, "{arch:?} record {record}: {gap}");
        }
    }
}

#[test]
fn a_step_through_adapters_moves_only_the_adapters_and_raises_the_rewarded_logprob() {
    let mut model = tiny_model(Arch::Qwen2);
    let base = weights_of(&model);
    model.attach_lora(LORA, 11).unwrap();
    let (old, mask) = logprobs(&model, false);
    let samples = rewarded_samples(&prompts(), &responses(), &old);
    let mut trainer = Trainer::new(&model, step_config()).unwrap();
    trainer.step(&model, &samples).unwrap();
    assert_eq!(weights_of(&model), base, "a frozen weight moved");
    let (new, _) = logprobs(&model, false);
    let gain = ((&new - &old) * &mask).sum(Kind::Float).double_value(&[]);
    assert!(gain > 0.0, "rewarded responses lost log-prob: {gain}");
    // The optimiser holds two tensors per projection part: 3 + 1 + 2 + 1 per layer.
    let trainable = model
        .variables()
        .values()
        .filter(|t| t.requires_grad())
        .count();
    assert_eq!(trainable, 2 * 7 * model.config.num_layers as usize);
}

#[test]
fn every_product_path_computes_the_adapted_model_as_its_merged_weights_do() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let (model, _) = trained(arch, step_config());
        let plain = merged(&model);
        let (want, mask) = logprobs(&plain, false);
        for record in [true, false] {
            let (got, _) = logprobs(&model, record);
            let gap = largest_gap(&want, &got, &mask);
            assert!(
                gap < 1e-4,
                "{arch:?} teacher-forced, record {record}: {gap}"
            );
        }
        // Decode steps: the fused f32 step (forward_rows) and the int8 rollout copy.
        let (want, tokens) = decode_along(&plain, &prompts(), 6, Precision::F32, None);
        let (got, _) = decode_along(&model, &prompts(), 6, Precision::F32, Some(&tokens));
        let gap = (&want - &got).abs().max().double_value(&[]);
        assert!(gap < 1e-4, "{arch:?} decode f32: {gap}");
        // The base's quantised copy plus the f32 adapter: within the rounding bounds that
        // `rollout_copies_decode_within_a_small_kl_of_f32` sets for a plain model's copy
        // (a wrong or missing adapter product gives KL of several nats).
        for (precision, bound) in [(Precision::Int8, 1e-2), (Precision::Int4, 0.6)] {
            if !azr_trainer::model::linear::kernel_available(precision) {
                continue;
            }
            let (ours, _) = decode_along(&model, &prompts(), 6, precision, Some(&tokens));
            let (theirs, _) = decode_along(&plain, &prompts(), 6, precision, Some(&tokens));
            let ((ours, _), (theirs, _)) = (kl(&want, &ours), kl(&want, &theirs));
            let name = precision.name();
            eprintln!("{arch:?} {name}: KL to f32 {ours:.2e} (merged copy {theirs:.2e})");
            assert!(ours < bound, "{arch:?} decode {name}: KL {ours}");
        }
    }
}

#[test]
fn a_step_through_adapters_is_alike_in_micro_batches_and_checkpointed() {
    let samples = |model: &Model| -> Vec<Sample> {
        let (old, _) = logprobs(model, false);
        let mut s = rewarded_samples(&prompts(), &responses(), &old);
        s[1].advantages.iter_mut().for_each(|a| *a = -0.5);
        s
    };
    let after = |micro_batch: usize, gradient_checkpointing: bool| {
        let mut model = tiny_model(Arch::Llama);
        model.attach_lora(LORA, 3).unwrap();
        let config = TrainConfig {
            lr: 1.0,
            eps: 1.0,
            micro_batch,
            gradient_checkpointing,
            ..Default::default()
        };
        let samples = samples(&model);
        Trainer::new(&model, config)
            .unwrap()
            .step(&model, &samples)
            .unwrap();
        let mut adapters: Vec<(String, Vec<f32>)> = model
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, t)| (n, Vec::<f32>::try_from(t.detach().flatten(0, -1)).unwrap()))
            .collect();
        adapters.sort_by(|a, b| a.0.cmp(&b.0));
        adapters
    };
    let reference = after(3, false);
    for (micro_batch, checkpointing) in [(1, false), (1, true), (3, true)] {
        for ((name, a), (_, b)) in reference.iter().zip(&after(micro_batch, checkpointing)) {
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(
                d < 1e-5,
                "{name}: micro-batch {micro_batch}, checkpointing {checkpointing}: {d}"
            );
        }
    }
}

#[test]
fn saved_adapters_load_back_onto_the_base_model_and_merge_into_a_plain_checkpoint() {
    let (model, _) = trained(Arch::Qwen2, step_config());
    let dir = std::env::temp_dir().join(format!("azr-adapters-{}", std::process::id()));
    model
        .save_adapters(&dir.join("adapter"), "tiny-base")
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    assert_eq!(config["base_model_name_or_path"], "tiny-base");
    assert_eq!(config["target_modules"].as_array().unwrap().len(), 7);

    let (want, mask) = logprobs(&model, false);
    let mut back = tiny_model(Arch::Qwen2);
    let saved = Model::saved_lora_config(&dir.join("adapter")).unwrap();
    assert_eq!(saved, LORA);
    back.attach_lora(saved, 99).unwrap();
    back.load_adapters(&dir.join("adapter")).unwrap();
    let (got, _) = logprobs(&back, false);
    assert_eq!(largest_gap(&want, &got, &mask), 0.0);

    // The checkpoint's model directory holds the merged weights: a plain model.
    let tok = tiny_tokenizer(model.config.vocab_size);
    save_hf_dir(&model, &tok, &dir.join("model")).unwrap();
    let plain = load_hf_dir(&dir.join("model"), Placement::cpu()).unwrap();
    assert!(plain.model.lora().is_none());
    let a = generate(&model, &tok, &prompts(), &SamplingParams::greedy(6)).unwrap();
    let b = generate(&plain.model, &tok, &prompts(), &SamplingParams::greedy(6)).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.tokens, y.tokens);
    }

    // Adapters of another rank, or none at all, are refused with the file named.
    let mut other = tiny_model(Arch::Qwen2);
    other
        .attach_lora(
            LoraConfig {
                rank: 2,
                alpha: 8.0,
            },
            1,
        )
        .unwrap();
    let err = other.load_adapters(&dir.join("adapter")).unwrap_err();
    assert!(err.to_string().contains("lora_"), "{err}");
    let err = other.load_adapters(&dir.join("nowhere")).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn adapters_twice_or_of_rank_zero_are_refused() {
    let mut model = tiny_model(Arch::Llama);
    assert!(
        model
            .attach_lora(
                LoraConfig {
                    rank: 0,
                    alpha: 8.0
                },
                1
            )
            .is_err()
    );
    assert!(model.lora().is_none());
    model.attach_lora(LORA, 1).unwrap();
    assert!(model.attach_lora(LORA, 1).is_err());
    assert_eq!(model.lora(), Some(LORA));
}
