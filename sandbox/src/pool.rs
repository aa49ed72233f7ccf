//! A fixed pool of worker threads in front of the engine, with a bounded queue.
//!
//! Wasm runs on the calling thread's native stack, so it must run on threads created with a
//! stack larger than the wasm stack limit; and a service needs back-pressure rather than an
//! unbounded backlog. Both are this module's job: `workers` threads with big stacks, and a
//! queue of at most `queue` waiting batches (`try_submit` refuses beyond it).

use std::{
    sync::{Arc, mpsc},
    thread,
};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::{
    engine::{EngineConfig, Executor},
    error::SandboxError,
    item::{Item, Outcome},
    limits::{Limits, Rules},
};

/// A batch of items and where to send their outcomes.
struct Job {
    items: Vec<Item>,
    limits: Limits,
    rules: Rules,
    reply: Box<dyn FnOnce(Vec<Outcome>) + Send>,
}

/// Settings of the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub engine: EngineConfig,
    /// Worker threads (each runs one instance at a time).
    pub workers: usize,
    /// Batches that may wait for a worker before `try_submit` refuses more.
    pub queue: usize,
}

/// The sandbox: a compiled guest and the workers that run it. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Arc<Executor>,
    sender: Option<Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets every worker finish its job and exit.
        self.sender.take();
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
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(config.queue.max(1));
        // The wasm stack plus room for the host's own frames.
        let stack = usize::try_from(config.engine.cap.wasm_stack_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(16 << 20);
        let mut workers = Vec::with_capacity(config.workers.max(1));
        for index in 0..config.workers.max(1) {
            let receiver: Receiver<Job> = receiver.clone();
            let executor = executor.clone();
            let handle = thread::Builder::new()
                .name(format!("azr-worker-{index}"))
                .stack_size(stack)
                .spawn(move || {
                    for job in receiver.iter() {
                        let n = job.items.len();
                        // A bug on the host side must cost one batch, not a worker: the batch
                        // is answered with faults and the worker takes the next one.
                        let outcomes =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                executor.run_items(&job.items, &job.limits, &job.rules)
                            }))
                            .unwrap_or_else(|_| {
                                tracing::error!("a worker panicked while running a batch");
                                faults(n, "the sandbox failed while running this batch")
                            });
                        (job.reply)(outcomes);
                    }
                })
                .map_err(|e| SandboxError::Engine(format!("starting worker {index}: {e}")))?;
            workers.push(handle);
        }
        Ok(Sandbox {
            inner: Arc::new(Inner {
                executor,
                sender: Some(sender),
                workers,
            }),
        })
    }

    /// The most any request may ask for.
    pub fn cap(&self) -> &Limits {
        self.inner.executor.cap()
    }

    /// Queues a batch, or refuses at once when the queue is full. `reply` runs on a worker
    /// thread with one outcome per item, in order.
    pub fn try_submit(
        &self,
        items: Vec<Item>,
        limits: Limits,
        rules: Rules,
        reply: impl FnOnce(Vec<Outcome>) + Send + 'static,
    ) -> Result<(), SubmitError> {
        let sender = self.inner.sender.as_ref().ok_or(SubmitError::Closed)?;
        let job = Job {
            items,
            limits,
            rules,
            reply: Box::new(reply),
        };
        sender.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::QueueFull(sender.len()),
            TrySendError::Disconnected(_) => SubmitError::Closed,
        })
    }

    /// Runs a batch and waits for it (queueing behind other work rather than refusing).
    pub fn run(&self, items: Vec<Item>, limits: &Limits, rules: &Rules) -> Vec<Outcome> {
        let n = items.len();
        let (tx, rx) = mpsc::sync_channel(1);
        let job = Job {
            items,
            limits: limits.clone(),
            rules: rules.clone(),
            reply: Box::new(move |outcomes| {
                let _ = tx.send(outcomes);
            }),
        };
        let sent = self
            .inner
            .sender
            .as_ref()
            .map(|s| s.send(job).is_ok())
            .unwrap_or(false);
        if sent && let Ok(outcomes) = rx.recv() {
            return outcomes;
        }
        faults(n, "the sandbox is shutting down")
    }

    /// Batches waiting for a worker.
    pub fn queued(&self) -> usize {
        self.inner.sender.as_ref().map_or(0, Sender::len)
    }
}

/// `n` fault outcomes, for batches the engine could not run.
fn faults(n: usize, message: &str) -> Vec<Outcome> {
    (0..n)
        .map(|_| Outcome::host(crate::Verdict::Fault, "SandboxFault", message))
        .collect()
}
