//! A real daemon process for the tests: started from the built binary on a socket in a
//! private temporary directory, killed when the test ends.

use std::{
    collections::BTreeSet,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use azr_sandbox_client::Client;

const BIN: &str = env!("CARGO_BIN_EXE_azr-sandbox");

pub struct Daemon {
    child: Child,
    /// The daemon's pid (differs from `child` when it runs under strace).
    pid: u32,
    pub socket: PathBuf,
    dir: PathBuf,
    stderr_path: PathBuf,
    runtime: tokio::runtime::Runtime,
}

fn temp_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("azr-daemon-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let mut text = String::new();
    if !extra.contains("workers") {
        text.push_str("workers = 2\n");
    }
    text.push_str(extra);
    let path = dir.join("sandbox.toml");
    std::fs::write(&path, text).expect("config");
    path
}

impl Daemon {
    /// `extra`: TOML added to the config (top-level keys first, then tables).
    pub fn start(extra: &str) -> Daemon {
        let dir = temp_dir();
        let config = write_config(&dir, extra);
        let socket = dir.join("sandbox.sock");
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--socket")
            .arg(&socket);
        Self::spawn(command, dir, socket, None)
    }

    /// Started the way systemd does it: the socket bound by someone else and passed as
    /// fd 3 with `LISTEN_FDS=1` and `LISTEN_PID` naming the daemon.
    pub fn start_activated(extra: &str) -> Daemon {
        let dir = temp_dir();
        let config = write_config(&dir, extra);
        let socket = dir.join("activated.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let fd = listener.as_raw_fd();
        let mut command = Command::new("sh");
        // `exec` keeps the shell's pid, so `$$` is the daemon's pid.
        command
            .arg("-c")
            .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
            .arg(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve");
        // SAFETY: dup2 is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // dup2 onto itself keeps close-on-exec set: clear it explicitly.
                if (fd != 3 && libc::dup2(fd, 3) < 0) || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let daemon = Self::spawn(command, dir, socket, None);
        drop(listener);
        daemon
    }

    /// Runs under `strace -f`, writing the trace to `trace`.
    pub fn start_traced(strace: &Path, trace: &Path, extra: &str) -> Daemon {
        let dir = temp_dir();
        let config = write_config(&dir, extra);
        let socket = dir.join("sandbox.sock");
        let mut command = Command::new(strace);
        command
            .args(["-f", "-qq", "-o"])
            .arg(trace)
            .arg(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--socket")
            .arg(&socket);
        Self::spawn(command, dir, socket, Some(()))
    }

    fn spawn(mut command: Command, dir: PathBuf, socket: PathBuf, traced: Option<()>) -> Daemon {
        let stderr_path = dir.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the daemon starts");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut daemon = Daemon {
            pid: child.id(),
            child,
            socket,
            dir,
            stderr_path,
            runtime,
        };
        daemon.wait_until_serving();
        if traced.is_some() {
            daemon.pid = only_child(daemon.child.id()).expect("strace's child");
        }
        daemon
    }

    fn wait_until_serving(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the daemon exited at start-up ({status}):\n{}",
                    self.stderr()
                );
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                let client = self.client();
                let health = self.runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(2), client.health()).await
                });
                match health {
                    Ok(Ok(_)) => return,
                    // Serving, just not to this test's uid.
                    Ok(Err(e)) if e.code() == Some(tonic::Code::PermissionDenied) => return,
                    _ => {}
                }
            }
            // The first start of a test run may build the snapshot cache (about a minute).
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the daemon did not start serving:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn client(&self) -> Client {
        let _guard = self.runtime.enter();
        Client::connect([&self.socket]).expect("client")
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn terminate(&self) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (at most a minute) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("the daemon did not exit:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Makes the running daemon itself call `socket(AF_INET, SOCK_STREAM, 0)` through gdb, a
    /// call its seccomp policy forbids; returns gdb's output.
    pub fn call_forbidden_socket(&self) -> String {
        let Some(gdb) = which("gdb") else {
            panic!("gdb is needed for this test (scripts/apt-deps.sh daemon installs it)");
        };
        let out = Command::new(gdb)
            .args(["-p", &self.pid.to_string(), "-batch", "-nx"])
            .args(["-ex", "call (int) socket(2, 1, 0)"])
            .output()
            .expect("gdb runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own child (or strace's child).
            unsafe {
                libc::kill(self.pid as i32, libc::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The single child of `pid` (strace's tracee), once it exists.
fn only_child(pid: u32) -> Option<u32> {
    for _ in 0..200 {
        let path = format!("/proc/{pid}/task/{pid}/children");
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(child) = text.split_whitespace().next().and_then(|c| c.parse().ok())
        {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// A number field of `/proc/<pid>/status` (`VmRSS:` in KiB, `Threads:`, ...).
fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/azr-seeds")
}

/// (source with its imports, input) of the 256 deduction seed programs.
pub fn seed_programs() -> Vec<(String, String)> {
    let path = seeds_dir().join("7b_seed_io.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the checkout ships it under data/azr-seeds)",
            path.display()
        )
    });
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            let snippet = v["snippet"].as_str()?;
            let input = v["input"].as_str()?;
            let imports: Vec<&str> = v["imports"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i.as_str()).collect())
                .unwrap_or_default();
            let mut source = imports.join("\n");
            if !source.is_empty() {
                source.push('\n');
            }
            source.push_str(snippet);
            Some((source, input.to_owned()))
        })
        .collect()
}

/// The hostile programs of the engine's containment tests.
pub fn hostile_programs() -> Vec<String> {
    [
        "while True:\n    pass",
        "x = bytearray(8 * 1024 ** 3)",
        "a = []\nwhile True:\n    a.append([0] * 100000)",
        "s = 'x'\nwhile True:\n    s = s + s",
        "def f(n):\n    return f(n + 1)\nf(0)",
        "import sys\nsys.setrecursionlimit(10 ** 6)\ndef f(n):\n    return f(n + 1)\nf(0)",
        "open('/etc/passwd').read()",
        "import os\nos.listdir('/etc')",
        "import os\nos.system('id')",
        "import socket\nsocket.socket().connect(('127.0.0.1', 22))",
        "[c for c in ().__class__.__base__.__subclasses__()]",
        "x = 10 ** 10 ** 10",
        "import re\nre.match('(a+)+$', 'a' * 40 + 'b')",
        "while True:\n    print('x' * 1000)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Names of the system calls in an `strace -f` log after the process-wide filter went in.
pub fn syscalls_after_lockdown(trace: &str) -> BTreeSet<String> {
    let mut locked = false;
    let mut names = BTreeSet::new();
    for line in trace.lines() {
        let Some((_, rest)) = line.trim_start().split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        if !locked {
            locked = rest.starts_with("seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC");
            continue;
        }
        if rest.starts_with("<...") || rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        if let Some((name, _)) = rest.split_once('(')
            && !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            names.insert(name.to_owned());
        }
    }
    names
}

/// The system calls a role of `policies/seccomp/x86_64.json` allows.
pub fn policy_syscalls(role: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/seccomp/x86_64.json");
    let text = std::fs::read_to_string(&path).expect("policy file");
    let policy: serde_json::Value = serde_json::from_str(&text).expect("policy is JSON");
    policy[role]["filter"]
        .as_array()
        .expect("filter list")
        .iter()
        .filter_map(|r| r["syscall"].as_str().map(str::to_owned))
        .collect()
}

/// One program of `tests/data/verdicts.toml`: it must end in `verdict` under its limits.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictCase {
    pub name: String,
    pub verdict: String,
    pub op: String,
    pub source: String,
    pub input: Option<String>,
    pub fuel: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub stdout_chars: Option<u64>,
}

/// The programs of every verdict kind, in the file's order.
pub fn verdict_cases() -> Vec<VerdictCase> {
    #[derive(serde::Deserialize)]
    struct File {
        case: Vec<VerdictCase>,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/verdicts.toml");
    let text = std::fs::read_to_string(&path).expect("tests/data/verdicts.toml");
    let file: File = toml::from_str(&text).expect("verdicts.toml parses");
    file.case
}

impl VerdictCase {
    /// The case's limits as a request's options.
    pub fn options(&self) -> azr_sandbox_client::v1::Options {
        azr_sandbox_client::v1::Options {
            limits: Some(azr_sandbox_client::v1::Limits {
                fuel: self.fuel,
                timeout_ms: self.timeout_ms,
                memory_bytes: self.memory_bytes,
                stdout_chars: self.stdout_chars,
                ..Default::default()
            }),
            rules: None,
        }
    }

    /// Sends the case to the daemon as the single RPC its `op` names.
    pub async fn send(
        &self,
        client: &Client,
    ) -> Result<azr_sandbox_client::v1::Outcome, azr_sandbox_client::ClientError> {
        use azr_sandbox_client::{CallOptions, v1};
        let call = CallOptions {
            options: Some(self.options()),
            ..CallOptions::default()
        };
        let program = Some(v1::Program {
            source: self.source.clone(),
            imports: vec![],
            ..Default::default()
        });
        match self.op.as_str() {
            "run" => {
                client
                    .run(
                        v1::RunTask {
                            program,
                            input: self.input.clone(),
                        },
                        &call,
                    )
                    .await
            }
            "validate" => {
                client
                    .validate(
                        v1::ValidateTask {
                            program,
                            input: self.input.clone().unwrap_or_default(),
                        },
                        &call,
                    )
                    .await
            }
            other => panic!("verdicts.toml: unknown op {other:?}"),
        }
    }
}

/// The verdict's name as `verdicts.toml` writes it (`out_of_fuel`, ...).
pub fn verdict_name(outcome: &azr_sandbox_client::v1::Outcome) -> String {
    azr_sandbox_client::v1::Verdict::try_from(outcome.verdict).map_or_else(
        |_| format!("verdict_{}", outcome.verdict),
        |v| {
            v.as_str_name()
                .trim_start_matches("VERDICT_")
                .to_ascii_lowercase()
        },
    )
}

/// The fuzzers' regression inputs for `target` (files under `fuzz/regressions/<target>/`).
pub fn fuzz_regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).expect("regression input"))
                })
                .collect()
        })
        .unwrap_or_default();
    inputs.sort();
    inputs
}

/// Threads of process `pid`.
pub fn threads(pid: u32) -> Option<u64> {
    status_field(pid, "Threads:")
}

/// Every verdict kind a program can end in (`skipped` is the host's, not a program's).
pub fn verdict_kinds() -> impl Iterator<Item = &'static str> {
    azr_sandbox::Verdict::ALL
        .into_iter()
        .filter(|v| *v != azr_sandbox::Verdict::Skipped)
        .map(azr_sandbox::Verdict::as_str)
}
