//! Client of the azr-sandbox daemon (`azr.sandbox.v1` over a Unix socket).
//!
//! What a training loop needs beyond the generated stub: connecting to a socket path (and
//! reconnecting by itself when the daemon restarts), retrying `UNAVAILABLE` and
//! `RESOURCE_EXHAUSTED` with back-off, splitting batches larger than the daemon accepts, and
//! spreading batches over several daemons (one per node, or several on one) by round robin.
//! [`BlockingClient`] wraps it for synchronous callers such as the trainer.
//!
//! ```no_run
//! use azr_sandbox_client::{BlockingClient, v1};
//! let client = BlockingClient::connect(["/run/azr-sandbox/sandbox.sock"]).unwrap();
//! let outcome = client.validate(v1::ValidateTask {
//!     program: Some(v1::Program { source: "def f(x):\n    return x * 2".into(), imports: vec![], ..Default::default() }),
//!     input: "21".into(),
//! }, None).unwrap();
//! assert_eq!(outcome.value.as_deref(), Some("42"));
//! ```

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

pub use azr_proto::v1;
use azr_proto::v1::sandbox_client::SandboxClient;
use hyper_util::rt::TokioIo;
use tonic::{
    Code, Request, Status,
    transport::{Channel, Endpoint, Uri},
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no socket path given")]
    NoSocket,
    #[error("setting up the channel to {path}: {message}")]
    Channel { path: PathBuf, message: String },
    /// The daemon answered with an error status (after retries, for retryable ones).
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(Status),
    #[error("the daemon answered {got} outcomes for {sent} tasks")]
    Mismatch { sent: usize, got: usize },
    #[error("starting the client runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        ClientError::Status(status)
    }
}

impl ClientError {
    /// The gRPC status code, when the daemon answered with one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

/// How hard to try before giving up on a call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Wait before the first retry; doubled after each, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// Per-call settings.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Limits and rules sent with the request.
    pub options: Option<v1::Options>,
    /// Sent as the gRPC deadline; the daemon answers `DEADLINE_EXCEEDED` after it.
    pub timeout: Option<Duration>,
    /// Stop a batch at its first failure (the rest come back `VERDICT_SKIPPED`).
    pub stop_on_failure: bool,
}

/// An async client over one or more daemons.
pub struct Client {
    daemons: Vec<SandboxClient<Channel>>,
    next: AtomicUsize,
    retry: RetryPolicy,
    /// Tasks per request; larger batches are split (the daemon's `max_batch_tasks`).
    max_batch_tasks: usize,
}

/// A channel to a Unix socket. It connects lazily and reconnects after the daemon restarts,
/// so a client outlives daemon restarts.
fn channel(path: &Path) -> Result<Channel, ClientError> {
    let socket = path.to_owned();
    // The URI is required by the HTTP layer but never resolved: every connection goes to
    // the socket.
    let endpoint =
        Endpoint::try_from("http://azr-sandbox.invalid").map_err(|e| ClientError::Channel {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(&socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        })),
    )
}

fn retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
}

impl Client {
    /// A client of the daemons listening on `paths` (needs a Tokio runtime).
    pub fn connect<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Self, ClientError> {
        let daemons = paths
            .into_iter()
            .map(|p| {
                channel(p.as_ref()).map(|c| {
                    SandboxClient::new(c)
                        .max_decoding_message_size(usize::MAX)
                        .max_encoding_message_size(usize::MAX)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if daemons.is_empty() {
            return Err(ClientError::NoSocket);
        }
        Ok(Client {
            daemons,
            next: AtomicUsize::new(0),
            retry: RetryPolicy::default(),
            max_batch_tasks: 4096,
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_max_batch_tasks(mut self, n: usize) -> Self {
        self.max_batch_tasks = n.max(1);
        self
    }

    fn pick(&self) -> SandboxClient<Channel> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.daemons.len();
        self.daemons[i].clone()
    }

    /// Calls `call` on the next daemon, retrying retryable statuses with back-off (each
    /// retry goes to the next daemon in turn).
    async fn with_retries<M, R, F, Fut>(
        &self,
        message: M,
        timeout: Option<Duration>,
        call: F,
    ) -> Result<R, ClientError>
    where
        M: Clone,
        F: Fn(SandboxClient<Channel>, Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let mut wait = self.retry.backoff;
        let mut attempt = 1;
        loop {
            let mut request = Request::new(message.clone());
            if let Some(t) = timeout {
                request.set_timeout(t);
            }
            let sent = std::time::Instant::now();
            let answer = call(self.pick(), request).await.map_err(|status| {
                // tonic's channel enforces the deadline on this side too and reports it as
                // CANCELLED; whichever side noticed first, the caller's deadline passed.
                match timeout {
                    Some(t) if status.code() == Code::Cancelled && sent.elapsed() >= t => {
                        Status::deadline_exceeded(format!(
                            "the deadline of {} ms passed",
                            t.as_millis()
                        ))
                    }
                    _ => status,
                }
            });
            match answer {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if retryable(&status) && attempt < self.retry.attempts => {
                    tracing::debug!("retrying after {}: {}", status.code(), status.message());
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.retry.max_backoff);
                    attempt += 1;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }

    pub async fn health(&self) -> Result<v1::HealthResponse, ClientError> {
        self.with_retries(v1::HealthRequest {}, None, |mut c, r| async move {
            c.health(r).await
        })
        .await
    }

    pub async fn stats(&self) -> Result<v1::StatsResponse, ClientError> {
        self.with_retries(v1::StatsRequest {}, None, |mut c, r| async move {
            c.stats(r).await
        })
        .await
    }

    pub async fn run(
        &self,
        task: v1::RunTask,
        call: &CallOptions,
    ) -> Result<v1::Outcome, ClientError> {
        let request = v1::RunRequest {
            task: Some(task),
            options: call.options.clone(),
        };
        self.with_retries(
            request,
            call.timeout,
            |mut c, r| async move { c.run(r).await },
        )
        .await
    }

    pub async fn validate(
        &self,
        task: v1::ValidateTask,
        call: &CallOptions,
    ) -> Result<v1::Outcome, ClientError> {
        let request = v1::ValidateRequest {
            task: Some(task),
            options: call.options.clone(),
        };
        self.with_retries(request, call.timeout, |mut c, r| async move {
            c.validate(r).await
        })
        .await
    }

    pub async fn check(
        &self,
        task: v1::CheckTask,
        call: &CallOptions,
    ) -> Result<v1::Outcome, ClientError> {
        let request = v1::CheckRequest {
            task: Some(task),
            options: call.options.clone(),
        };
        self.with_retries(
            request,
            call.timeout,
            |mut c, r| async move { c.check(r).await },
        )
        .await
    }

    /// One test case of a test-case program (stdin/stdout, function call or asserts).
    pub async fn test(
        &self,
        task: v1::TestTask,
        call: &CallOptions,
    ) -> Result<v1::Outcome, ClientError> {
        let request = v1::TestRequest {
            task: Some(task),
            options: call.options.clone(),
        };
        self.with_retries(
            request,
            call.timeout,
            |mut c, r| async move { c.test(r).await },
        )
        .await
    }

    /// Runs `tasks` in order, in requests of at most `max_batch_tasks` (sent concurrently,
    /// so they spread over the daemon's workers and over daemons). One outcome per task.
    pub async fn run_batch(
        &self,
        tasks: Vec<v1::RunTask>,
        program: Option<v1::Program>,
        call: &CallOptions,
    ) -> Result<Vec<v1::Outcome>, ClientError> {
        self.batched(
            tasks,
            |tasks| v1::RunBatchRequest {
                tasks,
                options: call.options.clone(),
                program: program.clone(),
                stop_on_failure: call.stop_on_failure,
            },
            call,
            |mut c, r| async move { c.run_batch(r).await },
        )
        .await
    }

    pub async fn validate_batch(
        &self,
        tasks: Vec<v1::ValidateTask>,
        program: Option<v1::Program>,
        call: &CallOptions,
    ) -> Result<Vec<v1::Outcome>, ClientError> {
        self.batched(
            tasks,
            |tasks| v1::ValidateBatchRequest {
                tasks,
                options: call.options.clone(),
                program: program.clone(),
                stop_on_failure: call.stop_on_failure,
            },
            call,
            |mut c, r| async move { c.validate_batch(r).await },
        )
        .await
    }

    pub async fn check_batch(
        &self,
        tasks: Vec<v1::CheckTask>,
        program: Option<v1::Program>,
        call: &CallOptions,
    ) -> Result<Vec<v1::Outcome>, ClientError> {
        self.batched(
            tasks,
            |tasks| v1::CheckBatchRequest {
                tasks,
                options: call.options.clone(),
                program: program.clone(),
                stop_on_failure: call.stop_on_failure,
            },
            call,
            |mut c, r| async move { c.check_batch(r).await },
        )
        .await
    }

    /// A program's test cases (usually `program` with tasks that leave theirs unset).
    pub async fn test_batch(
        &self,
        tasks: Vec<v1::TestTask>,
        program: Option<v1::Program>,
        call: &CallOptions,
    ) -> Result<Vec<v1::Outcome>, ClientError> {
        self.batched(
            tasks,
            |tasks| v1::TestBatchRequest {
                tasks,
                options: call.options.clone(),
                program: program.clone(),
                stop_on_failure: call.stop_on_failure,
            },
            call,
            |mut c, r| async move { c.test_batch(r).await },
        )
        .await
    }

    async fn batched<T, M, F, Fut>(
        &self,
        tasks: Vec<T>,
        make: impl Fn(Vec<T>) -> M,
        call: &CallOptions,
        send: F,
    ) -> Result<Vec<v1::Outcome>, ClientError>
    where
        T: Clone,
        M: Clone,
        F: Fn(SandboxClient<Channel>, Request<M>) -> Fut + Clone,
        Fut: std::future::Future<Output = Result<tonic::Response<v1::BatchResponse>, Status>>,
    {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        // With stop-on-failure the chunks must run one after another.
        let chunks: Vec<Vec<T>> = tasks
            .chunks(self.max_batch_tasks)
            .map(<[T]>::to_vec)
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        if call.stop_on_failure || chunks.len() == 1 {
            let mut failed = false;
            for chunk in chunks {
                let n = chunk.len();
                if failed {
                    outcomes.extend((0..n).map(|_| skipped()));
                    continue;
                }
                let got = self
                    .with_retries(make(chunk), call.timeout, send.clone())
                    .await?
                    .outcomes;
                if got.len() != n {
                    return Err(ClientError::Mismatch {
                        sent: n,
                        got: got.len(),
                    });
                }
                failed = call.stop_on_failure && got.iter().any(failed_outcome);
                outcomes.extend(got);
            }
            return Ok(outcomes);
        }
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        let calls = chunks
            .into_iter()
            .map(|chunk| self.with_retries(make(chunk), call.timeout, send.clone()));
        let answers = join_all(calls).await;
        for (answer, n) in answers.into_iter().zip(sizes) {
            let got = answer?.outcomes;
            if got.len() != n {
                return Err(ClientError::Mismatch {
                    sent: n,
                    got: got.len(),
                });
            }
            outcomes.extend(got);
        }
        Ok(outcomes)
    }
}

fn failed_outcome(o: &v1::Outcome) -> bool {
    o.verdict != v1::Verdict::Ok as i32 || o.passed == Some(false)
}

fn skipped() -> v1::Outcome {
    v1::Outcome {
        verdict: v1::Verdict::Skipped as i32,
        error_type: Some("Skipped".into()),
        error_message: Some("an earlier task failed".into()),
        ..Default::default()
    }
}

/// Polls futures concurrently on the current task (no spawning, so borrowed data works).
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if results[i].is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => results[i] = Some(v),
                std::task::Poll::Pending => all = false,
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// A synchronous client: the async one on its own single-threaded runtime.
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl BlockingClient {
    pub fn connect<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        let client = {
            let _guard = runtime.enter();
            Client::connect(paths)?
        };
        Ok(BlockingClient { runtime, client })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn health(&self) -> Result<v1::HealthResponse, ClientError> {
        self.block_on(self.client.health())
    }

    pub fn stats(&self) -> Result<v1::StatsResponse, ClientError> {
        self.block_on(self.client.stats())
    }

    pub fn run(
        &self,
        task: v1::RunTask,
        options: Option<v1::Options>,
    ) -> Result<v1::Outcome, ClientError> {
        self.block_on(self.client.run(
            task,
            &CallOptions {
                options,
                ..Default::default()
            },
        ))
    }

    pub fn validate(
        &self,
        task: v1::ValidateTask,
        options: Option<v1::Options>,
    ) -> Result<v1::Outcome, ClientError> {
        self.block_on(self.client.validate(
            task,
            &CallOptions {
                options,
                ..Default::default()
            },
        ))
    }

    pub fn check(
        &self,
        task: v1::CheckTask,
        options: Option<v1::Options>,
    ) -> Result<v1::Outcome, ClientError> {
        self.block_on(self.client.check(
            task,
            &CallOptions {
                options,
                ..Default::default()
            },
        ))
    }

    pub fn run_batch(
        &self,
        tasks: Vec<v1::RunTask>,
        program: Option<v1::Program>,
        call: &CallOptions,
    ) -> Result<Vec<v1::Outcome>, ClientError> {
        self.block_on(self.client.run_batch(tasks, program, call))
    }

    pub fn validate_batch(
        &self,
        tasks: Vec<v1::ValidateTask>,
        program: Option<v1::Program>,
        call: &CallOptions,
    ) -> Result<Vec<v1::Outcome>, ClientError> {
        self.block_on(self.client.validate_batch(tasks, program, call))
    }

    pub fn check_batch(
        &self,
        tasks: Vec<v1::CheckTask>,
        program: Option<v1::Program>,
        call: &CallOptions,
    ) -> Result<Vec<v1::Outcome>, ClientError> {
        self.block_on(self.client.check_batch(tasks, program, call))
    }

    pub fn test(&self, task: v1::TestTask, call: &CallOptions) -> Result<v1::Outcome, ClientError> {
        self.block_on(self.client.test(task, call))
    }

    pub fn test_batch(
        &self,
        tasks: Vec<v1::TestTask>,
        program: Option<v1::Program>,
        call: &CallOptions,
    ) -> Result<Vec<v1::Outcome>, ClientError> {
        self.block_on(self.client.test_batch(tasks, program, call))
    }
}
