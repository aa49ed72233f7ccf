//! The self-play loop end to end, across crates: the `azr-trainer` binary trains a tiny
//! random-weight model while its embedded `azr-sandbox` daemon — the real one, on a real Unix
//! socket, seccomp and all — validates and checks every task; then a second run resumes from
//! the checkpoint; then a run is stopped with SIGINT and must leave a checkpoint behind.
//!
//! Both binaries are taken from the target directory this test was built into (`cargo test
//! --workspace` builds them); the test says how to build them when they are missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/self_play-<hash> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .expect("target directory");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build -p azr-sandbox -p azr-trainer), or run \
         the whole workspace's tests",
        path.display()
    );
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("azr-self-play-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn trainer() -> Command {
    let mut c = Command::new(bin("azr-trainer"));
    c.env("AZR_SANDBOX_BIN", bin("azr-sandbox"))
        .env("RUST_LOG", "warn");
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().expect("azr-trainer runs");
    assert!(
        out.status.success(),
        "azr-trainer failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A tiny random model and a config that exercises every phase in seconds. Format rewards
/// are off so that the noise the model writes still reaches the sandbox as solver answers
/// (with the layout required, every answer would fail before any check).
fn setup(dir: &Path, total_steps: u64) -> PathBuf {
    let model = dir.join("model");
    let mut c = trainer();
    c.args(["init-model", "--output"]).arg(&model);
    run(c);
    let config = dir.join("tiny-random.toml");
    std::fs::write(
        &config,
        format!(
            r#"model = "{model}"
seed = 3
total_steps = {total_steps}
checkpoint_interval = 1
checkpoint_keep = 2
[tasks]
batch_size = 2
references = 1
induction_inputs = 2
seed_batch_factor = 1
max_seed_rounds = 1
[rollout]
max_prompt_tokens = 6000
max_response_tokens = 8
content_max_length = 6000
generation_batch = 8
[optim]
mini_batch = 6
micro_batch = 6
gradient_checkpointing = false
[reward]
n_samples = 2
format_reward = false
"#,
            model = model.display()
        ),
    )
    .expect("config");
    config
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("metrics file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each metrics line is JSON"))
        .collect()
}

fn steps(metrics: &[Value]) -> Vec<&Value> {
    metrics
        .iter()
        .filter(|v| v.get("event").is_none())
        .collect()
}

/// The digest `azr-trainer` records for buffers: FNV-1a over their JSON, which is exactly
/// what a checkpoint's `buffers.json` holds.
fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

const GROUPS: [&str; 6] = [
    "gen_code_i",
    "pred_code_i",
    "gen_code_o",
    "pred_code_o",
    "gen_code_f",
    "pred_code_f",
];

#[test]
fn two_steps_through_a_real_daemon_then_a_resumed_run_continues_from_the_checkpoint() {
    let dir = temp_dir("resume");
    let config = setup(&dir, 2);
    let out_dir = dir.join("run");
    let mut c = trainer();
    c.args(["train", "--threads", "1", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out_dir);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("metrics: "), "{stdout}");
    assert!(stdout.contains("checkpoint: "), "{stdout}");

    let metrics = lines(&out_dir.join("metrics.jsonl"));
    let first = steps(&metrics);
    assert_eq!(first.len(), 2, "two step lines: {metrics:?}");
    let mut sandbox_items = 0;
    for (i, s) in first.iter().enumerate() {
        assert_eq!(s["step"], (i + 1) as u64);
        for g in GROUPS {
            let group = &s["groups"][g];
            assert!(group.is_object(), "step {} lacks group {g}: {s}", i + 1);
            assert_eq!(group["rollouts"], 2, "{g}: {group}");
            for r in group["rewards"].as_array().expect("rewards") {
                let r = r.as_f64().expect("reward");
                assert!(
                    r == -1.0 || r == -0.5 || (r > 0.0 && r <= 1.0),
                    "{g}: reward {r} outside {{-1, -0.5}} ∪ (0, 1]"
                );
            }
        }
        // Solver answers went to the daemon and came back judged (never lost).
        sandbox_items += s["sandbox"]["items"].as_u64().expect("sandbox items");
        assert_eq!(s["sandbox"]["failed_items"], 0, "{s}");
        assert!(s["time"]["total_s"].as_f64().expect("time") > 0.0);
    }
    assert!(sandbox_items > 0, "no task reached the sandbox");

    let ckpt = out_dir.join("checkpoints/step-000002");
    for f in [
        "model/model.safetensors",
        "model/config.json",
        "model/tokenizer.json",
        "optimizer.safetensors",
        "buffers.json",
        "state.json",
    ] {
        assert!(ckpt.join(f).is_file(), "checkpoint lacks {f}");
    }
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 2);
    let saved_buffers = std::fs::read(ckpt.join("buffers.json")).unwrap();

    // Resume: the run's own config.toml, two more steps.
    let mut c = trainer();
    c.args([
        "train",
        "--threads",
        "1",
        "--resume",
        "--total-steps",
        "4",
        "--output",
    ])
    .arg(&out_dir);
    run(c);
    let metrics = lines(&out_dir.join("metrics.jsonl"));
    let resume = metrics
        .iter()
        .find(|v| v["event"] == "resume")
        .expect("a resume event");
    assert_eq!(resume["step"], 2);
    assert_eq!(resume["buffers_digest"], fnv(&saved_buffers).as_str());
    assert_eq!(resume["optimizer_steps"], state["optimizer_steps"]);
    let numbers: Vec<u64> = steps(&metrics)
        .iter()
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let state4: Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("checkpoints/step-000004/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state4["step"], 4);
    assert!(state4["optimizer_steps"].as_u64() > state["optimizer_steps"].as_u64());
    // Only `checkpoint_keep` = 2 checkpoints stay on disk.
    assert!(!out_dir.join("checkpoints/step-000002").exists());
    assert!(out_dir.join("checkpoints/step-000003").exists());

    // A fresh run into a directory that holds checkpoints is refused, not overwritten.
    let mut c = trainer();
    c.args(["train", "--threads", "1", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out_dir);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--resume"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_through_adapters_saves_them_beside_a_merged_model_and_resumes_onto_the_base() {
    let dir = temp_dir("adapters");
    let config = setup(&dir, 2);
    let out_dir = dir.join("run");
    let mut c = trainer();
    c.args(["train", "--threads", "1", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out_dir)
        .args(["--set", "optim.lora_rank=2", "--set", "optim.lr=1e-2"]);
    run(c);
    let ckpt = out_dir.join("checkpoints/step-000002");
    for f in [
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "model/model.safetensors",
        "optimizer.safetensors",
    ] {
        assert!(ckpt.join(f).is_file(), "checkpoint lacks {f}");
    }
    let adapter: Value = serde_json::from_str(
        &std::fs::read_to_string(ckpt.join("adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(adapter["r"], 2);
    assert_eq!(adapter["peft_type"], "LORA");
    // The optimiser holds the adapters only: megabytes for a real model, bytes here.
    let optimizer = std::fs::metadata(ckpt.join("optimizer.safetensors"))
        .unwrap()
        .len();
    let model = std::fs::metadata(ckpt.join("model/model.safetensors"))
        .unwrap()
        .len();
    assert!(
        optimizer < model,
        "optimiser {optimizer} B against the model's {model} B"
    );
    // Solver groups say how many of their answers were to tasks proposed in training.
    for s in steps(&lines(&out_dir.join("metrics.jsonl"))) {
        let share = s["groups"]["pred_code_o"]["proposed_in_training"]
            .as_f64()
            .expect("a share for the solver group");
        assert!((0.0..=1.0).contains(&share), "{share}");
    }

    let mut c = trainer();
    c.env("RUST_LOG", "info")
        .args([
            "train",
            "--threads",
            "1",
            "--resume",
            "--total-steps",
            "3",
            "--output",
        ])
        .arg(&out_dir);
    let out = run(c);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("adapters restored"), "{log}");
    assert!(out_dir.join("checkpoints/step-000003/adapter").is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigint_stops_at_a_phase_boundary_and_leaves_a_checkpoint_to_resume_from() {
    let dir = temp_dir("sigint");
    // Unbounded, with checkpoints far apart: only the stop itself writes one.
    let config = setup(&dir, 0);
    let out_dir = dir.join("run");
    let mut c = trainer();
    c.args([
        "train",
        "--threads",
        "1",
        "--set",
        "checkpoint_interval=1000",
        "--config",
    ])
    .arg(&config)
    .arg("--output")
    .arg(&out_dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("azr-trainer starts");
    let metrics = out_dir.join("metrics.jsonl");
    let started = Instant::now();
    while std::fs::read_to_string(&metrics)
        .map(|t| t.lines().filter(|l| l.starts_with("{\"step\"")).count() < 2)
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no two steps in 300 s"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("azr-trainer exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our child's pid.
    let rc = unsafe { libc_kill(child.id() as i32, 2) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().expect("azr-trainer exits");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = steps(&lines(&metrics))
        .last()
        .and_then(|s| s["step"].as_u64())
        .expect("a step line");
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(
            out_dir
                .join("checkpoints")
                .join(format!("step-{done:06}"))
                .join("state.json"),
        )
        .expect("a checkpoint of the last completed step"),
    )
    .unwrap();
    assert_eq!(state["step"], done);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_scores_deduction_and_abduction_through_a_real_daemon() {
    let dir = temp_dir("eval");
    let model = dir.join("model");
    let mut c = trainer();
    c.args(["init-model", "--output"]).arg(&model);
    run(c);
    let programs = dir.join("programs.jsonl");
    let records = [
        r#"{"snippet": "def f(a):\n    return a * 2", "input": "21", "output": "42", "imports": []}"#,
        r#"{"snippet": "def f(s):\n    return s[::-1]", "input": "'abc'", "output": "'cba'", "imports": []}"#,
        r#"{"snippet": "import math\ndef f(n):\n    return math.factorial(n)", "input": "5", "output": "120", "imports": ["import math"]}"#,
    ];
    std::fs::write(&programs, records.join("\n") + "\n").expect("programs file");
    let mut c = trainer();
    c.args([
        "eval",
        "--threads",
        "1",
        "--sandbox-workers",
        "1",
        "--max-new-tokens",
        "8",
        "--batch",
        "2",
        "--limit",
        "0",
        "--model",
    ])
    .arg(&model)
    .arg("--programs")
    .arg(&programs)
    .arg("--answers")
    .arg(dir.join("answers.jsonl"));
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().expect("a report line"))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert_eq!(report["programs"], 3, "{report}");
    // Every answer, with what it answered and how it was judged.
    let answers: Vec<Value> = std::fs::read_to_string(dir.join("answers.jsonl"))
        .expect("the answers file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an answer line"))
        .collect();
    assert_eq!(answers.len(), 6, "3 programs x 2 task types");
    for a in &answers {
        for key in [
            "task",
            "program",
            "prompt",
            "response",
            "format_ok",
            "correct",
            "output",
        ] {
            assert!(a.get(key).is_some(), "{key} missing: {a}");
        }
    }
    let mut programs_seen: Vec<u64> = answers
        .iter()
        .filter(|a| a["task"] == "code_o")
        .map(|a| a["program"].as_u64().unwrap_or(99))
        .collect();
    programs_seen.sort_unstable();
    assert_eq!(programs_seen, [0, 1, 2]);
    let scores = report["scores"].as_object().expect("scores by task type");
    assert_eq!(scores.len(), 2, "{report}");
    for (name, score) in scores {
        assert_eq!(score["tasks"], 3, "{name}: {report}");
        let acc = score["accuracy"].as_f64().expect("accuracy");
        assert!((0.0..=1.0).contains(&acc), "{name}: {report}");
    }

    // HumanEval-shaped problems, their tests run in the sandbox: a pass@1 score over both.
    let problems = dir.join("humaneval.jsonl");
    let lines = [
        r#"{"task_id": "t/0", "prompt": "def add(a, b):\n    return a + b\n", "test": "def check(c):\n    assert c(1, 2) == 3\n", "entry_point": "add"}"#,
        r#"{"task_id": "t/1", "prompt": "def sub(a, b):\n", "test": "def check(c):\n    assert c(3, 2) == 1\n", "entry_point": "sub"}"#,
    ];
    std::fs::write(
        &problems,
        lines.join(
            "
",
        ) + "
",
    )
    .expect("problems file");
    let mut c = trainer();
    c.args([
        "eval",
        "--threads",
        "1",
        "--max-new-tokens",
        "4",
        "--no-tasks",
        "--model",
    ])
    .arg(&model)
    .arg("--humaneval")
    .arg(&problems);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().expect("a report line"))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let he = &report["humaneval"];
    assert_eq!(he["problems"], 2, "{report}");
    assert!(he["passed_ids"].as_array().is_some(), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn a_run_with_its_control_then_a_report_of_both() {
    let dir = temp_dir("control");
    let config = setup(&dir, 2);
    let out_dir = dir.join("run");
    let mut c = trainer();
    c.args(["train", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out_dir)
        .args(["--threads", "2", "--control"]);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let control_dir = dir.join("run-control");
    assert!(
        stdout.contains(&format!(
            "compare: azr-trainer report {}",
            out_dir.display()
        )),
        "{stdout}"
    );
    // Same seeds and steps; lr 0 in the control's saved config, no optimiser step taken.
    let run_steps = lines(&out_dir.join("metrics.jsonl"));
    let control = lines(&control_dir.join("metrics.jsonl"));
    assert_eq!(steps(&run_steps).len(), 2);
    assert_eq!(steps(&control).len(), 2);
    let saved = std::fs::read_to_string(control_dir.join("config.toml")).expect("config");
    assert!(saved.contains("lr = 0.0"), "{saved}");
    for s in steps(&control) {
        assert_eq!(s["update"]["optimizer_steps"], 0, "{s}");
    }
    // The first step's rollouts come from the same weights and seeds in both runs.
    let first = |m: &[Value]| steps(m)[0]["groups"]["gen_code_o"]["rewards"].clone();
    assert_eq!(first(&run_steps), first(&control));

    let png = dir.join("report.png");
    let mut c = trainer();
    c.arg("report")
        .arg(&out_dir)
        .arg(&control_dir)
        .arg("--png")
        .arg(&png);
    let out = run(c);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("run-control"), "{table}");
    assert!(table.contains("2 steps; zero-variance groups"), "{table}");
    let bytes = std::fs::read(&png).expect("the chart");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    std::fs::remove_dir_all(&dir).ok();
}

/// `train` of `config` into `out_dir` on one thread, deduction and abduction only, the
/// buffers seeded from the built-in programs, one proposal per type and step.
fn train_from_builtin_seeds(config: &Path, out_dir: &Path) -> Command {
    let mut c = trainer();
    c.args(["train", "--threads", "1", "--config"])
        .arg(config)
        .arg("--output")
        .arg(out_dir)
        .args(["--set", "tasks.seed_programs=\"builtin\""])
        .args(["--set", "tasks.seed_batch_factor=16"])
        .args(["--set", "tasks.propose_batch_size=1"])
        .args(["--set", "tasks.types=[\"code_i\", \"code_o\"]"]);
    c
}

#[test]
fn builtin_seed_programs_fill_the_buffers_and_a_time_budget_ends_the_run_with_a_checkpoint() {
    let dir = temp_dir("seeds");
    let config = setup(&dir, 5);
    let out_dir = dir.join("run");
    let mut c = train_from_builtin_seeds(&config, &out_dir);
    // 0.6 ms: no step is that fast, so the budget ends the run after its first step.
    c.args(["--max-minutes", "0.00001"])
        .args(["--set", "checkpoint_interval=100"]);
    let out = run(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-minutes"), "{stderr}");
    let metrics = lines(&out_dir.join("metrics.jsonl"));
    // Every built-in program runs in the real daemon; with them the pool reaches its target
    // (2 × 16 = 32) and, induction not being played, no proposing round is needed.
    let seeded: Vec<&Value> = metrics
        .iter()
        .filter(|m| m["event"] == "seed_programs")
        .collect();
    assert_eq!(seeded.len(), 1, "{metrics:?}");
    assert_eq!(seeded[0]["added"], 32, "{}", seeded[0]);
    assert_eq!(seeded[0]["refused"], 0, "{}", seeded[0]);
    assert!(!metrics.iter().any(|m| m["event"] == "seed"), "{metrics:?}");
    // The budget stops the run after its first step, which is checkpointed although the
    // interval is 100.
    let done = steps(&metrics);
    assert_eq!(done.len(), 1, "{metrics:?}");
    for g in ["gen_code_o", "gen_code_i"] {
        assert_eq!(done[0]["groups"][g]["rollouts"], 1, "{g}: {}", done[0]);
    }
    assert_eq!(
        done[0]["groups"]["pred_code_o"]["rollouts"], 2,
        "{}",
        done[0]
    );
    assert!(out_dir.join("checkpoints/step-000001").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn answers_to_one_task_come_in_groups_and_every_rollout_names_what_it_answered_or_proposed() {
    let dir = temp_dir("task-groups");
    let config = setup(&dir, 1);
    let out_dir = dir.join("run");
    let mut c = train_from_builtin_seeds(&config, &out_dir);
    c.args(["--set", "tasks.batch_size=4"])
        .args(["--set", "tasks.solve_group_size=2"])
        .args(["--set", "optim.advantage=\"task_group\""])
        .args(["--set", "rollout.prompt_style=\"brief\""]);
    run(c);
    let rollouts = lines(&out_dir.join("rollouts.jsonl"));
    for group in ["pred_code_i", "pred_code_o"] {
        let answers: Vec<&Value> = rollouts
            .iter()
            .filter(|r| r["step"] == 1 && r["group"] == group)
            .collect();
        assert_eq!(answers.len(), 4, "{group}: {answers:?}");
        // Two tasks, each answered twice, each answer naming the task it answered.
        let mut keys: Vec<u64> = answers
            .iter()
            .map(|r| r["task_key"].as_u64().expect("task_key"))
            .collect();
        keys.sort_unstable();
        assert_eq!(keys[0], keys[1], "{keys:?}");
        assert_eq!(keys[2], keys[3], "{keys:?}");
        assert_ne!(keys[1], keys[2], "{keys:?}");
        for r in &answers {
            assert!(
                r["task"]["program"]
                    .as_str()
                    .is_some_and(|p| p.contains("def ")),
                "{r}"
            );
            assert!(r["task"]["output"].is_string(), "{r}");
        }
    }
    let proposals: Vec<&Value> = rollouts
        .iter()
        .filter(|r| r["step"] == 1 && r["group"].as_str().is_some_and(|g| g.starts_with("gen_")))
        .collect();
    assert_eq!(proposals.len(), 2, "{proposals:?}");
    for p in proposals {
        // A random model's proposal is invalid, and says why; a valid one names its task.
        assert_eq!(p["valid"], p["invalid"].is_null(), "{p}");
        assert_eq!(p["valid"], !p["task"].is_null(), "{p}");
        assert!(p.get("learnability").is_some(), "{p}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The JSON summary `bench-selfplay` prints last.
fn bench_selfplay(dir: &Path, config: &Path, name: &str, set: &[&str]) -> Value {
    let mut c = trainer();
    c.args([
        "bench-selfplay",
        "--threads",
        "1",
        "--repeats",
        "2",
        "--config",
    ])
    .arg(config)
    .arg("--output")
    .arg(dir.join(name));
    for s in set {
        c.args(["--set", s]);
    }
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("old/new: generation time "), "{stdout}");
    serde_json::from_str(stdout.lines().last().expect("a summary line"))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn bench_selfplay_times_both_paths_on_the_same_draws_and_f32_on_both_samples_the_same_tokens() {
    let dir = temp_dir("bench");
    let config = setup(&dir, 1);
    let report = bench_selfplay(&dir, &config, "int8", &[]);
    for path in ["new", "old"] {
        let rounds = report["rounds"][path].as_array().expect("rounds");
        assert_eq!(rounds.len(), 2, "{report}");
        for r in rounds {
            assert!(r["generated_tokens"].as_u64().expect("tokens") > 0, "{r}");
            assert!(r["generate_s"].as_f64().expect("seconds") > 0.0, "{r}");
        }
        // Same seeds, same weights: every round of a path draws the same tokens.
        assert_eq!(
            report[path]["tokens_digests"].as_array().unwrap().len(),
            1,
            "{report}"
        );
    }
    // The old path computes every prompt row; the new one shares repeated prompts.
    assert!(
        report["old"]["prompt_tokens"].as_u64() > report["new"]["prompt_tokens"].as_u64(),
        "{report}"
    );
    let gap = report["new"]["logprob_gap"]
        .as_f64()
        .expect("the int8 copy's gap");
    assert!(gap > 0.0 && gap < 0.1, "{report}");

    // Sampling from f32 on the new path too: the same tokens as the old path (the fused
    // steps and shared prompt passes change only float rounding).
    let report = bench_selfplay(&dir, &config, "f32", &["rollout.precision=\"f32\""]);
    assert_eq!(
        report["new"]["tokens_digests"], report["old"]["tokens_digests"],
        "{report}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
