//! `azr-sandbox serve`: the start-up sequence of the daemon.
//!
//! Order matters, and each step says why it sits where it does:
//! 1. rlimits and no-new-privileges, before anything else runs;
//! 2. the socket (bound while the daemon may still be root, so it can live in /run), or the
//!    one systemd passed;
//! 3. dropping root, before touching any model-facing code;
//! 4. loading the guest (reads the snapshot cache: needs files, so before seccomp);
//! 5. the `daemon` seccomp filter on every thread, then the workers, each adding the
//!    `worker` filter to itself as it starts;
//! 6. serving until SIGTERM/SIGINT, then draining.

use std::{
    os::unix::fs::chown,
    sync::{Arc, atomic::AtomicBool},
    time::Instant,
};

use anyhow::{Context, Result};
use azr_sandbox::{
    Executor, Sandbox,
    config::SandboxConfig,
    server::{
        self,
        convert::RequestBounds,
        listener::{self, PeerPolicy},
        service::Service,
        stats::Stats,
    },
};
use azr_sandbox_hardening::{self as hardening, seccomp::Filters};

/// A one-way gate that also counts the threads that reached it, so that the process-wide
/// filter goes in only once every thread is past its own start-up.
#[derive(Default)]
struct Gate {
    state: std::sync::Mutex<(bool, usize)>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, usize)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records arrival, then waits for the gate to open.
    fn arrive_and_wait(&self) {
        let mut state = self.lock();
        state.1 += 1;
        self.changed.notify_all();
        while !state.0 {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Records arrival without waiting.
    fn arrive(&self) {
        self.lock().1 += 1;
        self.changed.notify_all();
    }

    fn wait_for_arrivals(&self, n: usize) {
        let mut state = self.lock();
        while state.1 < n {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open(&self) {
        self.lock().0 = true;
        self.changed.notify_all();
    }
}

/// Threads of the I/O runtime: the work is in the wasm workers, not in moving bytes.
const IO_THREADS: usize = 2;

pub fn run(config: &SandboxConfig) -> Result<()> {
    let started = Instant::now();
    // A panic anywhere (a bug) also names the programs that were running.
    hardening::crash::install_panic_hook();
    if let Some(addr) = config.server.http
        && !addr.ip().is_loopback()
        && !config.server.http_allow_remote
    {
        anyhow::bail!(
            "server.http = {addr} is not a loopback address: anyone who reaches it could run \
             code in the sandbox; set server.http_allow_remote = true (or --http-allow-remote) \
             if that is intended (SECURITY.md)"
        );
    }
    hardening::apply_rlimits(&config.hardening).context("applying rlimits")?;
    hardening::set_no_new_privs()?;

    let account = hardening::resolve_account(&config.hardening)?;
    let listener = match listener::from_systemd().context("taking the socket from systemd")? {
        Some(l) => l,
        None => listener::bind(&config.server.socket, config.server.socket_mode)
            .with_context(|| format!("binding {}", config.server.socket.display()))?,
    };
    // Bound here for the same reason as the socket: the filters forbid binding later.
    let http_listener = match config.server.http {
        None => None,
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding the HTTP endpoint on {addr}"))?;
            l.set_nonblocking(true)?;
            // Read now: `getsockname` is not allowed once the filters are in.
            let addr = l.local_addr().context("reading the HTTP address")?;
            Some((l, addr))
        }
    };
    if let (Some(account), Some(path)) = (&account, &listener.owned_path) {
        // The socket must stay usable by the daemon's group once root is gone.
        chown(path, Some(account.uid.as_raw()), Some(account.gid.as_raw()))
            .with_context(|| format!("handing {} to {}", path.display(), account.name))?;
    }
    match &account {
        Some(account) => {
            hardening::drop_privileges(account)?;
            tracing::info!(user = %account.name, uid = account.uid.as_raw(), "dropped root");
        }
        None if nix::unistd::Uid::effective().is_root() => tracing::warn!(
            "running as root: set hardening.user to drop privileges (the seccomp filters and \
             the wasm sandbox still apply)"
        ),
        None => {}
    }
    let own_uid = nix::unistd::Uid::effective().as_raw();
    let peers = PeerPolicy::new(
        &config.server.allow_uids,
        &config.server.allow_gids,
        own_uid,
    );

    let mut pool = config.pool_config();
    let executor = Arc::new(Executor::new(&pool.engine).context("loading the Python guest")?);

    // The runtime's threads exist before the process filter, so it covers them (threads
    // started later inherit it).
    let io_started = Arc::new(Gate::default());
    let io_gate = io_started.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(IO_THREADS)
        .thread_name("azr-io")
        .on_thread_start(move || io_gate.arrive())
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;

    // Workers start now but wait at the gate before installing their own filter: the
    // process-wide filter must go first (TSYNC refuses threads whose filters diverged), and
    // no thread may be created after it (it forbids clone).
    let gate = Arc::new(Gate::default());
    io_started.wait_for_arrivals(IO_THREADS);
    let filters = if config.hardening.seccomp {
        Some(Arc::new(Filters::compile(None)?))
    } else {
        tracing::warn!("seccomp filters are off (hardening.seccomp = false)");
        None
    };
    let (worker_gate, worker_filters) = (gate.clone(), filters.clone());
    pool.worker_init = Some(Arc::new(move || {
        worker_gate.arrive_and_wait();
        match &worker_filters {
            Some(f) => f.apply_to_this_thread("worker").map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }));
    let sandbox = Sandbox::with_executor(executor, &pool).context("starting the workers")?;
    gate.wait_for_arrivals(pool.workers.max(1));
    let locked = filters.as_ref().map_or(Ok(()), |f| f.apply_to_process());
    // Open the gate even on failure, so that the workers can be joined on the way out.
    gate.open();
    locked?;
    sandbox.wait_ready().context("starting the workers")?;

    let (listener, owned_path) = {
        let _guard = runtime.enter();
        let description = listener.description.clone();
        let pair = listener.into_tokio().context("registering the socket")?;
        tracing::info!(
            socket = %description,
            workers = sandbox.workers(),
            secs = started.elapsed().as_secs_f32(),
            "serving azr.sandbox.v1"
        );
        pair
    };
    let http_listener = match http_listener {
        None => None,
        Some((l, addr)) => {
            let _guard = runtime.enter();
            let l = tokio::net::TcpListener::from_std(l).context("registering the HTTP port")?;
            tracing::info!(%addr, "serving SandboxFusion's HTTP API (POST /run_code)");
            Some(l)
        }
    };
    let service = Service {
        sandbox,
        bounds: RequestBounds {
            limits: config.limits.clone(),
            rules: config.rules.clone(),
            max_batch_tasks: config.server.max_batch_tasks,
            max_expanded_bytes: config.server.max_request_bytes.saturating_mul(4),
            files: config.server.file_limits(),
        },
        stats: Arc::new(Stats::default()),
        draining: Arc::new(AtomicBool::new(false)),
        guest: azr_sandbox::snapshot::GUEST_KEY.to_owned(),
        queue_capacity: pool.queue,
        max_request_bytes: config.server.max_request_bytes,
    };
    runtime
        .block_on(server::serve(
            listener,
            owned_path,
            http_listener,
            service,
            peers,
            &config.server,
        ))
        .context("serving")?;
    // Workers finish the batch at hand when the pool is dropped.
    drop(runtime);
    tracing::info!("stopped");
    Ok(())
}
