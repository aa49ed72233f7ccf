//! The `azr.sandbox.v1.Sandbox` service: checks a request, queues it on the worker pool
//! without waiting for room, and answers when the batch is done or the deadline passes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use azr_proto::v1::{self, sandbox_server};
use tonic::{Request, Response, Status};

use super::{
    convert::{self, RequestBounds},
    stats::{Answer, Stats},
};
use crate::{
    engine::RunControl,
    item::{Item, Outcome},
    limits::{Limits, Rules},
    pool::{Batch, Sandbox, SubmitError},
};

/// What every RPC handler shares.
pub struct Service {
    pub sandbox: Sandbox,
    pub bounds: RequestBounds,
    pub stats: Arc<Stats>,
    pub draining: Arc<AtomicBool>,
    pub guest: String,
    pub queue_capacity: usize,
    pub max_request_bytes: usize,
}

/// The deadline a client set with the `grpc-timeout` header, if any.
fn deadline<T>(request: &Request<T>, now: Instant) -> Result<Option<Instant>, Status> {
    let Some(value) = request.metadata().get("grpc-timeout") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Status::invalid_argument("grpc-timeout is not ASCII"))?;
    parse_grpc_timeout(text)
        .map(|d| Some(now + d))
        .ok_or_else(|| Status::invalid_argument(format!("grpc-timeout {text:?} is malformed")))
}

/// `grpc-timeout`: 1 to 8 digits and a unit (H, M, S, m, u, n), per the gRPC HTTP/2 spec.
pub fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at_checked(text.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl Service {
    fn bad(&self, status: Status) -> Status {
        self.stats.answered(Answer::Invalid);
        status
    }

    /// Queues `items` and waits for their outcomes (or the deadline).
    async fn execute<T>(
        &self,
        request: &Request<T>,
        items: Vec<Item>,
        limits: Limits,
        rules: Rules,
        stop_on_failure: bool,
    ) -> Result<Vec<v1::Outcome>, Status> {
        let deadline = deadline(request, Instant::now()).map_err(|s| self.bad(s))?;
        let outcomes = self
            .execute_items(items, limits, rules, stop_on_failure, deadline)
            .await?;
        Ok(outcomes.into_iter().map(convert::outcome).collect())
    }

    /// Queues `items` and waits for their outcomes (or `deadline`): what every front end
    /// (gRPC, HTTP) does with a checked request.
    pub async fn execute_items(
        &self,
        items: Vec<Item>,
        limits: Limits,
        rules: Rules,
        stop_on_failure: bool,
        deadline: Option<Instant>,
    ) -> Result<Vec<Outcome>, Status> {
        let started = Instant::now();
        if self.draining.load(Ordering::Relaxed) {
            return Err(Status::unavailable("the sandbox daemon is shutting down"));
        }
        let n = items.len();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let batch = Batch {
            items,
            limits,
            rules,
            control: RunControl {
                stop_on_failure,
                deadline,
            },
        };
        let stats = self.stats.clone();
        stats.tasks_started(n);
        let submitted = self.sandbox.try_submit(batch, move |outcomes| {
            stats.tasks_ended(n);
            stats.outcomes(&outcomes, started.elapsed());
            let _ = tx.send(outcomes);
        });
        match submitted {
            Ok(()) => {}
            Err(SubmitError::QueueFull(waiting)) => {
                self.stats.tasks_ended(n);
                self.stats.answered(Answer::Busy);
                return Err(Status::resource_exhausted(format!(
                    "the sandbox queue is full ({waiting} batches waiting); retry with back-off"
                )));
            }
            Err(SubmitError::Closed) => {
                self.stats.tasks_ended(n);
                return Err(Status::unavailable("the sandbox daemon is shutting down"));
            }
        }
        // Counts the request as cancelled if the connection drops this future first.
        let mut unanswered = Unanswered(Some(&self.stats));
        let answer = match deadline {
            Some(at) => match tokio::time::timeout_at(at.into(), rx).await {
                Ok(answer) => answer,
                Err(_) => {
                    unanswered.0 = None;
                    self.stats.answered(Answer::DeadlineExceeded);
                    return Err(Status::deadline_exceeded(format!(
                        "the request's deadline passed after {} ms",
                        started.elapsed().as_millis()
                    )));
                }
            },
            None => rx.await,
        };
        unanswered.0 = None;
        let outcomes =
            answer.map_err(|_| Status::internal("a sandbox worker dropped the request"))?;
        // The engine cuts work at the deadline, so outcomes can arrive just after it: the
        // caller asked for an answer by then, and a cut answer is not one.
        if deadline.is_some_and(|at| Instant::now() >= at) {
            self.stats.answered(Answer::DeadlineExceeded);
            return Err(Status::deadline_exceeded(format!(
                "the request's deadline passed after {} ms",
                started.elapsed().as_millis()
            )));
        }
        self.stats.answered(Answer::Ok);
        Ok(outcomes)
    }

    async fn single<T>(
        &self,
        request: &Request<T>,
        item: Result<Item, Status>,
        options: Option<&v1::Options>,
    ) -> Result<Response<v1::Outcome>, Status> {
        let item = item.map_err(|s| self.bad(s))?;
        let (limits, rules) = convert::options(options, &self.bounds).map_err(|s| self.bad(s))?;
        let mut outcomes = self
            .execute(request, vec![item], limits, rules, false)
            .await?;
        let outcome = outcomes
            .pop()
            .ok_or_else(|| Status::internal("the sandbox returned no outcome"))?;
        Ok(Response::new(outcome))
    }

    async fn many<T>(
        &self,
        request: &Request<T>,
        items: Result<Vec<Item>, Status>,
        options: Option<&v1::Options>,
        stop_on_failure: bool,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        let items = items.map_err(|s| self.bad(s))?;
        let (limits, rules) = convert::options(options, &self.bounds).map_err(|s| self.bad(s))?;
        let n = items.len();
        let outcomes = self
            .execute(request, items, limits, rules, stop_on_failure)
            .await?;
        if outcomes.len() != n {
            return Err(Status::internal(format!(
                "the sandbox answered {} of {n} tasks",
                outcomes.len()
            )));
        }
        Ok(Response::new(v1::BatchResponse { outcomes }))
    }
}

/// Records a request whose handler was dropped before it answered (the client reset the
/// stream: it gave up or its deadline passed first).
struct Unanswered<'a>(Option<&'a Stats>);

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(stats) = self.0 {
            stats.answered(Answer::Cancelled);
        }
    }
}

#[tonic::async_trait]
impl sandbox_server::Sandbox for Service {
    async fn run(&self, request: Request<v1::RunRequest>) -> Result<Response<v1::Outcome>, Status> {
        let body = request.get_ref();
        let item = convert::single(body.task.as_ref(), &self.bounds, convert::run_item);
        self.single(&request, item, body.options.as_ref()).await
    }

    async fn validate(
        &self,
        request: Request<v1::ValidateRequest>,
    ) -> Result<Response<v1::Outcome>, Status> {
        let body = request.get_ref();
        let item = convert::single(body.task.as_ref(), &self.bounds, convert::validate_item);
        self.single(&request, item, body.options.as_ref()).await
    }

    async fn check(
        &self,
        request: Request<v1::CheckRequest>,
    ) -> Result<Response<v1::Outcome>, Status> {
        let body = request.get_ref();
        let item = convert::single(body.task.as_ref(), &self.bounds, convert::check_item);
        self.single(&request, item, body.options.as_ref()).await
    }

    async fn run_batch(
        &self,
        request: Request<v1::RunBatchRequest>,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        let body = request.get_ref();
        let items = convert::batch(
            &body.tasks,
            body.program.as_ref(),
            &self.bounds,
            convert::run_item,
        );
        self.many(&request, items, body.options.as_ref(), body.stop_on_failure)
            .await
    }

    async fn validate_batch(
        &self,
        request: Request<v1::ValidateBatchRequest>,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        let body = request.get_ref();
        let items = convert::batch(
            &body.tasks,
            body.program.as_ref(),
            &self.bounds,
            convert::validate_item,
        );
        self.many(&request, items, body.options.as_ref(), body.stop_on_failure)
            .await
    }

    async fn check_batch(
        &self,
        request: Request<v1::CheckBatchRequest>,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        let body = request.get_ref();
        let items = convert::batch(
            &body.tasks,
            body.program.as_ref(),
            &self.bounds,
            convert::check_item,
        );
        self.many(&request, items, body.options.as_ref(), body.stop_on_failure)
            .await
    }

    async fn test(
        &self,
        request: Request<v1::TestRequest>,
    ) -> Result<Response<v1::Outcome>, Status> {
        let body = request.get_ref();
        let item = convert::single(body.task.as_ref(), &self.bounds, convert::test_item);
        self.single(&request, item, body.options.as_ref()).await
    }

    async fn test_batch(
        &self,
        request: Request<v1::TestBatchRequest>,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        let body = request.get_ref();
        let items = convert::batch(
            &body.tasks,
            body.program.as_ref(),
            &self.bounds,
            convert::test_item,
        );
        self.many(&request, items, body.options.as_ref(), body.stop_on_failure)
            .await
    }

    async fn health(
        &self,
        _request: Request<v1::HealthRequest>,
    ) -> Result<Response<v1::HealthResponse>, Status> {
        let status = if self.draining.load(Ordering::Relaxed) {
            "draining"
        } else {
            "serving"
        };
        Ok(Response::new(v1::HealthResponse {
            status: status.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            guest: self.guest.clone(),
            workers: self.sandbox.workers() as u32,
            queue_capacity: self.queue_capacity as u32,
            limits: Some(convert::limits_message(&self.bounds.limits)),
            max_request_bytes: self.max_request_bytes as u64,
            max_batch_tasks: self.bounds.max_batch_tasks as u32,
            files_max_count: self.bounds.files.max_count as u32,
            files_max_bytes: self.bounds.files.max_bytes,
        }))
    }

    async fn stats(
        &self,
        _request: Request<v1::StatsRequest>,
    ) -> Result<Response<v1::StatsResponse>, Status> {
        Ok(Response::new(self.stats.snapshot(self.sandbox.queued())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_by_the_spec() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("123456789m"), None, "at most 8 digits");
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
    }
}
