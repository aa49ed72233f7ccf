//! `azr-sandbox bench test-cases`: scoring completions against test cases, the common
//! code-RL reward, through the daemon against a subprocess-per-test executor.
//!
//! Work: HumanEval's 164 problems × 8 completions (the canonical solution and 7 wrong
//! variants), each problem's `check` split into one assert case per assertion
//! (`scripts/humaneval-cases.sh`). Paths, measured in one run and interleaved round by round:
//! - gRPC: one `TestBatch` per completion (its assert cases against its program);
//! - HTTP: one SandboxFusion `POST /run_code` per completion (program + `check` + the call
//!   to it, the way veRL's SandboxFusion client sends a HumanEval-style problem);
//! - Python (with `--reward-python`): one `azr_sandbox.verl.compute_score` call per
//!   completion, the package's veRL reward function, on one asyncio loop;
//! - baseline: every case in its own `python3` process (program, then the case), the way
//!   subprocess-based executors run tests, on every `--baseline-stride`-th completion.
//!
//! Each path runs with the same concurrency (`--in-flight`, default 4 per worker; the
//! baseline runs one process per worker at a time, which is what keeps the cores busy).
//! Figures: completions/s (median over rounds), p50/p99 time per completion (over all
//! rounds), and the verdicts: canonical solutions must pass and variants fail.

use std::{
    io::Write,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use azr_sandbox::config::SandboxConfig;
use azr_sandbox_client::{CallOptions, Client, v1};
use serde::Deserialize;

use super::{daemon::DaemonChild, median, percentile};

const CASES_SCRIPT: &str = include_str!("../../bench/humaneval_cases.py");
const REWARD_SCRIPT: &str = include_str!("../../bench/reward_bench.py");

#[derive(clap::Args)]
pub struct TestCasesArgs {
    /// The completions and their cases (JSONL), as `scripts/humaneval-cases.sh` prints.
    #[arg(long)]
    cases: PathBuf,
    /// Rounds per path; completions/s are medians over rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Completions in flight at once on the gRPC and HTTP paths (default: 4 per worker).
    #[arg(long)]
    in_flight: Option<usize>,
    /// The CPython of the baseline.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The baseline runs every Nth completion (its rate is per completion, so a sample
    /// that spans problems and variants measures it; all of them take minutes per round).
    #[arg(long, default_value_t = 3)]
    baseline_stride: usize,
    /// Skip the subprocess baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Also score every completion through the Python package's veRL reward function
    /// (`azr_sandbox.verl.compute_score`) with this Python, which must have the package
    /// installed (`scripts/package-venv.sh` prints one).
    #[arg(long, value_name = "PYTHON")]
    reward_python: Option<PathBuf>,
    /// Stop each completion's batch at its first failing case (the baseline does too).
    #[arg(long)]
    stop_on_failure: bool,
}

#[derive(Deserialize, Clone)]
struct Completion {
    task_id: String,
    entry_point: String,
    variant: String,
    program: String,
    test: String,
    cases: Vec<String>,
}

impl Completion {
    fn canonical(&self) -> bool {
        self.variant == "canonical"
    }

    /// The whole test as one program, as sent to `/run_code`.
    fn script(&self) -> String {
        format!(
            "{}\n\n{}\n\ncheck({})\n",
            self.program, self.test, self.entry_point
        )
    }
}

/// One path's round: completions/s, each completion's time, and the completions judged
/// wrongly (a canonical solution failed or a variant passed).
struct Round {
    rate: f64,
    latencies: Vec<Duration>,
    wrong: Vec<String>,
}

fn load(path: &PathBuf) -> Result<Vec<Completion>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a completion", path.display(), n + 1))
        })
        .collect()
}

pub fn run(config: &SandboxConfig, args: &TestCasesArgs) -> Result<()> {
    let completions = Arc::new(load(&args.cases)?);
    if completions.is_empty() {
        bail!("{}: no completions", args.cases.display());
    }
    let workers = config.workers();
    let in_flight = args.in_flight.unwrap_or(workers * 4).max(1);
    let cases: usize = completions.iter().map(|c| c.cases.len()).sum();
    eprintln!(
        "bench test-cases: {} completions ({} cases) from {}, {workers} workers, {in_flight} in flight, {} rounds",
        completions.len(),
        cases,
        args.cases.display(),
        args.rounds
    );
    // The port is bound, read and released; the daemon binds it next.
    let http: SocketAddr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let daemon = runtime.block_on(DaemonChild::start(config, Some(http)))?;
    // The client's channels are made lazily on the runtime.
    let _entered = runtime.enter();
    let client = Arc::new(Client::connect([&daemon.socket])?);
    let script = std::env::temp_dir().join(format!("azr-bench-cases-{}.py", std::process::id()));
    std::fs::write(&script, CASES_SCRIPT)?;

    let reward_script =
        std::env::temp_dir().join(format!("azr-bench-reward-{}.py", std::process::id()));
    std::fs::write(&reward_script, REWARD_SCRIPT)?;
    let (mut grpc, mut http_rounds, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    let mut python = Vec::new();
    // A warm-up pass (page cache, the pool's instances), not counted.
    runtime
        .block_on(grpc_round(&client, &completions, in_flight, args))
        .with_context(|| format!("the daemon's log:\n{}", daemon.log()))?;
    for round in 0..args.rounds {
        eprintln!("bench test-cases: round {}/{}", round + 1, args.rounds);
        grpc.push(
            runtime
                .block_on(grpc_round(&client, &completions, in_flight, args))
                .with_context(|| format!("the daemon's log:\n{}", daemon.log()))?,
        );
        http_rounds.push(
            runtime
                .block_on(http_round(http, &completions, in_flight))
                .with_context(|| format!("the daemon's log:\n{}", daemon.log()))?,
        );
        if let Some(reward_python) = &args.reward_python {
            let mut command = Command::new(reward_python);
            command
                .arg(&reward_script)
                .arg(&daemon.socket)
                .arg(std::path::absolute(&args.cases)?)
                .arg(in_flight.to_string());
            python.push(
                python_round(command, "the Python reward function")
                    .with_context(|| format!("the daemon's log:\n{}", daemon.log()))?,
            );
        }
        if !args.no_baseline {
            baseline.push(baseline_round(args, &script, workers)?);
        }
    }
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&reward_script);
    drop(daemon);

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "HumanEval test cases: {} completions ({} canonical, {} wrong variants), {cases} assert cases",
        completions.len(),
        completions.iter().filter(|c| c.canonical()).count(),
        completions.iter().filter(|c| !c.canonical()).count()
    )?;
    let base_rate =
        (!baseline.is_empty()).then(|| median(baseline.iter().map(|r| r.rate).collect()));
    let mut line = |name: &str, rounds: &[Round]| -> Result<()> {
        if rounds.is_empty() {
            return Ok(());
        }
        let rate = median(rounds.iter().map(|r| r.rate).collect());
        let mut latencies: Vec<Duration> = rounds
            .iter()
            .flat_map(|r| r.latencies.iter().copied())
            .collect();
        latencies.sort();
        let wrong: Vec<&String> = rounds.iter().flat_map(|r| &r.wrong).collect();
        let ratio = base_rate
            .map(|b| format!("   {:.1}x the baseline", rate / b))
            .unwrap_or_default();
        writeln!(
            out,
            "  {name:<44} {rate:>8.1} completions/s   p50 {:>8.2} ms   p99 {:>8.2} ms   wrong verdicts {}{ratio}",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            wrong.len(),
        )?;
        for w in wrong.iter().take(10) {
            writeln!(out, "      wrong: {w}")?;
        }
        Ok(())
    };
    line("gRPC, one TestBatch per completion", &grpc)?;
    line("HTTP /run_code, one call per completion", &http_rounds)?;
    line("Python: azr_sandbox.verl.compute_score", &python)?;
    line("baseline: python3 process per case", &baseline)?;
    if base_rate.is_some() {
        writeln!(out, "  (goal: gRPC >= 20x the baseline)")?;
    }
    Ok(())
}

/// Drives `job` through `in_flight` concurrent tasks; a job gets its task's number and the
/// completion's index, and returns whether the completion was judged rightly. Returns the
/// round's figures.
async fn drive<F, Fut>(
    completions: &Arc<Vec<Completion>>,
    in_flight: usize,
    job: F,
) -> Result<Round>
where
    F: Fn(usize, Arc<Vec<Completion>>, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<bool>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..in_flight {
        let (next, completions, job) = (next.clone(), completions.clone(), job.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut wrong = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = completions.get(i) else { break };
                let t = Instant::now();
                let right = job(worker, completions.clone(), i).await?;
                latencies.push(t.elapsed());
                if !right {
                    wrong.push(format!("{} ({})", c.task_id, c.variant));
                }
            }
            Ok::<_, anyhow::Error>((latencies, wrong))
        });
    }
    let mut round = Round {
        rate: 0.0,
        latencies: Vec::new(),
        wrong: Vec::new(),
    };
    for result in tasks.join_all().await {
        let (latencies, wrong) = result?;
        round.latencies.extend(latencies);
        round.wrong.extend(wrong);
    }
    round.rate = completions.len() as f64 / started.elapsed().as_secs_f64();
    Ok(round)
}

async fn grpc_round(
    client: &Arc<Client>,
    completions: &Arc<Vec<Completion>>,
    in_flight: usize,
    args: &TestCasesArgs,
) -> Result<Round> {
    let client = client.clone();
    let call = CallOptions {
        stop_on_failure: args.stop_on_failure,
        ..CallOptions::default()
    };
    drive(completions, in_flight, move |_, completions, i| {
        let (client, call) = (client.clone(), call.clone());
        async move {
            let c = &completions[i];
            let tasks = c
                .cases
                .iter()
                .map(|case| v1::TestTask {
                    program: None,
                    kind: Some(v1::test_task::Kind::Asserts(v1::AssertCase {
                        test: case.clone(),
                    })),
                })
                .collect();
            let program = v1::Program {
                source: c.program.clone(),
                imports: vec![],
                ..Default::default()
            };
            let outcomes = client.test_batch(tasks, Some(program), &call).await?;
            let passed = outcomes.iter().all(|o| o.passed == Some(true));
            Ok(passed == c.canonical())
        }
    })
    .await
}

async fn http_round(
    addr: SocketAddr,
    completions: &Arc<Vec<Completion>>,
    in_flight: usize,
) -> Result<Round> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    // One keep-alive connection per task in flight, opened on its first request.
    let connections: Arc<Vec<tokio::sync::Mutex<Option<HttpConnection>>>> = Arc::new(
        (0..in_flight)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect(),
    );
    drive(completions, in_flight, move |worker, completions, i| {
        let connections = connections.clone();
        async move {
            let c = &completions[i];
            let mut slot = connections[worker].lock().await;
            if slot.as_ref().is_none_or(|s| s.is_closed()) {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await?;
                tokio::spawn(connection);
                *slot = Some(sender);
            }
            let Some(sender) = slot.as_mut() else {
                bail!("no connection");
            };
            let body = serde_json::json!({
                "code": c.script(),
                "language": "python",
                "run_timeout": 10,
            })
            .to_string();
            let request = http::Request::post("/run_code")
                .header(http::header::HOST, addr.to_string())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                bail!(
                    "/run_code answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            let passed = v["status"] == "Success" && v["run_result"]["return_code"] == 0;
            Ok(passed == c.canonical())
        }
    })
    .await
}

type HttpConnection =
    hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>;

#[derive(Deserialize)]
struct PythonFigures {
    completions: usize,
    seconds: f64,
    latencies: Vec<f64>,
    passed: Vec<bool>,
    canonical: Vec<bool>,
    task_ids: Vec<String>,
}

fn baseline_round(args: &TestCasesArgs, script: &std::path::Path, workers: usize) -> Result<Round> {
    let cases = std::path::absolute(&args.cases)?;
    let mut command = Command::new(&args.python);
    command
        .arg(script)
        .arg("baseline")
        .arg(&cases)
        .arg(workers.to_string())
        .arg(args.baseline_stride.max(1).to_string());
    if args.stop_on_failure {
        command.arg("--stop-on-failure");
    }
    python_round(command, "the baseline")
}

/// Runs a Python side of the benchmark and reads its round from the last line it prints.
fn python_round(mut command: Command, what: &str) -> Result<Round> {
    let output = command
        .output()
        .with_context(|| format!("running {what} ({command:?})"))?;
    if !output.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: PythonFigures = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("reading the figures of {what}"))?;
    let wrong = result
        .passed
        .iter()
        .zip(&result.canonical)
        .zip(&result.task_ids)
        .filter(|((p, c), _)| p != c)
        .map(|(_, id)| id.clone())
        .collect();
    Ok(Round {
        rate: result.completions as f64 / result.seconds,
        latencies: result
            .latencies
            .iter()
            .map(|&s| Duration::from_secs_f64(s))
            .collect(),
        wrong,
    })
}
