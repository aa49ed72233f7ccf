//! The trainer's side of the sandbox: a connection to a running daemon, or a daemon of its
//! own, and the translation between the AZR logic's items and `azr.sandbox.v1` batches.
//!
//! The trainer never evaluates model-written text itself: every validation and every check is
//! a batch RPC. A failed call never stops training: when the daemon dies or stops answering,
//! an embedded daemon is restarted and the call's tasks count as failed (invalid proposals,
//! wrong answers), which is what the reference's executor does with a crashed worker.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use azr_sandbox_client::{BlockingClient, CallOptions, ClientError, RetryPolicy, v1};
use serde::Serialize;

use azr::check::{CheckKind, CheckResult, Checker, TaskCheck, ValidateTask, Validation};
use azr::config::ValidationConfig;

/// Where the daemon is.
#[derive(Debug, Clone)]
pub enum SandboxSpec {
    /// A daemon someone else runs (e.g. the systemd service), at this socket.
    External(PathBuf),
    /// Start `binary serve` on a private socket, owned by this process.
    Embedded { binary: PathBuf, workers: usize },
}

impl SandboxSpec {
    /// Parses `unix:PATH` (or a bare path).
    pub fn parse_socket(text: &str) -> Result<SandboxSpec, SandboxError> {
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if path.is_empty() {
            return Err(SandboxError::Spec(format!(
                "`{text}`: expected unix:/path/to/socket"
            )));
        }
        Ok(SandboxSpec::External(PathBuf::from(path)))
    }

    /// The `azr-sandbox` binary for an embedded daemon: `explicit`, else `$AZR_SANDBOX_BIN`,
    /// else next to the running executable, else on `$PATH`.
    pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, SandboxError> {
        if let Some(p) = explicit {
            return Ok(p.to_owned());
        }
        if let Some(p) = std::env::var_os("AZR_SANDBOX_BIN") {
            return Ok(PathBuf::from(p));
        }
        let mut candidates = Vec::new();
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
        {
            candidates.push(dir.join("azr-sandbox"));
            // Test executables live one level down, in `deps/`.
            if let Some(up) = dir.parent() {
                candidates.push(up.join("azr-sandbox"));
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join("azr-sandbox")));
        }
        candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
            SandboxError::Spec(
                "no azr-sandbox binary next to this one or on PATH: build it \
                 (cargo build --release -p azr-sandbox), or pass --sandbox-bin or \
                 --sandbox unix:PATH"
                    .into(),
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox: {0}")]
    Spec(String),
    #[error("starting the embedded sandbox daemon: {0}")]
    Start(String),
    #[error("sandbox daemon at {path}: {source}")]
    Client { path: PathBuf, source: ClientError },
}

/// Counters of the sandbox traffic, for the metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SandboxStats {
    pub calls: u64,
    pub items: u64,
    pub seconds: f64,
    /// Items that got no answer (daemon dead, hung or refusing); counted as failed.
    pub failed_items: u64,
    pub restarts: u64,
}

/// A daemon process this trainer started; killed (SIGTERM, then SIGKILL) when dropped.
struct EmbeddedDaemon {
    child: Child,
    dir: PathBuf,
}

impl EmbeddedDaemon {
    fn start(
        binary: &Path,
        workers: usize,
        dir: &Path,
        socket: &Path,
    ) -> Result<Self, SandboxError> {
        let config = dir.join("sandbox.toml");
        std::fs::write(&config, format!("workers = {workers}\n"))
            .map_err(|e| SandboxError::Start(format!("{}: {e}", config.display())))?;
        let log_path = dir.join("daemon.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| SandboxError::Start(format!("{}: {e}", log_path.display())))?;
        let _ = std::fs::remove_file(socket);
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Libraries preloaded into the trainer (e.g. libtorch_cuda on a GPU machine) have
            // no business in the sandbox process: it must run only its own code.
            .env_remove("LD_PRELOAD")
            .env_remove("LD_LIBRARY_PATH")
            // Its own process group: a Ctrl-C meant for the trainer must not stop the daemon
            // in the middle of the step the trainer is about to checkpoint.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent.
        unsafe {
            command.pre_exec(|| {
                // Dies with the trainer even when the trainer is killed without clean-up.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| SandboxError::Start(format!("{}: {e}", binary.display())))?;
        Ok(EmbeddedDaemon {
            child,
            dir: dir.to_owned(),
        })
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join(" | ")
    }

    fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EmbeddedDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The trainer's connection to the sandbox, implementing [`Checker`].
pub struct Sandbox {
    spec: SandboxSpec,
    socket: PathBuf,
    client: BlockingClient,
    daemon: Option<EmbeddedDaemon>,
    /// Private directory of an embedded daemon (socket, config, log); removed on drop.
    private_dir: Option<PathBuf>,
    workers: usize,
    validation: ValidationConfig,
    pub stats: SandboxStats,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.daemon = None;
        if let Some(dir) = &self.private_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How long an embedded daemon may take to answer its first health check (the first start on
/// a machine compiles the guest snapshot into the cache).
const START_TIMEOUT: Duration = Duration::from_secs(600);

impl Sandbox {
    /// Connects (starting an embedded daemon if asked) and waits until the daemon answers.
    pub fn connect(spec: SandboxSpec, validation: ValidationConfig) -> Result<Self, SandboxError> {
        let (socket, private_dir) = match &spec {
            SandboxSpec::External(path) => (path.clone(), None),
            SandboxSpec::Embedded { .. } => {
                let base = std::env::var_os("XDG_RUNTIME_DIR")
                    .map(PathBuf::from)
                    .filter(|p| p.is_dir())
                    .unwrap_or_else(std::env::temp_dir);
                // One directory per connection, not per process: two sandboxes in one
                // process (tests, an eval beside a run) must not share, or replace, a socket.
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let dir = base.join(format!("azr-trainer-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| SandboxError::Start(format!("{}: {e}", dir.display())))?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
                (dir.join("sandbox.sock"), Some(dir))
            }
        };
        let client = BlockingClient::connect([&socket])
            .map_err(|source| SandboxError::Client {
                path: socket.clone(),
                source,
            })?
            .with_retry(RetryPolicy {
                attempts: 4,
                backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
            });
        let mut sandbox = Sandbox {
            spec,
            socket,
            client,
            daemon: None,
            private_dir,
            workers: 1,
            validation,
            stats: SandboxStats::default(),
        };
        sandbox.start_daemon()?;
        Ok(sandbox)
    }

    /// The embedded daemon's process id (`None` for an external daemon).
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|d| d.child.id())
    }

    /// Human-readable description for logs.
    pub fn describe(&self) -> String {
        match &self.spec {
            SandboxSpec::External(p) => format!("daemon at unix:{}", p.display()),
            SandboxSpec::Embedded { .. } => format!(
                "embedded daemon at unix:{} ({} workers)",
                self.socket.display(),
                self.workers
            ),
        }
    }

    /// Starts the embedded daemon (if any) and waits for a healthy answer.
    fn start_daemon(&mut self) -> Result<(), SandboxError> {
        let started = Instant::now();
        if let SandboxSpec::Embedded { binary, workers } = &self.spec {
            self.daemon = None;
            let dir = self
                .private_dir
                .clone()
                .ok_or_else(|| SandboxError::Start("no private directory".into()))?;
            self.daemon = Some(EmbeddedDaemon::start(binary, *workers, &dir, &self.socket)?);
        }
        loop {
            let health = self.client.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), self.client.client().health()).await
            });
            match health {
                Ok(Ok(h)) if h.status == "serving" => {
                    self.workers = h.workers.max(1) as usize;
                    tracing::debug!(secs = started.elapsed().as_secs_f32(), "sandbox ready");
                    return Ok(());
                }
                Ok(Err(e)) if self.daemon.is_none() => {
                    return Err(SandboxError::Client {
                        path: self.socket.clone(),
                        source: e,
                    });
                }
                _ => {}
            }
            if let Some(d) = self.daemon.as_mut()
                && let Some(status) = d.exited()
            {
                return Err(SandboxError::Start(format!(
                    "the daemon exited ({status}): {}",
                    d.log_tail()
                )));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(SandboxError::Start(format!(
                    "no answer on {} after {} s",
                    self.socket.display(),
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// After a failed call: restart an embedded daemon that died or no longer answers.
    fn recover(&mut self, error: &ClientError) {
        let healthy = matches!(
            self.client.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), self.client.client().health()).await
            }),
            Ok(Ok(_))
        );
        let dead = self.daemon.as_mut().is_some_and(|d| d.exited().is_some());
        if self.daemon.is_some() && (dead || !healthy) {
            // A daemon that died names the programs it was running in its log: keep that
            // before the restart starts a new log.
            let said = self.daemon.as_ref().map(EmbeddedDaemon::log_tail);
            tracing::warn!(
                %error,
                dead,
                daemon_log = said.as_deref().unwrap_or(""),
                "sandbox daemon lost; restarting it"
            );
            self.stats.restarts += 1;
            if let Err(e) = self.start_daemon() {
                tracing::error!(error = %e, "restarting the sandbox daemon failed; will retry on the next call");
            }
        } else {
            tracing::warn!(%error, healthy, "sandbox call failed; its tasks count as failed");
        }
    }

    fn options(&self, check_banned: bool) -> v1::Options {
        let v = &self.validation;
        v1::Options {
            limits: Some(v1::Limits {
                timeout_ms: Some((v.timeout_s * 1000.0).ceil().max(1.0) as u64),
                ..Default::default()
            }),
            rules: Some(if check_banned {
                v1::Rules {
                    banned_words: v.banned_words.clone(),
                    banned_keywords: v.banned_keywords.clone(),
                    require_f: Some(true),
                }
            } else {
                v1::Rules {
                    banned_words: vec![],
                    banned_keywords: vec![],
                    require_f: Some(true),
                }
            }),
        }
    }

    /// A deadline for a batch of `n` items: every item may take the whole per-item limit, the
    /// workers share them, plus slack for the transfer and the queue.
    fn deadline(&self, n: usize) -> Duration {
        let per_item = self.validation.timeout_s.max(0.001);
        let rounds = n.div_ceil(self.workers.max(1)) as f64;
        Duration::from_secs_f64(per_item * 2.0 * rounds + 30.0)
    }

    /// Runs one batch call; `None` for every item when it failed (after recovery).
    fn call(
        &mut self,
        n: usize,
        check_banned: bool,
        send: impl FnOnce(&BlockingClient, &CallOptions) -> Result<Vec<v1::Outcome>, ClientError>,
    ) -> Vec<Option<v1::Outcome>> {
        if n == 0 {
            return vec![];
        }
        let call = CallOptions {
            options: Some(self.options(check_banned)),
            timeout: Some(self.deadline(n)),
            stop_on_failure: false,
        };
        let started = Instant::now();
        let result = send(&self.client, &call);
        self.stats.calls += 1;
        self.stats.items += n as u64;
        self.stats.seconds += started.elapsed().as_secs_f64();
        let error = match result {
            Ok(outcomes) if outcomes.len() == n => return outcomes.into_iter().map(Some).collect(),
            Ok(outcomes) => ClientError::Mismatch {
                sent: n,
                got: outcomes.len(),
            },
            Err(e) => e,
        };
        self.recover(&error);
        self.stats.failed_items += n as u64;
        vec![None; n]
    }
}

impl Sandbox {
    /// Runs each `(program, test)` pair as an assert-style test case (the sandbox's
    /// test-case operation: the test code runs after the program, in its namespace, and the
    /// case passes when it ends without an exception). For benchmarks that come with tests,
    /// such as HumanEval; self-play answers go through [`Checker::check`].
    pub fn run_asserts(&mut self, cases: &[(String, String)]) -> Vec<CheckResult> {
        let tasks: Vec<v1::TestTask> = cases
            .iter()
            .map(|(source, test)| v1::TestTask {
                program: program(source, &[]),
                kind: Some(v1::test_task::Kind::Asserts(v1::AssertCase {
                    test: test.clone(),
                })),
            })
            .collect();
        let outcomes = self.call(tasks.len(), false, |c, call| {
            c.test_batch(tasks, None, call)
        });
        outcomes.into_iter().map(check_result).collect()
    }
}

/// A check's result from the sandbox's outcome (`None`: the sandbox did not answer).
fn check_result(outcome: Option<v1::Outcome>) -> CheckResult {
    match outcome {
        Some(o) => CheckResult {
            passed: is_ok(&o) && o.passed == Some(true),
            verdict: verdict_name(&o),
            refused_answer: o.error_type.as_deref() == Some(ANSWER_USES_PROGRAM),
        },
        None => CheckResult {
            passed: false,
            verdict: "sandbox_unavailable".into(),
            refused_answer: false,
        },
    }
}

/// The error type of an answer the sandbox refused because it needs the program's
/// definitions (it calls `f`, say): such an answer may not run the program it predicts.
pub const ANSWER_USES_PROGRAM: &str = "AnswerUsesProgram";

fn program(source: &str, imports: &[String]) -> Option<v1::Program> {
    Some(v1::Program {
        source: source.to_owned(),
        imports: imports.to_vec(),
        ..Default::default()
    })
}

/// A short name of a verdict, for metrics and logs (`ok`, `error`, `timeout`, ...).
pub fn verdict_name(outcome: &v1::Outcome) -> String {
    v1::Verdict::try_from(outcome.verdict)
        .map(|v| {
            v.as_str_name()
                .trim_start_matches("VERDICT_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("verdict_{}", outcome.verdict))
}

fn is_ok(outcome: &v1::Outcome) -> bool {
    outcome.verdict == v1::Verdict::Ok as i32
}

impl Checker for Sandbox {
    type Error = std::convert::Infallible;

    /// Items with and without the banned-import rules go in separate requests (rules are per
    /// request); answers come back in the items' order.
    fn validate(&mut self, items: &[ValidateTask]) -> Result<Vec<Validation>, Self::Error> {
        let mut out: Vec<Option<Validation>> = vec![None; items.len()];
        for banned in [true, false] {
            let idx: Vec<usize> = (0..items.len())
                .filter(|&i| items[i].check_banned == banned)
                .collect();
            let tasks: Vec<v1::ValidateTask> = idx
                .iter()
                .map(|&i| v1::ValidateTask {
                    program: program(&items[i].program, &items[i].imports),
                    input: items[i].input.clone(),
                })
                .collect();
            let outcomes = self.call(tasks.len(), banned, |c, call| {
                c.validate_batch(tasks, None, call)
            });
            for (&i, outcome) in idx.iter().zip(outcomes) {
                out[i] = Some(match outcome {
                    Some(o) if is_ok(&o) && o.value.is_some() => Validation {
                        ok: true,
                        output: o.value,
                        error: None,
                    },
                    Some(o) => Validation {
                        ok: false,
                        output: None,
                        error: Some(format!(
                            "{}: {} {}",
                            verdict_name(&o),
                            o.error_type.unwrap_or_default(),
                            o.error_message.unwrap_or_default()
                        )),
                    },
                    None => Validation {
                        ok: false,
                        output: None,
                        error: Some("sandbox unavailable".into()),
                    },
                });
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn check(&mut self, items: &[TaskCheck]) -> Result<Vec<CheckResult>, Self::Error> {
        let tasks: Vec<v1::CheckTask> = items
            .iter()
            .map(|t| v1::CheckTask {
                program: program(&t.program, &t.imports),
                kind: Some(match &t.kind {
                    CheckKind::Deduction { gold, answer } => {
                        v1::check_task::Kind::Deduction(v1::Deduction {
                            gold_output: gold.clone(),
                            answer: answer.clone(),
                        })
                    }
                    CheckKind::Abduction { gold, answer } => {
                        v1::check_task::Kind::Abduction(v1::Abduction {
                            gold_output: gold.clone(),
                            answer: answer.clone(),
                        })
                    }
                    CheckKind::Induction { inputs, outputs } => {
                        v1::check_task::Kind::Induction(v1::Induction {
                            inputs: inputs.clone(),
                            outputs: outputs.clone(),
                        })
                    }
                }),
            })
            .collect();
        // Solver answers are checked without the proposer's import rules: a solver program
        // is judged by what it computes (the reference checks banned words on proposals only).
        let outcomes = self.call(tasks.len(), false, |c, call| {
            c.check_batch(tasks, None, call)
        });
        Ok(outcomes.into_iter().map(check_result).collect())
    }
}
