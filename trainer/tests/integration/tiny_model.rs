//! Fast tests on tiny random-weight models: generation, caching, log-probs, training, saving.

use crate::support;

use azr_trainer::generate::{
    SamplingParams, decode_step, decode_step_libtorch, generate, response_logprobs,
};
use azr_trainer::loading::safetensors::{load_hf_dir, save_hf_dir};
use azr_trainer::model::{KvCache, Precision, left_pad, positions_and_bias};
use azr_trainer::train::{Sample, TrainConfig, Trainer};
use azr_trainer::{Arch, device::Placement};
use support::{tiny_model, tiny_tokenizer};
use tch::{Kind, Tensor};

pub(crate) fn prompts() -> Vec<Vec<i64>> {
    vec![
        vec![5, 17, 3],
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        vec![42, 8, 90, 33, 61, 7, 2],
    ]
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn batched_generation_equals_one_by_one_for_prompts_of_different_lengths() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let model = tiny_model(arch);
        let tok = tiny_tokenizer(model.config.vocab_size);
        let params = SamplingParams::greedy(12);
        let batched = generate(&model, &tok, &prompts(), &params).unwrap();
        for (prompt, b) in prompts().iter().zip(&batched) {
            let single = generate(&model, &tok, std::slice::from_ref(prompt), &params).unwrap();
            assert_eq!(single[0].tokens, b.tokens, "{arch:?} prompt {prompt:?}");
            assert!(max_abs_diff(&single[0].logprobs, &b.logprobs) < 1e-4);
        }
    }
}

#[test]
fn batched_generation_equals_one_by_one_when_rows_finish_at_different_steps() {
    let model = tiny_model(Arch::Qwen2);
    let mut tok = tiny_tokenizer(model.config.vocab_size);
    let free = generate(&model, &tok, &prompts(), &SamplingParams::greedy(12)).unwrap();
    // Declare as EOS a token one row produces early, so rows finish (and leave the batch) at
    // different steps.
    tok.eos_ids = vec![free[0].tokens[1], free[2].tokens[4]];
    let batched = generate(&model, &tok, &prompts(), &SamplingParams::greedy(12)).unwrap();
    let lengths: Vec<usize> = batched.iter().map(|c| c.tokens.len()).collect();
    assert!(
        lengths.iter().any(|&n| n < 12),
        "no row finished early: {lengths:?}"
    );
    for (prompt, b) in prompts().iter().zip(&batched) {
        let single = generate(
            &model,
            &tok,
            std::slice::from_ref(prompt),
            &SamplingParams::greedy(12),
        )
        .unwrap();
        assert_eq!(single[0].tokens, b.tokens, "prompt {prompt:?}");
        assert_eq!(single[0].finish, b.finish);
        assert!(max_abs_diff(&single[0].logprobs, &b.logprobs) < 1e-4);
    }
}

#[test]
fn kv_cache_decoding_equals_full_recompute() {
    let model = tiny_model(Arch::Qwen2);
    let prompt = vec![3i64, 14, 15, 92, 65];
    let (ids, mask) = left_pad(std::slice::from_ref(&prompt), 0, tch::Device::Cpu).unwrap();
    let kind = model.kind();
    tch::no_grad(|| {
        // Full pass over 5 tokens vs 3-token prefill + two single-token steps through the cache.
        let (pos, bias) = positions_and_bias(&mask, 5, kind);
        let full = model.logits(&model.forward_hidden(&ids, &pos, &bias, None));
        let mut cache = azr_trainer::model::KvCache::new(model.config.num_layers);
        let mut steps = Vec::new();
        let m3 = mask.narrow(1, 0, 3);
        let (pos, bias) = positions_and_bias(&m3, 3, kind);
        steps.push(model.logits(&model.forward_hidden(
            &ids.narrow(1, 0, 3),
            &pos,
            &bias,
            Some(&mut cache),
        )));
        for t in 3..5 {
            let m = mask.narrow(1, 0, t + 1);
            let (pos, bias) = positions_and_bias(&m, 1, kind);
            steps.push(model.logits(&model.forward_hidden(
                &ids.narrow(1, t, 1),
                &pos,
                &bias,
                Some(&mut cache),
            )));
        }
        assert_eq!(cache.len(), 5);
        let cached = Tensor::cat(&steps, 1);
        let diff = (full - cached).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "max abs diff {diff}");
    });
}

#[test]
fn left_padding_does_not_change_a_sequence_logits() {
    let model = tiny_model(Arch::Llama);
    let short = vec![9i64, 8, 7];
    let kind = model.kind();
    tch::no_grad(|| {
        let (ids, mask) = left_pad(std::slice::from_ref(&short), 0, tch::Device::Cpu).unwrap();
        let (pos, bias) = positions_and_bias(&mask, 3, kind);
        let alone = model.logits(&model.forward_hidden(&ids, &pos, &bias, None));
        let (ids, mask) = left_pad(&[short.clone(), vec![1; 9]], 0, tch::Device::Cpu).unwrap();
        let (pos, bias) = positions_and_bias(&mask, 9, kind);
        let padded = model.logits(&model.forward_hidden(&ids, &pos, &bias, None));
        let padded = padded.get(0).narrow(0, 6, 3);
        let diff = (alone.get(0) - padded).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "max abs diff {diff}");
    });
}

#[test]
fn teacher_forced_logprobs_equal_the_generation_logprobs() {
    let model = tiny_model(Arch::Qwen2);
    let tok = tiny_tokenizer(model.config.vocab_size);
    let params = SamplingParams {
        max_new_tokens: 10,
        temperature: 0.7,
        top_p: 0.9,
        seed: Some(11),
        ..Default::default()
    };
    let gens = generate(&model, &tok, &prompts(), &params).unwrap();
    let responses: Vec<Vec<i64>> = gens.iter().map(|g| g.tokens.clone()).collect();
    let (lp, mask) =
        tch::no_grad(|| response_logprobs(&model, &prompts(), &responses, 0.7)).unwrap();
    for (i, g) in gens.iter().enumerate() {
        let n = g.tokens.len() as i64;
        let row = Vec::<f32>::try_from(lp.get(i as i64).narrow(0, 0, n)).unwrap();
        assert!(
            max_abs_diff(&row, &g.logprobs) < 1e-4,
            "row {i}: {row:?} vs {:?}",
            g.logprobs
        );
        assert_eq!(
            mask.get(i as i64).sum(Kind::Float).double_value(&[]) as i64,
            n
        );
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let model = tiny_model(Arch::Llama);
    let tok = tiny_tokenizer(model.config.vocab_size);
    let params = SamplingParams {
        max_new_tokens: 16,
        temperature: 1.0,
        seed: Some(5),
        ..Default::default()
    };
    let a = generate(&model, &tok, &prompts(), &params).unwrap();
    let b = generate(&model, &tok, &prompts(), &params).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.tokens, y.tokens);
    }
}

#[test]
fn generation_stops_at_eos_and_at_stop_strings() {
    let model = tiny_model(Arch::Llama);
    let mut tok = tiny_tokenizer(model.config.vocab_size);
    let free = generate(&model, &tok, &prompts()[..1], &SamplingParams::greedy(8)).unwrap();
    let third = free[0].tokens[2];
    // EOS: the third greedy token, declared EOS, ends generation there.
    tok.eos_ids = vec![third];
    let eos = generate(&model, &tok, &prompts()[..1], &SamplingParams::greedy(8)).unwrap();
    let first_eos = free[0].tokens.iter().position(|&t| t == third).unwrap();
    assert_eq!(eos[0].tokens, free[0].tokens[..=first_eos]);
    assert_eq!(eos[0].finish, azr_trainer::generate::FinishReason::Eos);
    // Stop string: the text is cut before it.
    tok.eos_ids.clear();
    let stop = format!("t{third}");
    let params = SamplingParams {
        stop_strings: vec![stop.clone()],
        ..SamplingParams::greedy(8)
    };
    let stopped = generate(&model, &tok, &prompts()[..1], &params).unwrap();
    assert_eq!(stopped[0].finish, azr_trainer::generate::FinishReason::Stop);
    assert!(!stopped[0].text.contains(&stop));
    assert_eq!(stopped[0].tokens.last(), Some(&third));
}

/// One sample per prompt and response, every response token with advantage 1 and its
/// log-probs `old` (`[B, T]`, rows padded on the right) as the behaviour policy's.
pub(crate) fn rewarded_samples(
    prompts: &[Vec<i64>],
    responses: &[Vec<i64>],
    old: &Tensor,
) -> Vec<Sample> {
    (0..prompts.len())
        .map(|i| {
            let n = responses[i].len() as i64;
            Sample {
                prompt: prompts[i].clone(),
                response: responses[i].clone(),
                old_logprobs: Some(
                    Vec::<f32>::try_from(old.get(i as i64).narrow(0, 0, n)).unwrap(),
                ),
                advantages: vec![1.0; n as usize],
            }
        })
        .collect()
}

#[test]
fn ppo_step_with_positive_advantage_raises_the_response_logprob() {
    let model = tiny_model(Arch::Qwen2);
    let prompts = prompts();
    let responses = vec![vec![4i64, 5, 6], vec![7, 8], vec![9, 10, 11, 12]];
    let (old, _) = tch::no_grad(|| response_logprobs(&model, &prompts, &responses, 1.0)).unwrap();
    let samples = rewarded_samples(&prompts, &responses, &old);
    let config = TrainConfig {
        lr: 1e-3,
        micro_batch: 2, // two micro-batches: exercises accumulation
        ..Default::default()
    };
    let mut trainer = Trainer::new(&model, config).unwrap();
    let stats = trainer.step(&model, &samples).unwrap();
    assert_eq!(stats.tokens, 9);
    assert!(
        (stats.loss + 1.0).abs() < 1e-4,
        "ratio is 1 before the update: loss = -mean(A)"
    );
    let (new, mask) =
        tch::no_grad(|| response_logprobs(&model, &prompts, &responses, 1.0)).unwrap();
    let gain = ((new - old) * mask).sum(Kind::Float).double_value(&[]);
    assert!(
        gain > 0.0,
        "log-prob of positively rewarded responses went down: {gain}"
    );
}

/// The self-play update leaves out the old log-probs of its first mini-batch (they are the
/// step's own): the step must move the weights exactly as with them recomputed, and report
/// the log-probs it computed.
#[test]
fn a_step_without_old_logprobs_equals_one_with_them_recomputed() {
    let prompts = prompts();
    let responses = vec![vec![4i64, 5, 6], vec![7, 8], vec![9, 10, 11, 12]];
    let run = |given: bool| {
        let model = tiny_model(Arch::Qwen2);
        let (old, _) =
            tch::no_grad(|| response_logprobs(&model, &prompts, &responses, 1.0)).unwrap();
        let mut samples = rewarded_samples(&prompts, &responses, &old);
        for (s, a) in samples.iter_mut().zip([1.0, -1.0, 0.5]) {
            s.advantages.iter_mut().for_each(|x| *x = a);
            if !given {
                s.old_logprobs = None;
            }
        }
        let config = TrainConfig {
            lr: 1e-3,
            micro_batch: 2,
            ..Default::default()
        };
        let stats = Trainer::new(&model, config)
            .unwrap()
            .step(&model, &samples)
            .unwrap();
        let old: Vec<Vec<f32>> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Vec::<f32>::try_from(old.get(i as i64).narrow(0, 0, s.response.len() as i64))
                    .unwrap()
            })
            .collect();
        (model.named_weights()[0].1.copy(), stats, old)
    };
    let (recomputed, a, old) = run(true);
    let (own, b, _) = run(false);
    // The recomputed log-probs come from another forward pass (other padding), equal to
    // float rounding; an AdamW step of lr 1e-3 moves a weight up to 1e-3, so 1e-5 is 1 % of
    // one step.
    let diff = f64::try_from((&recomputed - &own).abs().max()).unwrap();
    assert!(diff < 1e-5, "weights differ by {diff}");
    assert!(
        (a.loss - b.loss).abs() < 1e-5 && (a.grad_norm - b.grad_norm).abs() < 1e-4 * a.grad_norm,
        "{a:?} vs {b:?}"
    );
    for (reported, want) in b.logprobs.iter().zip(&old) {
        let reported = reported.as_ref().expect("every sample learns");
        assert_eq!(reported.len(), want.len());
        for (x, y) in reported.iter().zip(want) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}

#[test]
fn zero_advantage_samples_count_in_the_token_mean_but_add_no_gradient() {
    let model = tiny_model(Arch::Llama);
    let prompts = prompts();
    let responses = vec![vec![4i64, 5, 6], vec![7, 8]];
    let (old, _) =
        tch::no_grad(|| response_logprobs(&model, &prompts[..2], &responses, 1.0)).unwrap();
    let sample = |i: usize, a: f32| {
        let n = responses[i].len();
        Sample {
            prompt: prompts[i].clone(),
            response: responses[i].clone(),
            old_logprobs: Some(
                Vec::<f32>::try_from(old.get(i as i64).narrow(0, 0, n as i64)).unwrap(),
            ),
            advantages: vec![a; n],
        }
    };
    let config = TrainConfig {
        lr: 1e-3,
        ..Default::default()
    };
    let mut trainer = Trainer::new(&model, config.clone()).unwrap();
    let before = model.named_weights()[0].1.copy();
    let idle = trainer
        .step(&model, &[sample(0, 0.0), sample(1, 0.0)])
        .unwrap();
    assert_eq!((idle.loss, idle.grad_norm, idle.tokens), (0.0, 0.0, 5));
    let after = &model.named_weights()[0].1;
    assert_eq!(f64::try_from((after - &before).abs().max()).unwrap(), 0.0);
    // Ratio 1 before the update: loss = -Σ A / all tokens = -3 / 5.
    let mixed = trainer
        .step(&model, &[sample(0, 1.0), sample(1, 0.0)])
        .unwrap();
    assert_eq!(mixed.tokens, 5);
    assert!((mixed.loss + 0.6).abs() < 1e-5, "{mixed:?}");
}

/// `--device cuda` runs bf16; CI has no GPU, so the same code runs here in bf16 on the CPU:
/// batched sampling, teacher-forced log-probs and a PPO step must all work in that dtype and
/// the step must move the model (f32 master weights, see `adamw`).
#[test]
fn generation_logprobs_and_a_training_step_run_in_bf16() {
    tch::set_num_threads(1);
    let config = azr_trainer::Config::tiny(Arch::Qwen2);
    let weights = azr_trainer::model::llama::random_weights(&config, 7);
    let model = azr_trainer::Model::from_weights(config, weights, tch::Device::Cpu, Kind::BFloat16)
        .unwrap();
    assert_eq!(model.kind(), Kind::BFloat16);
    let tok = tiny_tokenizer(model.config.vocab_size);
    let params = SamplingParams {
        seed: Some(5),
        ..SamplingParams::greedy(6)
    };
    let params = SamplingParams {
        temperature: 1.0,
        ..params
    };
    let gens = generate(&model, &tok, &prompts(), &params).unwrap();
    assert!(
        gens.iter()
            .all(|g| !g.tokens.is_empty() && g.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0))
    );
    let responses: Vec<Vec<i64>> = gens.iter().map(|g| g.tokens.clone()).collect();
    let (old, _) = tch::no_grad(|| response_logprobs(&model, &prompts(), &responses, 1.0)).unwrap();
    assert_eq!(old.kind(), Kind::Float);
    let samples: Vec<Sample> = responses
        .iter()
        .enumerate()
        .map(|(i, r)| Sample {
            prompt: prompts()[i].clone(),
            response: r.clone(),
            old_logprobs: Some(
                Vec::<f32>::try_from(old.get(i as i64).narrow(0, 0, r.len() as i64)).unwrap(),
            ),
            advantages: vec![if i == 0 { 1.0 } else { -1.0 }; r.len()],
        })
        .collect();
    let before = model.named_weights()[0].1.to_kind(Kind::Float);
    let mut trainer = Trainer::new(
        &model,
        TrainConfig {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let stats = trainer.step(&model, &samples).unwrap();
    assert!(stats.loss.is_finite(), "{stats:?}");
    let after = model.named_weights()[0].1.to_kind(Kind::Float);
    let moved = (after - before).abs().max().double_value(&[]);
    assert!(
        moved > 0.0,
        "a bf16 training step left the weights unchanged"
    );
}

#[test]
fn saved_hf_directory_loads_back_to_the_same_model() {
    let model = tiny_model(Arch::Qwen2);
    let tok = tiny_tokenizer(model.config.vocab_size);
    let dir = std::env::temp_dir().join(format!("azr-trainer-save-{}", std::process::id()));
    save_hf_dir(&model, &tok, &dir).unwrap();
    let back = load_hf_dir(&dir, Placement::cpu()).unwrap();
    assert_eq!(back.model.config.hidden_size, model.config.hidden_size);
    let a = generate(&model, &tok, &prompts(), &SamplingParams::greedy(6)).unwrap();
    let b = generate(
        &back.model,
        &back.tokenizer,
        &prompts(),
        &SamplingParams::greedy(6),
    )
    .unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.tokens, y.tokens);
        assert_eq!(x.logprobs, y.logprobs);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_or_corrupt_model_files_are_errors_naming_the_file() {
    let missing = std::path::Path::new("/nonexistent/model.gguf");
    let err = azr_trainer::load(missing, Placement::cpu())
        .err()
        .expect("missing file fails");
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
    let junk = std::env::temp_dir().join(format!("azr-junk-{}.gguf", std::process::id()));
    std::fs::write(&junk, b"GGUF\x03\0\0\0garbage").unwrap();
    let err = azr_trainer::load(&junk, Placement::cpu())
        .err()
        .expect("corrupt file fails");
    assert!(err.to_string().contains("invalid GGUF"), "{err}");
    std::fs::remove_file(&junk).ok();
}

#[test]
fn gradient_checkpointing_gives_the_same_gradients_as_plain_backprop() {
    use azr_trainer::generate::TeacherForced;
    use azr_trainer::train::checkpointed_backward;
    let model = tiny_model(Arch::Qwen2);
    let responses = vec![vec![4i64, 5, 6], vec![7, 8], vec![9, 10, 11, 12]];
    let tf = TeacherForced::new(&model, &prompts(), &responses).unwrap();
    // A loss that weights every response token differently, so every path matters.
    let weights = Tensor::arange(tf.response_len, (Kind::Float, tch::Device::Cpu)) + 1.0;
    let head = |hidden: &Tensor| (tf.logprobs(&model, hidden, 1.0) * &weights).sum(Kind::Float);
    let grads = |model: &azr_trainer::Model| -> Vec<(String, Tensor)> {
        model
            .parameters()
            .into_iter()
            .map(|(n, t)| (n, t.grad().copy()))
            .collect()
    };
    let zero = |model: &azr_trainer::Model| {
        for (_, mut t) in model.parameters() {
            t.zero_grad();
        }
    };
    zero(&model);
    let plain_loss = head(&model.forward_hidden(&tf.ids, &tf.positions, &tf.bias, None));
    plain_loss.backward();
    let plain = grads(&model);
    zero(&model);
    let ckpt_loss = checkpointed_backward(&model, &tf, head);
    let ckpt = grads(&model);
    // Equal up to f32 rounding: the checkpointed pass's first forward runs without autograd,
    // where norms take their sums in another order, and MKL's kernels differ by CPU (on an
    // AMD EPYC without AVX-512 the two losses of ≈ 354 differ by one ulp, 3e-5).
    let (plain_value, ckpt_value) = (plain_loss.double_value(&[]), ckpt_loss.double_value(&[]));
    assert!(
        (plain_value - ckpt_value).abs() <= 1e-6 * plain_value.abs().max(1.0),
        "losses {plain_value} and {ckpt_value}"
    );
    for ((name, a), (_, b)) in plain.iter().zip(&ckpt) {
        let scale = a.abs().max().double_value(&[]).max(1e-6);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(
            diff / scale < 1e-4,
            "{name}: gradient differs by {diff} (scale {scale})"
        );
    }
}

#[test]
fn a_step_moves_the_weights_alike_in_one_batch_in_micro_batches_and_checkpointed() {
    let prompts = prompts();
    let responses = [vec![4i64, 5, 6], vec![7, 8], vec![9, 10, 11, 12]];
    let samples: Vec<Sample> = (0..3)
        .map(|i| Sample {
            prompt: prompts[i].clone(),
            response: responses[i].clone(),
            old_logprobs: Some(vec![-2.0; responses[i].len()]),
            advantages: vec![if i == 1 { -0.5 } else { 1.0 }; responses[i].len()],
        })
        .collect();
    let after = |micro_batch: usize, gradient_checkpointing: bool| {
        let model = tiny_model(Arch::Llama);
        let config = TrainConfig {
            // With ε = 1 Adam's first update is g/(|g| + 1): it follows the gradient's size,
            // where a small ε would give ±lr for any gradient, its sign decided by rounding
            // wherever the gradient is near zero.
            lr: 1.0,
            eps: 1.0,
            // Low enough to clip: the clipping factor is part of the update too.
            max_grad_norm: 0.5,
            micro_batch,
            gradient_checkpointing,
            ..Default::default()
        };
        let mut trainer = Trainer::new(&model, config).unwrap();
        let stats = trainer.step(&model, &samples).unwrap();
        assert!(stats.grad_norm > 0.5, "not clipped: {}", stats.grad_norm);
        let weights: Vec<(String, Vec<f32>)> = model
            .named_weights()
            .into_iter()
            .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
            .collect();
        (stats, weights)
    };
    let (one, reference) = after(3, false);
    for (micro_batch, checkpointing) in [(1, false), (2, false), (1, true), (3, true)] {
        let (stats, weights) = after(micro_batch, checkpointing);
        assert!((stats.loss - one.loss).abs() < 1e-5);
        assert!((stats.grad_norm - one.grad_norm).abs() < 1e-4 * one.grad_norm);
        for ((name, a), (_, b)) in reference.iter().zip(&weights) {
            let d = max_abs_diff(a, b);
            assert!(
                d < 1e-6,
                "{name}: micro-batch {micro_batch}, checkpointing {checkpointing}: {d}"
            );
        }
    }
}

/// One optimiser step at lr 1e-2 on `rewarded_samples` of these responses.
fn train_one_step(
    model: &azr_trainer::Model,
    prompts: &[Vec<i64>],
    responses: &[Vec<i64>],
    old: &Tensor,
) {
    let samples = rewarded_samples(prompts, responses, old);
    let config = TrainConfig {
        lr: 1e-2,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, config).unwrap();
    trainer.step(model, &samples).unwrap();
}

#[test]
fn inference_after_a_training_step_sees_the_new_weights() {
    // Under no_grad, products of many rows use weights packed once for MKL; an optimiser
    // step (whose fused CPU update writes memory directly) must make them stale.
    let model = tiny_model(Arch::Llama);
    let prompts = prompts();
    let responses = vec![vec![4i64, 5, 6], vec![7, 8], vec![9, 10, 11, 12]];
    let packed = || tch::no_grad(|| response_logprobs(&model, &prompts, &responses, 1.0));
    let (old, _) = packed().unwrap();
    train_one_step(&model, &prompts, &responses, &old);
    let (after, mask) = packed().unwrap();
    // With grad mode on, every product goes through libtorch with the weights as they are.
    let (reference, _) = response_logprobs(&model, &prompts, &responses, 1.0).unwrap();
    let diff = ((&after - &reference) * &mask)
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "inference used stale weights: {diff}");
    let moved = ((&after - &old) * &mask).abs().max().double_value(&[]);
    assert!(
        moved > 1e-3,
        "the step should have changed the log-probs: {moved}"
    );
}

/// Decode-step log-probs `[rows, steps, V]` from the weights `precision` names, feeding
/// `tokens` `[rows, steps]` when given (so that two precisions are compared on the same
/// contexts), else each step's argmax; and the tokens fed.
pub(crate) fn decode_along(
    model: &azr_trainer::Model,
    prompts: &[Vec<i64>],
    steps: usize,
    precision: Precision,
    tokens: Option<&Tensor>,
) -> (Tensor, Tensor) {
    tch::no_grad(|| {
        let (ids, mut mask) = left_pad(prompts, 0, model.device()).unwrap();
        let mut cache = KvCache::new(model.config.num_layers);
        let (pos, bias) = positions_and_bias(&mask, ids.size()[1], model.kind());
        let hidden = model.forward_hidden(&ids, &pos, &bias, Some(&mut cache));
        let mut next = model.logits(&hidden.select(1, -1)).argmax(-1, true);
        let (mut out, mut fed) = (Vec::new(), Vec::new());
        for step in 0..steps {
            if let Some(t) = tokens {
                next = t.narrow(1, step as i64, 1);
            }
            fed.push(next.shallow_clone());
            let logits = decode_step(model, &mut mask, &mut cache, &next, precision);
            out.push(logits.log_softmax(-1, Kind::Float).unsqueeze(1));
            next = logits.argmax(-1, true);
        }
        (Tensor::cat(&out, 1), Tensor::cat(&fed, 1))
    })
}

/// Mean and largest per-position KL(p ‖ q) of log-prob tensors `[.., V]`.
pub(crate) fn kl(p: &Tensor, q: &Tensor) -> (f64, f64) {
    let per = (p.exp() * (p - q)).sum_dim_intlist(-1, false, Kind::Double);
    (
        per.mean(Kind::Double).double_value(&[]),
        per.max().double_value(&[]),
    )
}

#[test]
fn rollout_copies_decode_within_a_small_kl_of_f32() {
    // Per-row int8 moves each weight by at most half a step (max |w_row| / 254): on the tiny
    // models this measured 5e-4 to 1.3e-3 nats mean, 9e-3 at most. 4-bit blocks (a weight
    // moves by up to ≈ 1/30 of its block's range) with int8 activations round much more, and
    // these random models (embeddings and `lm_head` of std 1, peaked distributions) magnify
    // it: 0.18 to 0.26 mean, 1.3 at most (0.026 mean on Qwen2.5-Coder-0.5B, `bench`). Both
    // are compared on the same tokens. The bounds leave a margin while failing on real errors
    // (a wrong scale, row or block, or contexts that diverged, gave 8.8 mean).
    for (precision, mean_bound, max_bound) in
        [(Precision::Int8, 1e-2, 5e-2), (Precision::Int4, 0.6, 3.0)]
    {
        if !azr_trainer::model::linear::kernel_available(precision) {
            eprintln!("no {} kernel here: decoding reads f32", precision.name());
            continue;
        }
        for arch in [Arch::Llama, Arch::Qwen2] {
            let model = tiny_model(arch);
            let (f32_lp, tokens) = decode_along(&model, &prompts(), 8, Precision::F32, None);
            let (copy_lp, _) = decode_along(&model, &prompts(), 8, precision, Some(&tokens));
            let (mean, max) = kl(&f32_lp, &copy_lp);
            let name = precision.name();
            eprintln!("{arch:?}: KL(f32 ‖ {name}) mean {mean:.2e}, max {max:.2e}");
            assert!(
                mean < mean_bound && max < max_bound,
                "{arch:?} {name}: KL mean {mean}, max {max}"
            );
            assert!(
                mean > 0.0,
                "{arch:?}: {name} was not used (identical to f32)"
            );
        }
    }
}

/// The log-probs `[B, steps, V]` of `steps` decode steps fed `tokens` `[B, steps]`, each step
/// fused (asserting that it ran fused) or through libtorch's operators, and the cache after.
fn decode_fused_or_not(
    model: &azr_trainer::Model,
    tokens: &Tensor,
    precision: Precision,
    fused: bool,
) -> (Tensor, Vec<Tensor>) {
    tch::no_grad(|| {
        let (ids, mut mask) = left_pad(&prompts(), 0, model.device()).unwrap();
        // No room reserved: the steps also grow the cache's buffers.
        let mut cache = KvCache::new(model.config.num_layers);
        let (pos, bias) = positions_and_bias(&mask, ids.size()[1], model.kind());
        let _ = model.forward_hidden(&ids, &pos, &bias, Some(&mut cache));
        let mut out = Vec::new();
        for step in 0..tokens.size()[1] {
            let next = tokens.narrow(1, step, 1);
            let logits = if fused {
                mask = Tensor::cat(&[&mask, &mask.ones_like().narrow(1, 0, 1)], 1);
                let ids = Vec::<i64>::try_from(next.flatten(0, -1)).unwrap();
                let rows = Vec::<i64>::try_from(mask.flatten(0, -1)).unwrap();
                model
                    .decode_fused(&ids, &rows, &mut cache, precision)
                    .expect("the fused step applies to an f32 CPU model")
            } else {
                decode_step_libtorch(model, &mut mask, &mut cache, &next, precision)
            };
            out.push(logits.log_softmax(-1, Kind::Float).unsqueeze(1));
        }
        (Tensor::cat(&out, 1), cache.tensors())
    })
}

#[test]
fn the_fused_decode_step_gives_the_libtorch_steps_log_probs_and_cache() {
    // The same products (the same kernels) and the same arithmetic between them, summed in
    // another order: they agree to rounding (measured ≈ 1e-5 for each precision). int4 also
    // rounds each product's input to int8 per block, where a rounding-level difference could
    // move an input by one level; its bound leaves room for that.
    for (precision, bound) in [
        (Precision::F32, 1e-4),
        (Precision::Int8, 1e-4),
        (Precision::Int4, 1e-3),
    ] {
        if !azr_trainer::model::linear::kernel_available(precision) {
            continue;
        }
        for arch in [Arch::Llama, Arch::Qwen2] {
            let model = tiny_model(arch);
            let (_, tokens) = decode_along(&model, &prompts(), 9, Precision::F32, None);
            let (theirs, their_cache) = decode_fused_or_not(&model, &tokens, precision, false);
            let (ours, our_cache) = decode_fused_or_not(&model, &tokens, precision, true);
            let d = (&ours - &theirs).abs().max().double_value(&[]);
            eprintln!(
                "{arch:?} {}: largest log-prob difference {d:.2e}",
                precision.name()
            );
            assert!(d < bound, "{arch:?} {}: {d}", precision.name());
            assert_eq!(their_cache.len(), our_cache.len());
            for (a, b) in their_cache.iter().zip(&our_cache) {
                assert_eq!(a.size(), b.size());
                let d = (a - b).abs().max().double_value(&[]);
                assert!(d < 10.0 * bound, "{arch:?} {}: cache {d}", precision.name());
            }
        }
    }
}

#[test]
fn the_rollout_copy_follows_the_weights_after_a_training_step() {
    for (precision, gap_bound) in [(Precision::Int8, 1e-2), (Precision::Int4, 1e-1)] {
        if !azr_trainer::model::linear::kernel_available(precision) {
            continue;
        }
        let name = precision.name();
        let model = tiny_model(Arch::Qwen2);
        model.refresh_rollout_copy(precision);
        assert!(model.rollout_copy_bytes() > 0);
        let (_, tokens) = decode_along(&model, &prompts(), 4, Precision::F32, None);
        let (before, _) = decode_along(&model, &prompts(), 4, precision, Some(&tokens));
        let prompts = prompts();
        let responses = vec![vec![4i64, 5, 6], vec![7, 8], vec![9, 10, 11, 12]];
        let (old, _) =
            tch::no_grad(|| response_logprobs(&model, &prompts, &responses, 1.0)).unwrap();
        train_one_step(&model, &prompts, &responses, &old);
        // Not refreshed explicitly: the first product after the step must see the update.
        let (f32_after, tokens) = decode_along(&model, &prompts, 4, Precision::F32, None);
        let (after, _) = decode_along(&model, &prompts, 4, precision, Some(&tokens));
        let (moved, _) = kl(&before, &after);
        let (gap, _) = kl(&f32_after, &after);
        eprintln!("{name}: moved {moved:.2e}, gap {gap:.2e}");
        assert!(
            moved > 10.0 * gap,
            "stale {name} copy: moved {moved}, gap to f32 {gap}"
        );
        assert!(
            gap < gap_bound,
            "{name} copy far from the updated f32 weights: {gap}"
        );
    }
}

#[test]
fn a_prompt_given_several_times_is_computed_once_and_its_rows_sample_independently() {
    let model = tiny_model(Arch::Qwen2);
    let tok = tiny_tokenizer(model.config.vocab_size);
    let p = prompts();
    let repeated = vec![
        p[1].clone(),
        p[0].clone(),
        p[1].clone(),
        p[2].clone(),
        p[1].clone(),
    ];
    // Greedy: every copy continues exactly as the prompt alone does.
    let batched = generate(&model, &tok, &repeated, &SamplingParams::greedy(10)).unwrap();
    for (prompt, got) in repeated.iter().zip(&batched) {
        let alone = generate(
            &model,
            &tok,
            std::slice::from_ref(prompt),
            &SamplingParams::greedy(10),
        )
        .unwrap();
        assert_eq!(got.tokens, alone[0].tokens);
        assert!(max_abs_diff(&got.logprobs, &alone[0].logprobs) < 1e-4);
    }
    // Sampled: the copies draw their own tokens (with this seed they do not all agree).
    let params = SamplingParams {
        temperature: 1.0,
        seed: Some(7),
        ..SamplingParams::greedy(12)
    };
    let same = vec![p[1].clone(); 4];
    let sampled = generate(&model, &tok, &same, &params).unwrap();
    assert!(
        sampled.iter().any(|c| c.tokens != sampled[0].tokens),
        "copies of one prompt sampled the same tokens"
    );
    let again = generate(&model, &tok, &same, &params).unwrap();
    for (a, b) in sampled.iter().zip(&again) {
        assert_eq!(a.tokens, b.tokens, "a seed must reproduce its samples");
    }
}

/// Prompts that open with the same 40 tokens (an instruction) and differ after it, one of
/// them twice (a group's copies), the shortest ending one token past the common part.
fn prompts_with_a_common_opening() -> Vec<Vec<i64>> {
    let opening: Vec<i64> = (0..40).map(|i| (i * 7 + 3) % 97).collect();
    let with = |rest: &[i64]| [opening.as_slice(), rest].concat();
    vec![
        with(&[5, 17, 3, 9]),
        with(&[11]),
        with(&[42, 8, 90, 33, 61, 7, 2, 1, 1, 4]),
        with(&[5, 17, 3, 9]),
    ]
}

#[test]
fn a_shared_opening_computed_once_gives_the_samples_of_computing_it_per_prompt() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let model = tiny_model(arch);
        let tok = tiny_tokenizer(model.config.vocab_size);
        let prompts = prompts_with_a_common_opening();
        for temperature in [0.0, 1.0] {
            let params = |share_prefix| SamplingParams {
                temperature,
                seed: Some(3),
                share_prefix,
                ..SamplingParams::greedy(12)
            };
            let shared = generate(&model, &tok, &prompts, &params(true)).unwrap();
            let each = generate(&model, &tok, &prompts, &params(false)).unwrap();
            for (i, (a, b)) in shared.iter().zip(&each).enumerate() {
                assert_eq!(a.tokens, b.tokens, "{arch:?} T={temperature} prompt {i}");
                let d = max_abs_diff(&a.logprobs, &b.logprobs);
                assert!(d < 1e-4, "{arch:?} T={temperature} prompt {i}: {d}");
            }
        }
    }
}

#[test]
fn continuous_batching_gives_each_prompt_the_continuation_it_has_alone() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let model = tiny_model(arch);
        let mut tok = tiny_tokenizer(model.config.vocab_size);
        // Short and long prompts, a repeat, a shared opening, and a prompt longer than the
        // running batch's cache when it joins (the running rows are then padded on the left).
        let mut all = prompts();
        all.extend(prompts_with_a_common_opening());
        all.push((0..60).map(|i| (i * 13 + 1) % 97).collect());
        all.push(prompts()[0].clone());
        let free = generate(&model, &tok, &all, &SamplingParams::greedy(10)).unwrap();
        // Rows finish at different steps, so waiting prompts join a running batch.
        tok.eos_ids = vec![free[0].tokens[1], free[3].tokens[5]];
        for precision in [Precision::F32, Precision::Int8] {
            for fused_steps in [true, false] {
                let params = |max_batch| SamplingParams {
                    max_batch,
                    precision,
                    fused_steps,
                    ..SamplingParams::greedy(10)
                };
                let whole = generate(&model, &tok, &all, &params(0)).unwrap();
                for max_batch in [1, 2, 3] {
                    let got = generate(&model, &tok, &all, &params(max_batch)).unwrap();
                    for (i, (a, b)) in got.iter().zip(&whole).enumerate() {
                        let at = format!(
                            "{arch:?} {precision:?} fused {fused_steps} batch {max_batch} prompt {i}"
                        );
                        assert_eq!(a.tokens, b.tokens, "{at}");
                        assert_eq!(a.finish, b.finish, "{at}");
                        let d = max_abs_diff(&a.logprobs, &b.logprobs);
                        assert!(d < 1e-3, "{at}: {d}");
                    }
                }
            }
        }
    }
}

#[test]
fn a_set_cancel_flag_ends_generation_with_an_error() {
    let model = tiny_model(Arch::Qwen2);
    let tok = tiny_tokenizer(model.config.vocab_size);
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let params = SamplingParams {
        cancel: Some(cancel),
        ..SamplingParams::greedy(10)
    };
    let err = generate(&model, &tok, &prompts(), &params).unwrap_err();
    assert!(matches!(err, azr_trainer::Error::Cancelled), "{err}");
}
