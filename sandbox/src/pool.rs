//! A fixed pool of worker threads in front of the engine, with a bounded queue.
//!
//! Wasm runs on the calling thread's native stack, so it must run on threads created with a
//! stack larger than the wasm stack limit; and a service needs back-pressure rather than an
//! unbounded backlog. Both are this module's job: `workers` threads with big stacks, each
//! with its own [`Worker`] (and so its own warm instance), and a queue of at most `queue`
//! waiting batches (`try_submit` refuses beyond it; see [`crate::queue`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::Instant,
};

use crate::{
    engine::{EngineConfig, Executor, RunControl, Worker},
    error::SandboxError,
    histogram::DurationHistogram,
    item::{Item, Outcome},
    limits::{Limits, Rules},
    queue::{JobQueue, PushError},
};

/// Items to run in order in one worker, with what governs them.
#[derive(Debug, Clone)]
pub struct Batch {
    pub items: Vec<Item>,
    pub limits: Limits,
    pub rules: Rules,
    pub control: RunControl,
}

/// A batch and where to send its outcomes.
struct Job {
    batch: Batch,
    reply: Box<dyn FnOnce(Vec<Outcome>) + Send>,
    queued_at: Instant,
}

/// What the workers report while they run (for the daemon's metrics).
#[derive(Debug, Default)]
struct Activity {
    /// Workers running a batch now.
    busy: AtomicUsize,
    /// How long batches waited in the queue for a worker.
    queue_wait: DurationHistogram,
}

/// Runs first on every worker thread, before it takes work: the daemon installs the
/// worker role's seccomp filter here.
pub type ThreadInit = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Settings of the pool.
#[derive(Clone)]
pub struct PoolConfig {
    pub engine: EngineConfig,
    /// Worker threads (each runs one instance at a time).
    pub workers: usize,
    /// Batches that may wait for a worker before `try_submit` refuses more.
    pub queue: usize,
    /// Run on each worker thread as it starts; an error stops start-up.
    pub worker_init: Option<ThreadInit>,
}

impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolConfig")
            .field("engine", &self.engine)
            .field("workers", &self.workers)
            .field("queue", &self.queue)
            .field("worker_init", &self.worker_init.is_some())
            .finish()
    }
}

/// The sandbox: a compiled guest and the workers that run it. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Arc<Executor>,
    queue: Arc<JobQueue<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
    activity: Arc<Activity>,
    /// Start-up reports of the workers, until [`Sandbox::wait_ready`] has read them.
    ready: std::sync::Mutex<Option<mpsc::Receiver<Result<(), String>>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets every worker finish the queued jobs and exit.
        self.queue.close();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the sandbox queue is full ({0} batches waiting)")]
    QueueFull(usize),
    #[error("the sandbox is shutting down")]
    Closed,
}

impl Sandbox {
    /// Compiles (or loads from the cache) the guest and starts the workers.
    pub fn new(config: &PoolConfig) -> Result<Self, SandboxError> {
        let executor = Arc::new(Executor::new(&config.engine)?);
        let sandbox = Self::with_executor(executor, config)?;
        sandbox.wait_ready()?;
        Ok(sandbox)
    }

    /// Starts the workers on an executor made earlier, without waiting for their
    /// `worker_init`: the daemon starts the workers (their init waits for a gate), locks the
    /// whole process down, opens the gate, and then calls [`Sandbox::wait_ready`]. So no
    /// thread is ever created after the process-wide seccomp filter is in place.
    pub fn with_executor(
        executor: Arc<Executor>,
        config: &PoolConfig,
    ) -> Result<Self, SandboxError> {
        let workers_n = config.workers.max(1);
        let queue = Arc::new(JobQueue::<Job>::new(workers_n, config.queue.max(1)));
        // The wasm stack plus room for the host's own frames.
        let stack = usize::try_from(config.engine.cap.wasm_stack_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(16 << 20);
        let mut workers = Vec::with_capacity(config.workers.max(1));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let activity = Arc::new(Activity::default());
        for index in 0..workers_n {
            let activity = activity.clone();
            let queue = queue.clone();
            let executor = executor.clone();
            let init = config.worker_init.clone();
            let ready = ready_tx.clone();
            let handle = thread::Builder::new()
                .name(format!("azr-worker-{index}"))
                .stack_size(stack)
                .spawn(move || {
                    // Before the lock-down: it reserves its buffers.
                    let mut worker = Worker::new(executor);
                    let started = init.map_or(Ok(()), |init| init());
                    let failed = started.is_err();
                    let _ = ready.send(started);
                    if failed {
                        return;
                    }
                    while let Some(job) = queue.pop(index) {
                        activity.busy.fetch_add(1, Ordering::Relaxed);
                        activity.queue_wait.record(job.queued_at.elapsed());
                        let batch = &job.batch;
                        let n = batch.items.len();
                        // A bug on the host side must cost one batch, not a worker: the batch
                        // is answered with faults and the worker takes the next one.
                        let outcomes =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                worker.run_items_with(
                                    &batch.items,
                                    &batch.limits,
                                    &batch.rules,
                                    batch.control,
                                )
                            }))
                            .unwrap_or_else(|_| {
                                tracing::error!("a worker panicked while running a batch");
                                faults(n, "the sandbox failed while running this batch")
                            });
                        queue.finishing(index);
                        activity.busy.fetch_sub(1, Ordering::Relaxed);
                        (job.reply)(outcomes);
                    }
                })
                .map_err(|e| SandboxError::Engine(format!("starting worker {index}: {e}")))?;
            workers.push(handle);
        }
        drop(ready_tx);
        Ok(Sandbox {
            inner: Arc::new(Inner {
                executor,
                queue,
                workers,
                activity,
                ready: std::sync::Mutex::new(Some(ready_rx)),
            }),
        })
    }

    /// Waits until every worker has run its `worker_init`; an error if any failed (that
    /// worker then takes no work).
    pub fn wait_ready(&self) -> Result<(), SandboxError> {
        let receiver = match self.inner.ready.lock() {
            Ok(mut guard) => guard.take(),
            Err(_) => None,
        };
        let Some(receiver) = receiver else {
            return Ok(());
        };
        for _ in 0..self.inner.workers.len() {
            match receiver.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(SandboxError::Engine(format!("starting a worker: {e}")));
                }
                Err(_) => return Err(SandboxError::Engine("a worker died at start-up".into())),
            }
        }
        Ok(())
    }

    /// The most any request may ask for.
    pub fn cap(&self) -> &Limits {
        self.inner.executor.cap()
    }

    /// Queues a batch, or refuses at once when the queue is full. `reply` runs on a worker
    /// thread with one outcome per item, in order.
    pub fn try_submit(
        &self,
        batch: Batch,
        reply: impl FnOnce(Vec<Outcome>) + Send + 'static,
    ) -> Result<(), SubmitError> {
        let job = Job {
            batch,
            reply: Box::new(reply),
            queued_at: Instant::now(),
        };
        self.inner.queue.try_push(job).map_err(|e| match e {
            PushError::Full(_) => SubmitError::QueueFull(self.inner.queue.len()),
            PushError::Closed(_) => SubmitError::Closed,
        })
    }

    /// Runs a batch and waits for it (queueing behind other work rather than refusing).
    pub fn run(&self, items: Vec<Item>, limits: &Limits, rules: &Rules) -> Vec<Outcome> {
        let n = items.len();
        let (tx, rx) = mpsc::sync_channel(1);
        let job = Job {
            batch: Batch {
                items,
                limits: limits.clone(),
                rules: rules.clone(),
                control: RunControl::default(),
            },
            reply: Box::new(move |outcomes| {
                let _ = tx.send(outcomes);
            }),
            queued_at: Instant::now(),
        };
        let sent = self.inner.queue.push_wait(job).is_ok();
        if sent && let Ok(outcomes) = rx.recv() {
            return outcomes;
        }
        faults(n, "the sandbox is shutting down")
    }

    /// Batches waiting for a worker.
    pub fn queued(&self) -> usize {
        self.inner.queue.len()
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.inner.workers.len()
    }

    /// Worker threads running a batch now.
    pub fn busy_workers(&self) -> usize {
        self.inner.activity.busy.load(Ordering::Relaxed)
    }

    /// How long batches have waited in the queue for a worker, since start-up.
    pub fn queue_waits(&self) -> &DurationHistogram {
        &self.inner.activity.queue_wait
    }
}

/// `n` fault outcomes, for batches the engine could not run.
fn faults(n: usize, message: &str) -> Vec<Outcome> {
    (0..n)
        .map(|_| Outcome::host(crate::Verdict::Fault, "SandboxFault", message))
        .collect()
}
