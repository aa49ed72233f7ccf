//! A daemon for the benchmarks: `azr-sandbox serve` started from this binary as a child, on a
//! private socket (and loopback port), seccomp on, as a deployment runs it.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use azr_sandbox::config::SandboxConfig;
use azr_sandbox_client::Client;

pub struct DaemonChild {
    child: Child,
    dir: PathBuf,
    log_path: PathBuf,
    pub socket: PathBuf,
}

impl DaemonChild {
    /// Starts the daemon with `config` (and SandboxFusion's HTTP API on `http`) and waits
    /// until it answers a health check.
    pub async fn start(config: &SandboxConfig, http: Option<SocketAddr>) -> Result<DaemonChild> {
        let dir = std::env::temp_dir().join(format!("azr-bench-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("sandbox.sock");
        let config_path = dir.join("sandbox.toml");
        std::fs::write(&config_path, toml::to_string(config)?)?;
        let exe = std::env::current_exe().context("finding the azr-sandbox binary")?;
        let log_path = dir.join("daemon.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(exe);
        command
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .arg("--socket")
            .arg(&socket);
        if let Some(http) = http {
            command.arg("--http").arg(http.to_string());
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the daemon")?;
        let daemon = DaemonChild {
            child,
            dir,
            log_path,
            socket,
        };
        let client = Client::connect([&daemon.socket])?;
        let started = Instant::now();
        while client.health().await.is_err() {
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the daemon did not start serving:\n{}", daemon.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(daemon)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon has logged so far (for errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for DaemonChild {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
