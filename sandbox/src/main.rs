//! `azr-sandbox`: run model-written Python safely.
//!
//! - `eval --jsonl FILE`: AZR seed records in, one JSON answer per line out.
//! - `run`: one program (and optionally one input), for trying things by hand.
//! - `bench`: the sandbox against CPython baselines on the AZR seed programs.
//! - `serve`: the daemon (gRPC `azr.sandbox.v1` on a Unix socket, locked down).
//! - `client`: talk to a running daemon by hand.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, BufWriter, Read, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::{Context, Result, bail};
use azr_sandbox::{
    Item, Sandbox, Verdict,
    config::SandboxConfig,
    eval::{self, Record},
};
use clap::{Parser, Subcommand};

mod bench;
mod client_cli;
mod serve;

#[derive(Parser)]
#[command(
    name = "azr-sandbox",
    version,
    about = "Run model-written Python in a wasm sandbox"
)]
struct Cli {
    /// Configuration file (TOML; see policies/sandbox.toml for every field and default).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Worker threads (overrides the config; default one per core).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Wall-clock limit per item in milliseconds (overrides the config).
    #[arg(long, global = true)]
    timeout_ms: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate `f(input)` for every AZR seed record of a JSONL file (`-` for stdin).
    Eval {
        /// Records `{"snippet", "input", "imports"}` (or induction records with `inputs`).
        #[arg(long)]
        jsonl: PathBuf,
        /// Apply AZR validation (banned imports, determinism re-run) instead of a plain run.
        #[arg(long)]
        validate: bool,
        /// Records per batch handed to a worker.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Write the answers here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Run one program; with --input, print `repr(f(<input>))`.
    Run {
        /// The program's source file (`-` for stdin).
        #[arg(long, conflicts_with = "code")]
        file: Option<PathBuf>,
        /// The program's source text.
        #[arg(long, short)]
        code: Option<String>,
        /// Arguments of `f`, as Python source (e.g. `'abc', 3`).
        #[arg(long, short)]
        input: Option<String>,
        /// Validate as AZR does (rules + determinism) instead of a plain run.
        #[arg(long, requires = "input")]
        validate: bool,
    },
    /// Measure the sandbox against CPython baselines (AZR's workloads unless a subcommand
    /// names another).
    Bench(bench::BenchCommand),
    /// Serve `azr.sandbox.v1` on a Unix socket until SIGTERM (see policies/sandbox.toml).
    Serve {
        /// Socket path to bind (overrides `server.socket`; ignored under socket activation).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Run without the seccomp filters (diagnosis only; overrides `hardening.seccomp`).
        #[arg(long)]
        no_seccomp: bool,
        /// Also serve SandboxFusion's HTTP API (`POST /run_code`, `GET /v1/ping`) on this
        /// address, e.g. 127.0.0.1:8080 (overrides `server.http`). Loopback only unless
        /// --http-allow-remote.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Allow --http on a non-loopback address: anyone who reaches it may run code.
        #[arg(long)]
        http_allow_remote: bool,
    },
    /// Talk to a running daemon.
    Client(client_cli::ClientArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "azr_sandbox=info".into()),
        )
        .with_writer(io::stderr)
        .init();
    if let Err(error) = real_main() {
        // A closed pipe (`azr-sandbox eval ... | head`) is the reader's choice, not a failure.
        let broken_pipe = error.chain().any(|cause| {
            cause
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            std::process::exit(0);
        }
        eprintln!("azr-sandbox: {error:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => SandboxConfig::from_file(path)?,
        None => SandboxConfig::default(),
    };
    if let Some(workers) = cli.workers {
        config.workers = workers;
    }
    if let Some(timeout_ms) = cli.timeout_ms {
        config.limits.timeout_ms = timeout_ms;
    }
    match cli.command {
        Command::Eval {
            jsonl,
            validate,
            batch,
            output,
        } => eval_command(&config, &jsonl, validate, batch.max(1), output.as_deref()),
        Command::Run {
            file,
            code,
            input,
            validate,
        } => run_command(&config, file, code, input, validate),
        Command::Bench(bench::BenchCommand { kind: None, azr }) => bench::run(&config, &azr),
        Command::Bench(bench::BenchCommand {
            kind: Some(bench::BenchKind::TestCases(args)),
            ..
        }) => bench::test_cases::run(&config, &args),
        Command::Bench(bench::BenchCommand {
            kind: Some(bench::BenchKind::FrontEnds(args)),
            ..
        }) => bench::front_ends::run(&config, &args),
        Command::Bench(bench::BenchCommand {
            kind: Some(bench::BenchKind::Compute(args)),
            ..
        }) => bench::compute::run(&config, &args),
        Command::Serve {
            socket,
            no_seccomp,
            http,
            http_allow_remote,
        } => {
            if let Some(socket) = socket {
                config.server.socket = socket;
            }
            if http.is_some() {
                config.server.http = http;
            }
            if http_allow_remote {
                config.server.http_allow_remote = true;
            }
            if no_seccomp {
                config.hardening.seccomp = false;
            }
            serve::run(&config)
        }
        Command::Client(args) => client_cli::run(config.server.socket.clone(), args),
    }
}

fn start(config: &SandboxConfig) -> Result<Sandbox> {
    let started = Instant::now();
    let sandbox = Sandbox::new(&config.pool_config()).context("starting the sandbox")?;
    tracing::debug!(secs = started.elapsed().as_secs_f32(), "sandbox ready");
    Ok(sandbox)
}

fn open_input(path: &std::path::Path) -> Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::new(BufReader::new(file)))
}

/// One line of input, parsed (or the reason it could not be).
type Parsed = Result<Record, String>;

fn eval_command(
    config: &SandboxConfig,
    path: &std::path::Path,
    validate: bool,
    batch: usize,
    output: Option<&std::path::Path>,
) -> Result<()> {
    let input = open_input(path)?;
    let sandbox = start(config)?;
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let workers = config.workers();
    let chunk = batch * workers * 2;
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut lines = input.lines();
    let mut last_progress = Instant::now();
    loop {
        // Read a chunk of lines (each kept, even when it cannot be parsed).
        let mut records: Vec<(Parsed, Option<String>)> = Vec::with_capacity(chunk);
        for line in lines.by_ref().take(chunk) {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            let expected = expected_output(&line);
            let parsed =
                eval::parse_record(&line).map(|r| if validate { to_validation(r) } else { r });
            records.push((parsed, expected));
        }
        if records.is_empty() {
            break;
        }
        let answers = run_records(&sandbox, config, &records, batch);
        for ((parsed, expected), answer) in records.iter().zip(answers) {
            summary.add(parsed.is_ok(), &answer, expected.as_deref());
            serde_json::to_writer(&mut out, &answer)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        if last_progress.elapsed().as_secs_f32() > 1.0 {
            eprintln!(
                "eval: {} records, {:.1} s",
                summary.records,
                started.elapsed().as_secs_f32()
            );
            last_progress = Instant::now();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "eval: {} records in {:.2} s ({:.0}/s): {} ok, {} failed, {} malformed{}",
        summary.records,
        secs,
        summary.records as f64 / secs.max(1e-9),
        summary.ok,
        summary.failed,
        summary.malformed,
        if summary.compared > 0 {
            format!(
                "; {}/{} match the file's `output`",
                summary.matched, summary.compared
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

fn to_validation(record: Record) -> Record {
    let convert = |item: Item| match item {
        Item::Run {
            program,
            imports,
            input: Some(input),
            ..
        } => Item::Validate {
            program,
            imports,
            input,
        },
        other => other,
    };
    match record {
        Record::Single(item) => Record::Single(convert(item)),
        Record::Multi(items) => Record::Multi(items.into_iter().map(convert).collect()),
    }
}

/// The record's own `output` field, to compare against (seed files carry CPython's answer).
fn expected_output(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("output")?.as_str().map(str::to_owned)
}

/// Runs the parsed records in batches spread over the workers; one answer per record.
fn run_records(
    sandbox: &Sandbox,
    config: &SandboxConfig,
    records: &[(Parsed, Option<String>)],
    batch: usize,
) -> Vec<serde_json::Value> {
    let mut answers: Vec<Option<serde_json::Value>> = vec![None; records.len()];
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (chunk_index, chunk) in records.chunks(batch).enumerate() {
            let sandbox = sandbox.clone();
            handles.push(scope.spawn(move || {
                let items: Vec<Item> = chunk
                    .iter()
                    .filter_map(|(p, _)| p.as_ref().ok())
                    .flat_map(|r| r.items().iter().cloned())
                    .collect();
                let outcomes = sandbox.run(items, &config.limits, &config.rules);
                let mut outcomes = outcomes.into_iter();
                let answers: Vec<serde_json::Value> = chunk
                    .iter()
                    .map(|(parsed, _)| match parsed {
                        Ok(record) => {
                            let mine: Vec<_> =
                                outcomes.by_ref().take(record.items().len()).collect();
                            eval::render(record, &mine)
                        }
                        Err(message) => eval::render_error(message),
                    })
                    .collect();
                (chunk_index, answers)
            }));
        }
        for handle in handles {
            if let Ok((chunk_index, chunk_answers)) = handle.join() {
                for (i, answer) in chunk_answers.into_iter().enumerate() {
                    answers[chunk_index * batch + i] = Some(answer);
                }
            }
        }
    });
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| eval::render_error("internal error: no answer")))
        .collect()
}

#[derive(Default)]
struct Summary {
    records: usize,
    ok: usize,
    failed: usize,
    malformed: usize,
    compared: usize,
    matched: usize,
}

impl Summary {
    fn add(&mut self, parsed: bool, answer: &serde_json::Value, expected: Option<&str>) {
        self.records += 1;
        if !parsed {
            self.malformed += 1;
            return;
        }
        if answer["ok"] == true {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        if let Some(expected) = expected {
            self.compared += 1;
            if answer["output"].as_str() == Some(expected) {
                self.matched += 1;
            }
        }
    }
}

fn run_command(
    config: &SandboxConfig,
    file: Option<PathBuf>,
    code: Option<String>,
    input: Option<String>,
    validate: bool,
) -> Result<()> {
    let program = match (file, code) {
        (_, Some(code)) => code,
        (Some(path), None) if path.as_os_str() == "-" => {
            let mut s = String::new();
            io::stdin().read_to_string(&mut s)?;
            s
        }
        (Some(path), None) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => bail!("give the program with --code TEXT or --file PATH"),
    };
    let item = match (input, validate) {
        (Some(input), true) => Item::Validate {
            program,
            imports: vec![],
            input,
        },
        (input, _) => Item::Run {
            program,
            imports: vec![],
            input,
            files: Default::default(),
        },
    };
    let sandbox = start(config)?;
    let outcome = sandbox
        .run(vec![item], &config.limits, &config.rules)
        .pop()
        .context("no outcome")?;
    print!("{}", outcome.stdout);
    if let Some(value) = &outcome.value {
        println!("{value}");
    }
    eprintln!(
        "verdict: {} ({} µs, {} fuel)",
        outcome.verdict, outcome.micros, outcome.fuel_used
    );
    if outcome.verdict != Verdict::Ok {
        if let Some(line) = outcome.error_line() {
            eprintln!("{line}");
        }
        std::process::exit(2);
    }
    Ok(())
}
