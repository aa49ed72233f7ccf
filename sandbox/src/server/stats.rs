//! Counters the daemon keeps since start-up (the `Stats` RPC, and `GET /metrics` in
//! Prometheus's text format on the HTTP endpoint). Lock-free: every request touches them.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use azr_proto::v1;

use crate::{
    histogram::{BOUNDS_US, DurationHistogram},
    item::{Outcome, Verdict},
};

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

/// What the worker pool reports at a scrape.
pub struct PoolGauges<'a> {
    pub workers: usize,
    pub busy: usize,
    pub queue_depth: usize,
    pub queue_wait: &'a DurationHistogram,
}

pub struct Stats {
    started: Instant,
    answers: [AtomicU64; 6],
    tasks: AtomicU64,
    in_flight_tasks: AtomicU64,
    verdicts: [AtomicU64; Verdict::ALL.len()],
    latency: DurationHistogram,
}

/// How an answer is named in the metrics, in `Answer`'s order.
const ANSWER_NAMES: [&str; 6] = [
    "ok",
    "invalid",
    "busy",
    "deadline_exceeded",
    "denied",
    "cancelled",
];

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            answers: Default::default(),
            tasks: AtomicU64::new(0),
            in_flight_tasks: AtomicU64::new(0),
            verdicts: Default::default(),
            latency: DurationHistogram::default(),
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
        self.latency.record(took);
    }

    /// The counters, and the worker pool's `pool`, in Prometheus's text exposition format
    /// (version 0.0.4).
    pub fn prometheus(&self, pool: &PoolGauges<'_>) -> String {
        use std::fmt::Write;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP azr_sandbox_{name} {help}");
            let _ = writeln!(out, "# TYPE azr_sandbox_{name} gauge");
            let _ = writeln!(out, "azr_sandbox_{name} {value}");
        };
        gauge(
            &mut out,
            "uptime_seconds",
            "Seconds since the daemon started.",
            self.started.elapsed().as_secs_f64().to_string(),
        );
        let gauges = [
            ("workers", "Worker threads.", pool.workers as u64),
            (
                "workers_busy",
                "Worker threads running a batch now.",
                pool.busy as u64,
            ),
            (
                "queue_depth",
                "Batches waiting for a worker.",
                pool.queue_depth as u64,
            ),
            (
                "tasks_in_flight",
                "Tasks queued or being run.",
                get(&self.in_flight_tasks),
            ),
        ];
        for (name, help, value) in gauges {
            gauge(&mut out, name, help, value.to_string());
        }
        let _ = writeln!(
            out,
            "# HELP azr_sandbox_requests_total Requests answered, by how."
        );
        let _ = writeln!(out, "# TYPE azr_sandbox_requests_total counter");
        for (name, n) in ANSWER_NAMES.iter().zip(&self.answers) {
            let _ = writeln!(
                out,
                "azr_sandbox_requests_total{{answer=\"{name}\"}} {}",
                get(n)
            );
        }
        let _ = writeln!(out, "# HELP azr_sandbox_tasks_total Tasks run, by verdict.");
        let _ = writeln!(out, "# TYPE azr_sandbox_tasks_total counter");
        for (verdict, n) in Verdict::ALL.iter().zip(&self.verdicts) {
            let _ = writeln!(
                out,
                "azr_sandbox_tasks_total{{verdict=\"{}\"}} {}",
                verdict.as_str(),
                get(n)
            );
        }
        self.latency.write_prometheus(
            &mut out,
            "azr_sandbox_request_duration_seconds",
            "Time to answer a request, from its arrival to its outcomes.",
        );
        pool.queue_wait.write_prometheus(
            &mut out,
            "azr_sandbox_queue_wait_seconds",
            "Time a batch waited in the queue for a worker.",
        );
        out
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
            latency_upper_bound_us: BOUNDS_US.to_vec(),
            latency_count: self.latency.counts(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_text_has_every_family_with_cumulative_buckets() {
        let stats = Stats::default();
        let ok = Outcome::host(Verdict::Ok, "", "");
        stats.outcomes(std::slice::from_ref(&ok), Duration::from_micros(300));
        stats.outcomes(std::slice::from_ref(&ok), Duration::from_secs(2));
        stats.answered(Answer::Ok);
        let waits = DurationHistogram::default();
        waits.record(Duration::from_millis(7));
        let text = stats.prometheus(&PoolGauges {
            workers: 2,
            busy: 1,
            queue_depth: 3,
            queue_wait: &waits,
        });
        for line in [
            "azr_sandbox_workers 2",
            "azr_sandbox_workers_busy 1",
            "azr_sandbox_queue_wait_seconds_bucket{le=\"0.01\"} 1",
            "azr_sandbox_queue_wait_seconds_count 1",
            "azr_sandbox_queue_depth 3",
            "azr_sandbox_requests_total{answer=\"ok\"} 1",
            "azr_sandbox_tasks_total{verdict=\"ok\"} 2",
            "azr_sandbox_request_duration_seconds_bucket{le=\"0.0005\"} 1",
            "azr_sandbox_request_duration_seconds_bucket{le=\"2.5\"} 2",
            "azr_sandbox_request_duration_seconds_bucket{le=\"+Inf\"} 2",
            "azr_sandbox_request_duration_seconds_count 2",
            "azr_sandbox_request_duration_seconds_sum 2.0003",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.ends_with('\n'));
    }

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
