//! `azr-sandbox bench front-ends`: a gRPC client's latency while HTTP clients misbehave.
//!
//! The daemon serves gRPC on its Unix socket and SandboxFusion's API on a loopback port. In
//! alternate rounds, the same gRPC client times trivial checks with the HTTP side quiet, and
//! with `--idle` TCP connections that never say a word plus `--slow` connections that
//! declared a large body and send it a little at a time. Every gRPC call must succeed; the
//! figures are its p50 and p99 in both conditions (medians over rounds), and the daemon's
//! peak resident memory under load.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use azr_sandbox::config::SandboxConfig;
use azr_sandbox_client::{CallOptions, Client};
use tokio::{io::AsyncWriteExt, net::TcpStream, task::JoinSet};

use super::{daemon::DaemonChild, median, percentile, trivial_check};

#[derive(clap::Args)]
pub struct FrontEndsArgs {
    /// TCP connections that connect and say nothing.
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// TCP connections that send a request with a large declared body, slowly.
    #[arg(long, default_value_t = 100)]
    slow: usize,
    /// Rounds of each condition, alternated; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// gRPC calls timed per round.
    #[arg(long, default_value_t = 500)]
    calls: usize,
}

/// What one round measured.
struct Round {
    latencies: Vec<Duration>,
    peak_rss_kib: u64,
    /// Most file descriptors the daemon held (its sockets among them).
    peak_fds: usize,
    /// Load connections the daemon had closed by the end of the round.
    closed: usize,
}

pub fn run(config: &SandboxConfig, args: &FrontEndsArgs) -> Result<()> {
    raise_open_file_limit(args.idle + args.slow + 256)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let http: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut out = std::io::stdout();
    let s = &config.server;
    writeln!(
        out,
        "bench front-ends: {} idle + {} slow-body HTTP connections beside one gRPC client; \
         HTTP limits: {} connections, idle {} ms, headers {} ms, body {} ms, bodies {} MiB \
         in all",
        args.idle,
        args.slow,
        s.http_max_connections,
        s.http_idle_timeout_ms,
        s.http_header_timeout_ms,
        s.http_body_timeout_ms,
        s.http_body_budget_bytes >> 20
    )?;
    let (quiet, loaded) = runtime.block_on(async {
        let daemon = DaemonChild::start(config, Some(http)).await?;
        let client = Client::connect([&daemon.socket])?;
        let measured = async {
            let mut quiet = Vec::new();
            let mut loaded = Vec::new();
            warm_up(&client).await?;
            let quiet_fds = open_fds(daemon.pid());
            for round in 0..args.rounds * 2 {
                if round % 2 == 0 {
                    quiet.push(measure(&client, args.calls, daemon.pid(), None).await?);
                } else {
                    let load = Load::open(http, args.idle, args.slow).await;
                    loaded.push(measure(&client, args.calls, daemon.pid(), Some(load)).await?);
                    // The next quiet round starts once the daemon has let go of the load.
                    let settled = Instant::now();
                    while open_fds(daemon.pid()) > quiet_fds + 8
                        && settled.elapsed() < Duration::from_secs(10)
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            Ok::<_, anyhow::Error>((quiet, loaded))
        };
        measured
            .await
            .with_context(|| format!("the daemon's log:\n{}", daemon.log()))
    })?;
    let p = |rounds: &[Round], q: f64| {
        median(
            rounds
                .iter()
                .map(|r| percentile(&r.latencies, q).as_secs_f64() * 1e3)
                .collect(),
        )
    };
    let (p50_quiet, p50_loaded) = (p(&quiet, 0.5), p(&loaded, 0.5));
    let peak = loaded.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
    let closed = median(loaded.iter().map(|r| r.closed as f64).collect());
    let fds_quiet = quiet.iter().map(|r| r.peak_fds).max().unwrap_or(0);
    let fds_loaded = loaded.iter().map(|r| r.peak_fds).max().unwrap_or(0);
    writeln!(
        out,
        "gRPC trivial check, HTTP quiet:  p50 {p50_quiet:.3} ms, p99 {:.3} ms",
        p(&quiet, 0.99)
    )?;
    writeln!(
        out,
        "gRPC trivial check, HTTP loaded: p50 {p50_loaded:.3} ms, p99 {:.3} ms   \
         (p50 ratio {:.2}x, goal <= 2x; every call succeeded)",
        p(&loaded, 0.99),
        p50_loaded / p50_quiet
    )?;
    writeln!(
        out,
        "daemon peak RSS under load: {:.0} MiB (goal < 1024); load connections the daemon \
         closed during a round (median): {closed:.0} of {}",
        peak as f64 / 1024.0,
        args.idle + args.slow
    )?;
    writeln!(
        out,
        "daemon file descriptors: at most {fds_quiet} quiet, {fds_loaded} loaded (HTTP limit {})",
        s.http_max_connections
    )?;
    Ok(())
}

async fn warm_up(client: &Client) -> Result<()> {
    for _ in 0..50 {
        client
            .check(trivial_check(), &CallOptions::default())
            .await?;
    }
    Ok(())
}

/// Times `calls` trivial checks one after another; with a load, keeps it open meanwhile.
async fn measure(client: &Client, calls: usize, pid: u32, load: Option<Load>) -> Result<Round> {
    let call = CallOptions::default();
    let mut latencies = Vec::with_capacity(calls);
    let mut peak_rss_kib = rss_kib(pid);
    let mut peak_fds = open_fds(pid);
    for n in 0..calls {
        let t = Instant::now();
        let outcome = client
            .check(trivial_check(), &call)
            .await
            .context("a gRPC call failed")?;
        latencies.push(t.elapsed());
        if outcome.passed != Some(true) {
            bail!("a gRPC check did not pass: {outcome:?}");
        }
        if n % 50 == 0 {
            peak_rss_kib = peak_rss_kib.max(rss_kib(pid));
            peak_fds = peak_fds.max(open_fds(pid));
        }
    }
    latencies.sort();
    let closed = match load {
        Some(load) => load.close().await,
        None => 0,
    };
    Ok(Round {
        latencies,
        peak_rss_kib: peak_rss_kib.max(rss_kib(pid)),
        peak_fds,
        closed,
    })
}

/// The misbehaving HTTP clients of one round.
struct Load {
    tasks: JoinSet<()>,
    /// Connections the daemon closed (or refused).
    closed: Arc<AtomicUsize>,
}

impl Load {
    /// Opens the connections; each task ends when the daemon closes its connection (true)
    /// or when the round ends (aborted).
    async fn open(http: SocketAddr, idle: usize, slow: usize) -> Load {
        let mut tasks = JoinSet::new();
        let closed = Arc::new(AtomicUsize::new(0));
        for _ in 0..idle {
            let closed = closed.clone();
            tasks.spawn(async move {
                if let Ok(mut stream) = TcpStream::connect(http).await {
                    wait_closed(&mut stream).await;
                }
                closed.fetch_add(1, Ordering::Relaxed);
            });
        }
        for _ in 0..slow {
            let closed = closed.clone();
            tasks.spawn(async move {
                let ended = async {
                    let Ok(mut stream) = TcpStream::connect(http).await else {
                        return;
                    };
                    let head = "POST /run_code HTTP/1.1\r\nHost: bench\r\n\
                            Content-Type: application/json\r\nContent-Length: 16000000\r\n\r\n";
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    // 1 MiB at once, then 4 KiB every 100 ms: a body that never finishes.
                    let chunk = vec![b' '; 1 << 20];
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if stream.write_all(&chunk[..4096]).await.is_err() {
                            return;
                        }
                    }
                };
                ended.await;
                closed.fetch_add(1, Ordering::Relaxed);
            });
        }
        // Let the connections reach the daemon before the round is timed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Load { tasks, closed }
    }

    /// Ends the round's connections; how many the daemon had closed already.
    async fn close(mut self) -> usize {
        let closed = self.closed.load(Ordering::Relaxed);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        closed
    }
}

/// Reads until the peer closes the connection (or it fails).
async fn wait_closed(stream: &mut TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The load opens more sockets than the usual soft limit of 1,024 descriptors.
fn raise_open_file_limit(want: usize) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = want as u64;
    if soft < want {
        if hard < want {
            bail!("this benchmark needs {want} open files; the hard limit is {hard}");
        }
        setrlimit(Resource::RLIMIT_NOFILE, want, hard)?;
    }
    Ok(())
}
