//! `azr-sandbox bench`: the sandbox against CPython baselines, measured in the same run.
//! `bench test-cases` (`test_cases.rs`) measures test-case scoring on HumanEval; `bench
//! front-ends` (`front_ends.rs`) whether HTTP clients can starve gRPC ones; `bench compute`
//! (`compute.rs`) the guest's speed against CPython's; plain `bench`
//! measures AZR's workloads, below.
//!
//! Workloads, on the AZR seed programs (`7b_seed_io.jsonl`):
//! - V: validation of every program (run + determinism re-run + repr), one fresh instance
//!   per program; baselines: (a) one `python3` process per program, (b) a warm CPython pool
//!   doing one `exec` task per program (the AZR reference's executor, idealised).
//! - S: an AZR step's work per program: validation + 8 deduction + 8 abduction checks,
//!   batched into one instance per program; baseline (b) with one pool task per check, the
//!   way the reference submits them.
//! - latency of one trivial program, in-process (p50/p99).
//! - through the daemon (`serve` started as a child on a private socket, seccomp on): the
//!   latency of one trivial check over the socket, and workload S as batch RPCs, against
//!   the in-process figure (the daemon's overhead).
//!
//! Each figure is the median over `--rounds` rounds.

use std::{
    io::Write,
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use azr_sandbox::{Item, Sandbox, Verdict, config::SandboxConfig};

pub mod compute;
mod daemon;
pub mod front_ends;
pub mod test_cases;

const BASELINE_SCRIPT: &str = include_str!("../../bench/cpython_baseline.py");

/// `azr-sandbox bench [test-cases]`: AZR's workloads by default (flags below).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchCommand {
    #[command(subcommand)]
    pub kind: Option<BenchKind>,
    #[command(flatten)]
    pub azr: BenchArgs,
}

#[derive(clap::Subcommand)]
pub enum BenchKind {
    /// HumanEval's completions scored against their test cases, through gRPC and HTTP,
    /// against a python3-process-per-test baseline.
    TestCases(test_cases::TestCasesArgs),
    /// A gRPC client's latency while many idle and slow HTTP clients hold connections,
    /// against the same client with the HTTP side quiet, alternated; the daemon's memory.
    FrontEnds(front_ends::FrontEndsArgs),
    /// Compute-heavy programs (HumanEval's canonical tests, loops, calls, strings, dicts)
    /// in the sandbox against one warm CPython, one thread each, interleaved: the ratio.
    Compute(compute::ComputeArgs),
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Seed programs (JSONL with snippet, input, imports, output).
    #[arg(long, default_value = "data/azr-seeds/7b_seed_io.jsonl")]
    seeds: PathBuf,
    /// Rounds per measurement; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The CPython used for the baselines.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Measure the sandbox only.
    #[arg(long)]
    no_baselines: bool,
    /// Calls of the trivial program for the latency figures.
    #[arg(long, default_value_t = 2000)]
    latency_calls: usize,
    /// Skip the figures through the daemon.
    #[arg(long)]
    no_daemon: bool,
}

#[derive(Clone)]
struct Seed {
    snippet: String,
    imports: Vec<String>,
    input: String,
    output: String,
}

fn load_seeds(path: &PathBuf) -> Result<Vec<Seed>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut seeds = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let (Some(snippet), Some(input), Some(output)) =
            (field("snippet"), field("input"), field("output"))
        else {
            bail!(
                "{}:{}: needs snippet, input and output",
                path.display(),
                n + 1
            );
        };
        let imports = v
            .get("imports")
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        seeds.push(Seed {
            snippet,
            imports,
            input,
            output,
        });
    }
    Ok(seeds)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    if xs.is_empty() {
        return f64::NAN;
    }
    xs[xs.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs one batch per program over all workers; returns programs per second.
fn sandbox_round(sandbox: &Sandbox, config: &SandboxConfig, batches: &[Vec<Item>]) -> f64 {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..config.workers() {
            let next = next.clone();
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(batch) = batches.get(i) else { break };
                    sandbox.run(batch.clone(), &config.limits, &config.rules);
                }
            });
        }
    });
    batches.len() as f64 / started.elapsed().as_secs_f64()
}

fn baseline(
    args: &BenchArgs,
    script: &std::path::Path,
    mode: &str,
    workload: &str,
    workers: usize,
) -> Result<f64> {
    // The seed programs run unsandboxed here, and some write files: they do so in the
    // baseline's scratch directory, not wherever the bench was started.
    let seeds = std::path::absolute(&args.seeds)
        .with_context(|| format!("resolving {}", args.seeds.display()))?;
    let output = Command::new(&args.python)
        .arg(script)
        .args([mode, workload])
        .arg(&seeds)
        .args([workers.to_string(), args.rounds.to_string()])
        .current_dir(script.parent().unwrap_or(std::path::Path::new(".")))
        .output()
        .with_context(|| format!("running {}", args.python))?;
    if !output.status.success() {
        bail!(
            "baseline {mode}/{workload} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut rates = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
        let programs = v["programs"].as_f64().unwrap_or(f64::NAN);
        rates.push(programs / secs);
    }
    Ok(median(rates))
}

pub fn run(config: &SandboxConfig, args: &BenchArgs) -> Result<()> {
    let seeds = load_seeds(&args.seeds)?;
    let workers = config.workers();
    eprintln!(
        "bench: {} programs from {}, {} workers, {} rounds (medians)",
        seeds.len(),
        args.seeds.display(),
        workers,
        args.rounds
    );
    let sandbox = Sandbox::new(&config.pool_config()).context("starting the sandbox")?;

    let v_batches: Vec<Vec<Item>> = seeds.iter().map(validation).collect();
    let s_batches: Vec<Vec<Item>> = seeds
        .iter()
        .map(|s| {
            let mut batch = validation(s);
            for _ in 0..8 {
                batch.push(Item::Deduction {
                    program: s.snippet.clone(),
                    imports: s.imports.clone(),
                    gold: s.output.clone(),
                    answer: s.output.clone(),
                });
            }
            for _ in 0..8 {
                batch.push(Item::Abduction {
                    program: s.snippet.clone(),
                    imports: s.imports.clone(),
                    gold: s.output.clone(),
                    answer: s.input.clone(),
                });
            }
            batch
        })
        .collect();

    // Warm up (page cache, pool slots), and count how the programs end.
    let warm = sandbox.run(
        v_batches.iter().flatten().cloned().collect(),
        &config.limits,
        &config.rules,
    );
    let ok = warm.iter().filter(|o| o.verdict == Verdict::Ok).count();
    eprintln!("bench: validation: {ok}/{} programs valid", warm.len());
    let mut micros: Vec<u64> = warm.iter().map(|o| o.micros).collect();
    micros.sort_unstable();
    let total: u64 = micros.iter().sum();
    let top: u64 = micros.iter().rev().take(micros.len() / 20).sum();
    eprintln!(
        "bench: validation time per program: p50 {} µs, p90 {} µs, max {} µs; the slowest 5% take {:.0}% of the total",
        micros.get(micros.len() / 2).copied().unwrap_or(0),
        micros.get(micros.len() * 9 / 10).copied().unwrap_or(0),
        micros.last().copied().unwrap_or(0),
        100.0 * top as f64 / total.max(1) as f64
    );

    let v_rate = median(
        (0..args.rounds)
            .map(|_| sandbox_round(&sandbox, config, &v_batches))
            .collect(),
    );
    let s_rate = median(
        (0..args.rounds)
            .map(|_| sandbox_round(&sandbox, config, &s_batches))
            .collect(),
    );

    // Latency of one trivial program, one at a time.
    let trivial = vec![Item::Run {
        program: "def f(x):\n    return x".into(),
        imports: vec![],
        input: Some("1".into()),
        files: Default::default(),
    }];
    let mut latencies = Vec::with_capacity(args.latency_calls);
    let faults_before = minor_faults();
    for _ in 0..args.latency_calls {
        let t = Instant::now();
        sandbox.run(trivial.clone(), &config.limits, &config.rules);
        latencies.push(t.elapsed());
    }
    let faults = minor_faults().saturating_sub(faults_before) / args.latency_calls.max(1) as u64;
    latencies.sort();
    let p50 = percentile(&latencies, 0.5);
    let p99 = percentile(&latencies, 0.99);

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "workload V (validation, programs/s): sandbox {v_rate:.0}"
    )?;
    writeln!(
        out,
        "workload S (validation + 8 deduction + 8 abduction, programs/s): sandbox {s_rate:.0}"
    )?;
    writeln!(
        out,
        "trivial program latency (in-process, through the worker pool): p50 {:.3} ms, p99 {:.3} ms, {faults} page faults per call",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    )?;
    if !args.no_daemon {
        drop(sandbox);
        daemon_figures(config, &seeds, args, s_rate, &mut out)?;
    }
    if args.no_baselines {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("azr-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("cpython_baseline.py");
    std::fs::write(&script, BASELINE_SCRIPT)?;
    let a = baseline(args, &script, "subprocess", "V", workers)?;
    let b_v = baseline(args, &script, "pool", "V", workers)?;
    let b_s = baseline(args, &script, "pool", "S", workers)?;
    let _ = std::fs::remove_dir_all(&dir);
    writeln!(out, "baselines ({workers} workers, same run):")?;
    writeln!(
        out,
        "  (a) python3 subprocess per program, V: {a:.0} programs/s"
    )?;
    writeln!(
        out,
        "  (b) warm CPython pool, exec per task, V: {b_v:.0} programs/s"
    )?;
    writeln!(
        out,
        "  (b) warm CPython pool, one task per check, S: {b_s:.0} programs/s"
    )?;
    writeln!(out, "ratios:")?;
    writeln!(
        out,
        "  V: sandbox / (a) = {:.1}x   (goal >= 20x)",
        v_rate / a
    )?;
    writeln!(
        out,
        "  V: sandbox / (b) = {:.2}x   (goal >= 1x)",
        v_rate / b_v
    )?;
    writeln!(
        out,
        "  S: sandbox / (b) = {:.2}x   (goal >= 3x)",
        s_rate / b_s
    )?;
    Ok(())
}

/// Starts `azr-sandbox serve` on a private socket and measures through it.
fn daemon_figures(
    config: &SandboxConfig,
    seeds: &[Seed],
    args: &BenchArgs,
    in_process_s: f64,
    out: &mut impl Write,
) -> Result<()> {
    use azr_sandbox_client::{CallOptions, Client, v1};
    // One client thread: a call's reply then wakes the thread that waits for it, with no
    // hand-off between runtime threads (the daemon's side is what is measured).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let daemon = daemon::DaemonChild::start(config, None).await?;
        let client = Client::connect([&daemon.socket])?;
        let figures = async {
            let program = |s: &Seed| {
                Some(v1::Program {
                    source: s.snippet.clone(),
                    imports: s.imports.clone(),
                    ..Default::default()
                })
            };
            let call = CallOptions::default();
            // One trivial check at a time.
            let trivial = trivial_check();
            for _ in 0..50 {
                client.check(trivial.clone(), &call).await?;
            }
            let mut latencies = Vec::with_capacity(args.latency_calls);
            for _ in 0..args.latency_calls {
                let t = Instant::now();
                client.check(trivial.clone(), &call).await?;
                latencies.push(t.elapsed());
            }
            latencies.sort();
            // Workload S as the trainer sends it: per program one validation, then one batch of
            // 8 deduction + 8 abduction checks against it; programs in flight concurrently.
            let one_program = |s: &Seed| {
                let client = &client;
                let call = &call;
                let s = s.clone();
                async move {
                    let task = v1::ValidateTask {
                        program: program(&s),
                        input: s.input.clone(),
                    };
                    client.validate(task, call).await?;
                    let mut checks = Vec::with_capacity(16);
                    for _ in 0..8 {
                        checks.push(v1::CheckTask {
                            program: None,
                            kind: Some(v1::check_task::Kind::Deduction(v1::Deduction {
                                gold_output: s.output.clone(),
                                answer: s.output.clone(),
                            })),
                        });
                    }
                    for _ in 0..8 {
                        checks.push(v1::CheckTask {
                            program: None,
                            kind: Some(v1::check_task::Kind::Abduction(v1::Abduction {
                                gold_output: s.output.clone(),
                                answer: s.input.clone(),
                            })),
                        });
                    }
                    client.check_batch(checks, program(&s), call).await?;
                    Ok::<_, anyhow::Error>(())
                }
            };
            let mut rates = Vec::new();
            for _ in 0..args.rounds {
                let t = Instant::now();
                let mut pending = seeds.iter().map(one_program);
                // Keep a few programs per worker in flight, as a training loop would.
                let in_flight = config.workers() * 4;
                let mut running = Vec::new();
                loop {
                    while running.len() < in_flight {
                        match pending.next() {
                            Some(f) => running.push(Box::pin(f)),
                            None => break,
                        }
                    }
                    if running.is_empty() {
                        break;
                    }
                    let (done, _, rest) = select_first(running).await;
                    done?;
                    running = rest;
                }
                rates.push(seeds.len() as f64 / t.elapsed().as_secs_f64());
            }
            Ok::<_, anyhow::Error>((latencies, median(rates)))
        };
        figures
            .await
            .with_context(|| format!("the daemon's log:\n{}", daemon.log()))
    });
    let (latencies, s_daemon) = result?;
    writeln!(
        out,
        "trivial check over the Unix socket (daemon, seccomp on): p50 {:.3} ms, p99 {:.3} ms   (goals < 1 ms, < 5 ms)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    )?;
    writeln!(
        out,
        "workload S through the daemon (Validate + CheckBatch of 16 per program): {s_daemon:.0} programs/s = {:.2}x in-process",
        s_daemon / in_process_s
    )?;
    Ok(())
}

/// The smallest check there is (a literal answer on the identity program), for latency.
fn trivial_check() -> azr_sandbox_client::v1::CheckTask {
    use azr_sandbox_client::v1;
    v1::CheckTask {
        program: Some(v1::Program {
            source: "def f(x):\n    return x".into(),
            imports: vec![],
            ..Default::default()
        }),
        kind: Some(v1::check_task::Kind::Deduction(v1::Deduction {
            gold_output: "1".into(),
            answer: "1".into(),
        })),
    }
}

/// Waits for the first of `futures` to finish; returns its output, its index and the rest.
async fn select_first<F: std::future::Future + Unpin>(
    mut futures: Vec<F>,
) -> (F::Output, usize, Vec<F>) {
    let (value, index) = std::future::poll_fn(|cx| {
        for (i, future) in futures.iter_mut().enumerate() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready((v, i));
            }
        }
        std::task::Poll::Pending
    })
    .await;
    drop(futures.swap_remove(index));
    (value, index, futures)
}

/// The validation of one seed program, as a batch of one.
fn validation(s: &Seed) -> Vec<Item> {
    vec![Item::Validate {
        program: s.snippet.clone(),
        imports: s.imports.clone(),
        input: s.input.clone(),
    }]
}

/// Minor page faults of this process so far (field 10 of /proc/self/stat).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after_name = s.rsplit_once(')')?.1;
            after_name.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}
