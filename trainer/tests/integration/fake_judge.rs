//! The self-play loop over a fake judge: a tiny random model plays two steps with every
//! validation and check answered in-process, so that the loop's rewards, buffers and
//! metrics are pinned without a sandbox daemon (the daemon's side has its own suites).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::support::{tiny_model, tiny_tokenizer};

use azr::check::{CheckKind, CheckResult, Checker, TaskCheck, ValidateTask, Validation};
use azr::config::AzrConfig;
use azr_trainer::Arch;
use azr_trainer::device::Placement;
use azr_trainer::loading::safetensors::save_hf_dir;
use azr_trainer::selfplay::sandbox::{SandboxSpec, SandboxStats};
use azr_trainer::selfplay::{Judge, RunOptions, SelfPlay};

/// Every program valid with its input's text as output; an answer right when its text
/// equals the gold's or, so that rewards differ within a group, when it is of even length.
#[derive(Default)]
struct FakeJudge {
    stats: SandboxStats,
}

impl FakeJudge {
    fn count(&mut self, items: usize) {
        self.stats.calls += 1;
        self.stats.items += items as u64;
    }
}

impl Checker for FakeJudge {
    type Error = Infallible;

    fn validate(&mut self, items: &[ValidateTask]) -> Result<Vec<Validation>, Infallible> {
        self.count(items.len());
        Ok(items
            .iter()
            .map(|t| Validation {
                ok: true,
                output: Some(format!("{:?}", t.input)),
                error: None,
            })
            .collect())
    }

    fn check(&mut self, items: &[TaskCheck]) -> Result<Vec<CheckResult>, Infallible> {
        self.count(items.len());
        Ok(items
            .iter()
            .map(|t| {
                let passed = match &t.kind {
                    CheckKind::Deduction { gold, answer }
                    | CheckKind::Abduction { gold, answer } => {
                        answer == gold || answer.len() % 2 == 0
                    }
                    CheckKind::Induction { .. } => true,
                };
                CheckResult {
                    passed,
                    verdict: "ok".into(),
                    refused_answer: false,
                }
            })
            .collect())
    }
}

impl Judge for FakeJudge {
    fn stats(&self) -> &SandboxStats {
        &self.stats
    }

    fn describe(&self) -> String {
        "fake judge".into()
    }
}

#[test]
fn two_steps_over_a_fake_judge_reward_answers_by_its_verdicts_and_fill_the_buffers() {
    let dir = std::env::temp_dir().join(format!("azr-fake-judge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = tiny_model(Arch::Qwen2);
    let tok = tiny_tokenizer(model.config.vocab_size);
    save_hf_dir(&model, &tok, &dir.join("model")).unwrap();
    let mut config = AzrConfig::tiny();
    config.model = dir.join("model").display().to_string();
    config.total_steps = 2;
    config.checkpoint_interval = 100;
    for (field, value) in [
        ("tasks.batch_size", "2"),
        ("tasks.references", "1"),
        ("tasks.seed_batch_factor", "1"),
        ("tasks.max_seed_rounds", "1"),
        ("rollout.max_response_tokens", "8"),
        ("rollout.chat_template", "false"),
        ("reward.format_reward", "false"),
        ("reward.n_samples", "2"),
        ("optim.mini_batch", "16"),
        ("optim.micro_batch", "16"),
    ] {
        config = config.with_field(&format!("{field}={value}")).unwrap();
    }
    let opts = RunOptions {
        config,
        output: dir.join("run"),
        resume: false,
        sandbox: SandboxSpec::External(dir.join("no-daemon.sock")),
        placement: Placement::cpu(),
        max_training: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut run = SelfPlay::start_with(opts, stop, |_| Ok(FakeJudge::default())).unwrap();
    let summary = run.run().unwrap();
    assert_eq!(summary.steps_done, 2);

    let metrics = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let steps: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_none())
        .collect();
    assert_eq!(steps.len(), 2);
    for s in &steps {
        // The judge's traffic is what the metrics report.
        assert!(s["sandbox"]["items"].as_u64().unwrap() > 0, "{s}");
        for group in ["pred_code_o", "pred_code_i"] {
            let g = &s["groups"][group];
            let rewards: Vec<f64> = g["rewards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_f64().unwrap())
                .collect();
            assert!(!rewards.is_empty(), "{group}: {s}");
            // Without the format reward every answer is in the layout: its reward is the
            // judge's verdict, 1 or 0 (the accuracy of one check).
            assert!(
                rewards.iter().all(|&r| r == 0.0 || r == 1.0),
                "{group}: {rewards:?}"
            );
        }
        // Every proposal is valid under this judge.
        for group in ["gen_code_o", "gen_code_i"] {
            let valid = s["groups"][group]["valid_rate"].as_f64();
            assert!(valid.is_none() || valid == Some(1.0), "{group}: {s}");
        }
    }
    // The rollouts' log names, for every solver answer, the task it answered.
    let rollouts = std::fs::read_to_string(dir.join("run/rollouts.jsonl")).unwrap();
    assert!(rollouts.lines().any(|l| l.contains("\"task_key\"")));
    let _ = std::fs::remove_dir_all(&dir);
}
