//! Counters the daemon keeps since start-up (the `Stats` RPC). Lock-free: every request
//! touches them.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use azr_proto::v1;

use crate::item::{Outcome, Verdict};

/// Upper bounds of the latency histogram, in microseconds.
const LATENCY_BOUNDS_US: [u64; 18] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    u64::MAX,
];

/// How an RPC was answered.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Ok,
    Invalid,
    Busy,
    DeadlineExceeded,
    Denied,
    Cancelled,
}

pub struct Stats {
    started: Instant,
    answers: [AtomicU64; 6],
    tasks: AtomicU64,
    in_flight_tasks: AtomicU64,
    verdicts: [AtomicU64; Verdict::ALL.len()],
    latency: [AtomicU64; LATENCY_BOUNDS_US.len()],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            answers: Default::default(),
            tasks: AtomicU64::new(0),
            in_flight_tasks: AtomicU64::new(0),
            verdicts: Default::default(),
            latency: Default::default(),
        }
    }
}

impl Stats {
    pub fn answered(&self, answer: Answer) {
        self.answers[answer as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn tasks_started(&self, n: usize) {
        self.in_flight_tasks.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn tasks_ended(&self, n: usize) {
        self.in_flight_tasks.fetch_sub(n as u64, Ordering::Relaxed);
    }

    pub fn outcomes(&self, outcomes: &[Outcome], took: Duration) {
        self.tasks
            .fetch_add(outcomes.len() as u64, Ordering::Relaxed);
        for o in outcomes {
            let i = Verdict::ALL
                .iter()
                .position(|v| *v == o.verdict)
                .unwrap_or(0);
            self.verdicts[i].fetch_add(1, Ordering::Relaxed);
        }
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(LATENCY_BOUNDS_US.len() - 1);
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, queue_depth: usize) -> v1::StatsResponse {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        v1::StatsResponse {
            uptime_ms: self.started.elapsed().as_millis() as u64,
            queue_depth: queue_depth as u32,
            in_flight_tasks: get(&self.in_flight_tasks) as u32,
            requests_ok: get(&self.answers[Answer::Ok as usize]),
            requests_invalid: get(&self.answers[Answer::Invalid as usize]),
            requests_rejected_busy: get(&self.answers[Answer::Busy as usize]),
            requests_deadline_exceeded: get(&self.answers[Answer::DeadlineExceeded as usize]),
            requests_denied: get(&self.answers[Answer::Denied as usize]),
            requests_cancelled: get(&self.answers[Answer::Cancelled as usize]),
            tasks: get(&self.tasks),
            verdicts: Verdict::ALL
                .iter()
                .zip(&self.verdicts)
                .map(|(v, n)| (v.as_str().to_owned(), get(n)))
                .collect(),
            latency_upper_bound_us: LATENCY_BOUNDS_US.to_vec(),
            latency_count: self.latency.iter().map(get).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_that_holds_them() {
        let stats = Stats::default();
        let ok = Outcome::host(Verdict::Ok, "", "");
        stats.outcomes(std::slice::from_ref(&ok), Duration::from_micros(100));
        stats.outcomes(std::slice::from_ref(&ok), Duration::from_micros(101));
        stats.outcomes(&[], Duration::from_secs(3600));
        let s = stats.snapshot(0);
        assert_eq!(s.latency_count[0], 1);
        assert_eq!(s.latency_count[1], 1);
        assert_eq!(*s.latency_count.last().expect("buckets"), 1);
        assert_eq!(s.tasks, 2);
        assert_eq!(s.verdicts["ok"], 2);
    }
}
