//! The worker pool's job queue: bounded, and it hands work to the worker that went idle last.
//!
//! A plain multi-consumer channel wakes the worker that has waited longest, so consecutive
//! requests alternate between workers and each finds its instance's pages and the CPU's
//! caches cold; at low load that costs a quarter of a trivial call's latency. Waking the most
//! recently idle worker (last in, first out) keeps one worker hot while the others sleep,
//! and a busy pool behaves exactly like a FIFO queue.

use std::{
    collections::VecDeque,
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
};

/// Why a job was not queued; the job comes back.
pub enum PushError<T> {
    Full(T),
    Closed(T),
}

pub struct JobQueue<T> {
    state: Mutex<State<T>>,
    /// One per worker: each waits on its own, so that the queue chooses whom to wake.
    wake: Vec<Condvar>,
    /// Signalled when a job leaves the queue (for [`JobQueue::push_wait`]).
    space: Condvar,
    capacity: usize,
}

struct State<T> {
    jobs: VecDeque<T>,
    /// Idle workers, the most recently idle last.
    idle: Vec<usize>,
    closed: bool,
}

impl<T> JobQueue<T> {
    /// A queue for `workers` workers holding at most `capacity` waiting jobs.
    pub fn new(workers: usize, capacity: usize) -> Self {
        JobQueue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: Vec::with_capacity(workers),
                closed: false,
            }),
            wake: (0..workers).map(|_| Condvar::new()).collect(),
            space: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the state inconsistent (every update
        // is a single push or pop), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`, or refuses at once when the queue is full or closed.
    pub fn try_push(&self, job: T) -> Result<(), PushError<T>> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed(job));
        }
        if state.jobs.len() >= self.capacity {
            return Err(PushError::Full(job));
        }
        self.push_locked(&mut state, job);
        Ok(())
    }

    /// Queues `job`, waiting for room; refuses only when the queue is closed.
    pub fn push_wait(&self, job: T) -> Result<(), T> {
        let mut state = self.lock();
        while !state.closed && state.jobs.len() >= self.capacity {
            state = self
                .space
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            return Err(job);
        }
        self.push_locked(&mut state, job);
        Ok(())
    }

    fn push_locked(&self, state: &mut State<T>, job: T) {
        state.jobs.push_back(job);
        if let Some(worker) = state.idle.pop() {
            self.wake[worker].notify_one();
        }
    }

    /// The next job for `worker`, waiting for one; `None` once the queue is closed and
    /// empty (jobs queued before closing are still handed out).
    pub fn pop(&self, worker: usize) -> Option<T> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                self.space.notify_one();
                return Some(job);
            }
            if state.closed {
                return None;
            }
            if !state.idle.contains(&worker) {
                state.idle.push(worker);
            }
            state = self.wake[worker]
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Says that `worker` is about to finish its job and take the next one, before it hands
    /// its answer back: a caller that answers with a new job at once then gets this worker
    /// (hot) rather than waking a sleeping one. Does nothing while jobs are waiting (the
    /// worker takes one of them).
    pub fn finishing(&self, worker: usize) {
        let mut state = self.lock();
        if state.jobs.is_empty() && !state.closed && !state.idle.contains(&worker) {
            state.idle.push(worker);
        }
    }

    /// Refuses new jobs and wakes every worker, so that they finish the queue and exit.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.idle.clear();
        drop(state);
        for condvar in &self.wake {
            condvar.notify_all();
        }
        self.space.notify_all();
    }

    /// Jobs waiting for a worker.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread, time::Duration};

    use super::*;

    #[test]
    fn the_most_recently_idle_worker_gets_the_next_job() {
        let queue = Arc::new(JobQueue::<u32>::new(2, 8));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut handles = Vec::new();
        for worker in 0..2 {
            let queue = queue.clone();
            let tx = tx.clone();
            handles.push(thread::spawn(move || {
                while let Some(job) = queue.pop(worker) {
                    tx.send((worker, job)).unwrap();
                }
            }));
        }
        // Let worker 0 go idle first, then worker 1.
        thread::sleep(Duration::from_millis(50));
        let first_idle = queue.lock().idle.clone();
        assert_eq!(first_idle.len(), 2);
        let mut served = Vec::new();
        for job in 0..6 {
            assert!(queue.try_push(job).is_ok());
            served.push(rx.recv().unwrap().0);
            thread::sleep(Duration::from_millis(5));
        }
        // Every job went to the same worker: the one that went idle last each time.
        assert!(served.iter().all(|&w| w == served[0]), "{served:?}");
        queue.close();
        for handle in handles {
            handle.join().unwrap();
        }
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_a_closed_one_drains_then_ends() {
        let queue = JobQueue::<u32>::new(1, 2);
        assert!(queue.try_push(1).is_ok());
        assert!(queue.try_push(2).is_ok());
        assert!(matches!(queue.try_push(3), Err(PushError::Full(3))));
        queue.close();
        assert!(matches!(queue.try_push(4), Err(PushError::Closed(4))));
        assert_eq!(queue.pop(0), Some(1));
        assert_eq!(queue.pop(0), Some(2));
        assert_eq!(queue.pop(0), None);
    }
}
