//! `azr-sandbox bench compute`: how much slower than CPython the guest computes.
//!
//! Test-case rewards are where the guest's speed is a correctness matter (a right solution
//! judged `timeout`), so this compares the same programs, each compiled and run whole, one
//! after another on one thread: in the sandbox (one worker, a `Script` item per program, as
//! a test case runs) and in one warm CPython process (`exec` of each program in fresh
//! globals, its output captured; the process starts and warms up outside the timing).
//! Rounds alternate which side goes first; medians of the rounds' wall times and their
//! ratio are printed per workload.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use azr_sandbox::{Item, Limits, OutputMatch, Rules, Sandbox, Verdict, config::SandboxConfig};

use super::median;

#[derive(clap::Args)]
pub struct ComputeArgs {
    /// HumanEval's cases (JSONL), as `scripts/humaneval-cases.sh` prints: the canonical
    /// solutions with their whole tests are one workload.
    #[arg(long)]
    cases: PathBuf,
    /// AZR seed programs (JSONL with snippet, input): `f(input)` of each is one workload.
    #[arg(long, default_value = "data/azr-seeds/7b_seed_io.jsonl")]
    seeds: PathBuf,
    /// Rounds; the figures are medians over them.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The CPython compared with.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Run the guest without fuel metering (the time limit alone), to measure what the
    /// metering costs. Never how the daemon runs.
    #[arg(long)]
    no_fuel: bool,
    /// Write `/tmp/perf-<pid>.map` for `perf record` (where the guest's time goes).
    #[arg(long)]
    perf_map: bool,
    /// Only the sandbox side (for profiles).
    #[arg(long)]
    no_cpython: bool,
    /// Only the workloads whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

/// The small compute-heavy programs of the guest-speed issue, each a few hundred ms in
/// CPython.
const KERNELS: &[(&str, &str)] = &[
    (
        "numeric loop",
        "total = 0\nfor _ in range(10):\n    total += sum(i * i for i in range(100000))\nprint(total)\n",
    ),
    (
        "function calls",
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nprint(fib(27))\n",
    ),
    (
        "string building",
        "parts = []\nfor i in range(200000):\n    parts.append(str(i) + ',')\ntext = ''.join(parts)\n\
         words = text.split(',')\nprint(len(text), len(words), text.count('9'))\n",
    ),
    (
        "dicts and lists",
        "counts = {}\nfor i in range(300000):\n    k = i % 1009\n    counts[k] = counts.get(k, 0) + i\n\
         rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))\n\
         grid = [[(r * c) % 7 for c in range(100)] for r in range(300)]\n\
         print(rows[0], sum(map(sum, grid)))\n",
    ),
];

struct Workload {
    name: String,
    programs: Vec<String>,
}

fn workloads(args: &ComputeArgs) -> Result<Vec<Workload>> {
    let mut out: Vec<Workload> = KERNELS
        .iter()
        .map(|(name, program)| Workload {
            name: (*name).to_owned(),
            programs: vec![(*program).to_owned()],
        })
        .collect();
    let text = std::fs::read_to_string(&args.cases)
        .with_context(|| format!("reading {}", args.cases.display()))?;
    let mut humaneval = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", args.cases.display(), n + 1))?;
        if v["variant"] != "canonical" {
            continue;
        }
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        humaneval.push(format!(
            "{}\n\n{}\n\ncheck({})\n",
            field("program"),
            field("test"),
            field("entry_point")
        ));
    }
    if humaneval.is_empty() {
        bail!("{}: no canonical solutions", args.cases.display());
    }
    out.push(Workload {
        name: "HumanEval canonical tests".into(),
        programs: humaneval,
    });
    let seeds = super::load_seeds(&args.seeds)?;
    out.push(Workload {
        name: "AZR seed programs, f(input)".into(),
        programs: seeds
            .iter()
            .map(|s| {
                format!(
                    "{}\n{}\nprint(repr(f({})))\n",
                    s.imports.join("\n"),
                    s.snippet,
                    s.input
                )
            })
            .collect(),
    });
    Ok(out)
}

/// Runs every workload once in the sandbox; seconds per workload, and programs that did not
/// end with status 0.
fn guest_round(sandbox: &Sandbox, work: &[Workload], limits: &Limits) -> (Vec<f64>, usize) {
    let rules = Rules::default();
    let mut failed = 0;
    let times = work
        .iter()
        .map(|w| {
            let began = Instant::now();
            for program in &w.programs {
                let item = Item::Script {
                    program: program.clone(),
                    imports: vec![],
                    stdin: String::new(),
                    expected_stdout: None,
                    output_match: OutputMatch::Lines,
                    files: Default::default(),
                };
                let outcome = sandbox.run(vec![item], limits, &rules);
                if outcome
                    .first()
                    .is_none_or(|o| o.verdict != Verdict::Ok || o.exit_code != Some(0))
                {
                    failed += 1;
                }
            }
            began.elapsed().as_secs_f64()
        })
        .collect();
    (times, failed)
}

/// The CPython side: reads the workloads as JSON on stdin, runs them all once untimed (the
/// warm-up), then once timed; prints seconds per workload and the failures.
const CPYTHON_TIMER: &str = r#"
import contextlib, io, json, sys, time
work = json.load(sys.stdin)
def run(programs):
    failed = 0
    for source in programs:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, "<program>", "exec"), {"__name__": "__main__"})
        except BaseException:
            failed += 1
    return failed
for programs in work:
    run(programs)
times, failed = [], 0
for programs in work:
    began = time.perf_counter()
    failed += run(programs)
    times.append(time.perf_counter() - began)
print(json.dumps({"times": times, "failed": failed}))
"#;

fn cpython_round(python: &str, work: &[Workload]) -> Result<(Vec<f64>, usize)> {
    let programs: Vec<&Vec<String>> = work.iter().map(|w| &w.programs).collect();
    let mut child = Command::new(python)
        .args(["-c", CPYTHON_TIMER])
        .env("PYTHONHASHSEED", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {python}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&serde_json::to_vec(&programs)?)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{python} failed ({})", out.status);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).with_context(|| format!("{python} printed no JSON"))?;
    let times = v["times"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    Ok((times, v["failed"].as_u64().unwrap_or(0) as usize))
}

pub fn run(config: &SandboxConfig, args: &ComputeArgs) -> Result<()> {
    // One worker: the same single thread CPython gets.
    let config = SandboxConfig {
        workers: 1,
        ..config.clone()
    };
    let mut pool = config.pool_config();
    pool.engine.fuel_metering = !args.no_fuel;
    pool.engine.perf_map = args.perf_map;
    let sandbox = Sandbox::new(&pool).context("starting the sandbox")?;
    // No limit a right program could meet first: this measures speed, not limits.
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 600_000,
        ..config.limits.clone()
    };
    let mut work = workloads(args)?;
    if let Some(only) = &args.only {
        work.retain(|w| w.name.contains(only.as_str()));
        if work.is_empty() {
            bail!("no workload's name contains {only:?}");
        }
    }
    eprintln!(
        "bench compute: {} workloads, {} rounds, one worker (fuel metering {}) against one \
         warm {}",
        work.len(),
        args.rounds,
        if args.no_fuel { "off" } else { "on" },
        args.python
    );
    // A warm-up round of the sandbox (its instances, the page cache), not counted.
    let _ = guest_round(&sandbox, &work, &limits);
    let mut guest: Vec<Vec<f64>> = vec![Vec::new(); work.len()];
    let mut cpython: Vec<Vec<f64>> = vec![Vec::new(); work.len()];
    let (mut guest_failed, mut cpython_failed) = (0, 0);
    for round in 0..args.rounds.max(1) {
        eprintln!("bench compute: round {}/{}", round + 1, args.rounds.max(1));
        let mut sides = [true, false];
        if round % 2 == 1 {
            sides.reverse();
        }
        for in_guest in sides {
            if in_guest {
                let (times, failed) = guest_round(&sandbox, &work, &limits);
                guest_failed = guest_failed.max(failed);
                for (i, t) in times.into_iter().enumerate() {
                    guest[i].push(t);
                }
            } else if !args.no_cpython {
                let (times, failed) = cpython_round(&args.python, &work)?;
                cpython_failed = cpython_failed.max(failed);
                for (i, t) in times.into_iter().enumerate() {
                    cpython[i].push(t);
                }
            }
        }
    }
    println!(
        "compute-heavy programs, one thread each side (medians of {} rounds)",
        args.rounds.max(1)
    );
    println!(
        "  {:<30} {:>8} {:>10} {:>10} {:>10}",
        "workload", "programs", "guest s", "CPython s", "ratio"
    );
    for (i, w) in work.iter().enumerate() {
        let (g, c) = (median(guest[i].clone()), median(cpython[i].clone()));
        println!(
            "  {:<30} {:>8} {:>10.3} {:>10.3} {:>9.2}x",
            w.name,
            w.programs.len(),
            g,
            c,
            g / c
        );
    }
    println!(
        "  programs that did not end with status 0: guest {guest_failed}, CPython {cpython_failed}"
    );
    Ok(())
}
