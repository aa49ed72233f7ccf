//! An opt-in HTTP/1.1 front door that speaks SandboxFusion's API (`POST /run_code`,
//! `GET /v1/ping`), so that code that already scores with SandboxFusion (veRL's
//! `reward.sandbox_fusion.url`, its `sandbox_fusion` reward module) runs on this sandbox by
//! changing one URL.
//!
//! Requests are validated as SandboxFusion's server validates them (422 with FastAPI's
//! `{"detail": [...]}` for a missing or mistyped field, or a language SandboxFusion does not
//! know). Python only: a request for another of SandboxFusion's languages is answered
//! `SandboxError` with a message.
//! A `run_code` request becomes one stdin/stdout task ([`Item::Script`]) on the same queue,
//! workers, limits and seccomp filters as the gRPC side; `run_timeout` is the time limit
//! (up to `server.http_max_run_timeout_ms`, with fuel to match, so that a run ends by
//! time as SandboxFusion's do), `memory_limit_MB` lowers the memory cap, `files` are in the
//! program's working directory and `fetch_files` come back in the response's `files` (both
//! in the guest's memory: [`crate::files`]); `compile_timeout` is accepted and ignored
//! (nothing is compiled). A bad file path or base64 is answered as SandboxFusion answers an
//! exception in its runner: `SandboxError` with the reason. TCP has no peer
//! credentials: whoever reaches the port may run code in the sandbox. That is why the
//! listener is loopback-only unless the configuration says otherwise (SECURITY.md).
//!
//! A request body is read within [`HttpLimits`]: at most `max_request_bytes` (413), whole
//! within `http_body_timeout_ms` (408), and while all bodies being read stay within
//! `http_body_budget_bytes` (503, which clients retry); nothing is allocated up front from a
//! declared `Content-Length`.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use http::{Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Code;

use super::{
    service::Service,
    stats::{Answer, PoolGauges},
};
use crate::{
    config::ServerConfig,
    files::{FileLimits, Files},
    item::{Item, Outcome, OutputMatch, Verdict},
};

/// What bounds an HTTP request: its body, one by one in size and time and all together in
/// bytes held (so that many slow or unfinished uploads cannot take the daemon's memory), its
/// wait for room in the queue, and the run time it may ask for.
pub struct HttpLimits {
    /// Largest body of one request (413 past it).
    pub max_bytes: usize,
    /// The whole body must arrive within this (408 past it).
    pub timeout: Duration,
    /// Bytes of bodies being read, all connections together (503 when a body would pass it).
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    /// How long a request waits for room in a full queue before it is answered 504.
    pub queue_wait: Duration,
    /// The longest `run_timeout` a request may ask for, and the fuel per millisecond of it.
    max_run_timeout_ms: u64,
    fuel_per_ms: u64,
    /// Caps on a request's files.
    files: FileLimits,
}

impl HttpLimits {
    pub fn new(config: &ServerConfig) -> HttpLimits {
        let budget_bytes = config
            .http_body_budget_bytes
            .max(config.max_request_bytes)
            .min(Semaphore::MAX_PERMITS);
        HttpLimits {
            max_bytes: config.max_request_bytes,
            timeout: Duration::from_millis(config.http_body_timeout_ms.max(1)),
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            queue_wait: Duration::from_millis(config.http_queue_wait_ms),
            max_run_timeout_ms: config.http_max_run_timeout_ms,
            fuel_per_ms: config.http_fuel_per_ms,
            files: config.file_limits(),
        }
    }
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Slow,
    OverBudget,
    Broken(String),
}

/// Reads a request body within [`HttpLimits`]. The bytes held count against the shared
/// budget until the returned permit is dropped (after the body is parsed).
async fn read_body(
    body: Incoming,
    declared: Option<u64>,
    limits: &HttpLimits,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyError> {
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(BodyError::TooLarge);
    }
    let read = async {
        let mut body = body;
        let mut bytes = Vec::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if bytes.len() + data.len() > limits.max_bytes {
                return Err(BodyError::TooLarge);
            }
            let n = u32::try_from(data.len()).map_err(|_| BodyError::TooLarge)?;
            let permit = limits
                .budget
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| BodyError::OverBudget)?;
            match held.as_mut() {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            bytes.extend_from_slice(&data);
        }
        Ok((Bytes::from(bytes), held))
    };
    tokio::time::timeout(limits.timeout, read)
        .await
        .unwrap_or(Err(BodyError::Slow))
}

/// A valid `RunCodeRequest` (SandboxFusion `sandbox/server/sandbox_api.py`), as
/// [`validate`] reads it, with SandboxFusion's defaults filled in.
#[derive(Debug)]
pub struct RunCodeRequest {
    pub code: String,
    pub language: String,
    pub stdin: Option<String>,
    /// Seconds (default 10).
    pub run_timeout: f64,
    /// Megabytes; -1 (the default) for the daemon's limit.
    pub memory_limit_mb: i64,
    /// Accepted and ignored: nothing is compiled.
    pub compile_timeout: Option<f64>,
    /// Path → base64 content, in the request's order; `null` contents are skipped, as
    /// SandboxFusion skips them.
    pub files: Vec<(String, String)>,
    pub fetch_files: Vec<String>,
}

/// `RunCodeResponse`.
#[derive(Debug, Serialize)]
pub struct RunCodeResponse {
    /// `Success`, `Failed` (non-zero exit status or time limit) or `SandboxError`.
    pub status: &'static str,
    pub message: String,
    pub compile_result: Option<CommandRunResult>,
    pub run_result: Option<CommandRunResult>,
    pub executor_pod_name: Option<String>,
    pub files: serde_json::Map<String, serde_json::Value>,
}

/// `CommandRunResult`.
#[derive(Debug, Serialize)]
pub struct CommandRunResult {
    /// `Finished`, `Error` (the sandbox failed) or `TimeLimitExceeded`.
    pub status: &'static str,
    pub execution_time: Option<f64>,
    pub return_code: Option<i32>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

impl RunCodeResponse {
    fn sandbox_error(message: impl Into<String>) -> Self {
        RunCodeResponse {
            status: "SandboxError",
            message: message.into(),
            compile_result: None,
            run_result: None,
            executor_pod_name: None,
            files: serde_json::Map::new(),
        }
    }

    /// What a SandboxFusion Python runner reports for a process that ended this way.
    pub fn from_outcome(o: Outcome) -> Self {
        let seconds = Some(o.micros as f64 / 1e6);
        let error_line = o.error_line();
        let mut stderr = o.stderr;
        // How a process that CPython ran would have ended where the sandbox stopped it.
        let (status, return_code) = match o.verdict {
            Verdict::Ok | Verdict::Error => ("Finished", Some(o.exit_code.unwrap_or(1))),
            Verdict::Timeout | Verdict::OutOfFuel => ("TimeLimitExceeded", None),
            Verdict::OutOfMemory | Verdict::OutputLimit | Verdict::Fault | Verdict::Rejected => {
                if let Some(line) = error_line {
                    if !stderr.is_empty() && !stderr.ends_with('\n') {
                        stderr.push('\n');
                    }
                    stderr.push_str(&line);
                    stderr.push('\n');
                }
                ("Finished", Some(1))
            }
            Verdict::Skipped => {
                return RunCodeResponse::sandbox_error("the request was not run");
            }
        };
        let files = o
            .files
            .into_iter()
            .map(|f| (f.path, serde_json::Value::String(f.base64)))
            .collect();
        let run_status = if status == "Finished" && return_code == Some(0) {
            "Success"
        } else {
            "Failed"
        };
        RunCodeResponse {
            status: run_status,
            message: String::new(),
            compile_result: None,
            run_result: Some(CommandRunResult {
                status,
                execution_time: seconds,
                return_code,
                stdout: Some(o.stdout),
                stderr: Some(stderr),
            }),
            executor_pod_name: None,
            files,
        }
    }
}

type Body = Full<Bytes>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// FastAPI's shape for errors, which SandboxFusion's clients already log.
fn detail(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "detail": message }))
}

/// The languages SandboxFusion's `RunCodeRequest.language` accepts (`runners/types.py`):
/// another is refused with 422, as its server refuses it; one of these but Python is
/// answered `SandboxError` (this sandbox runs Python only).
const SANDBOX_FUSION_LANGUAGES: &[&str] = &[
    "python",
    "cpp",
    "nodejs",
    "go",
    "go_test",
    "java",
    "php",
    "csharp",
    "bash",
    "typescript",
    "sql",
    "rust",
    "cuda",
    "lua",
    "R",
    "perl",
    "D_ut",
    "ruby",
    "scala",
    "julia",
    "pytest",
    "junit",
    "kotlin_script",
    "jest",
    "verilog",
    "python_gpu",
    "lean",
    "swift",
    "racket",
];

/// One validation error in the shape FastAPI answers 422 with (`{"detail": [...]}`):
/// `type`, `loc` (`["body", field]`), `msg`, `input`.
fn invalid(
    kind: &str,
    field: Option<&str>,
    msg: String,
    input: &serde_json::Value,
) -> serde_json::Value {
    let mut loc = vec![serde_json::json!("body")];
    if let Some(field) = field {
        loc.push(serde_json::json!(field));
    }
    serde_json::json!({ "type": kind, "loc": loc, "msg": msg, "input": input })
}

/// [`invalid`] at a location inside a field (`["body", "files", "a.txt"]`).
fn invalid_at(
    kind: &str,
    loc: serde_json::Value,
    msg: &str,
    input: &serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({ "type": kind, "loc": loc, "msg": msg, "input": input })
}

/// Reads a `RunCodeRequest` as SandboxFusion's server validates it: every field's type
/// checked (numbers may come as numeric strings, as pydantic accepts them), `code` and
/// `language` required, `language` one of SandboxFusion's; all errors at once.
fn validate(body: &[u8]) -> Result<RunCodeRequest, Vec<serde_json::Value>> {
    use serde_json::Value;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        vec![invalid(
            "json_invalid",
            None,
            format!("JSON decode error: {e}"),
            &Value::Null,
        )]
    })?;
    let Value::Object(fields) = &value else {
        return Err(vec![invalid(
            "model_attributes_type",
            None,
            "Input should be a valid dictionary or object to extract fields from".into(),
            &value,
        )]);
    };
    let mut errors = Vec::new();
    let text = |name: &str, required: bool, errors: &mut Vec<Value>| -> Option<String> {
        match fields.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) if !required => None,
            None if !required => None,
            None => {
                errors.push(invalid(
                    "missing",
                    Some(name),
                    "Field required".into(),
                    &value,
                ));
                None
            }
            Some(other) => {
                errors.push(invalid(
                    "string_type",
                    Some(name),
                    "Input should be a valid string".into(),
                    other,
                ));
                None
            }
        }
    };
    let number = |name: &str, default: f64, errors: &mut Vec<Value>| -> f64 {
        match fields.get(name) {
            None => default,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(default),
            Some(Value::String(s)) if s.trim().parse::<f64>().is_ok() => {
                s.trim().parse().unwrap_or(default)
            }
            Some(other) => {
                errors.push(invalid(
                    "float_parsing",
                    Some(name),
                    "Input should be a valid number".into(),
                    other,
                ));
                default
            }
        }
    };
    let code = text("code", true, &mut errors);
    let language = text("language", true, &mut errors);
    if let Some(l) = &language
        && !SANDBOX_FUSION_LANGUAGES.contains(&l.as_str())
    {
        errors.push(invalid(
            "literal_error",
            Some("language"),
            format!(
                "Input should be {}",
                SANDBOX_FUSION_LANGUAGES
                    .iter()
                    .map(|l| format!("'{l}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &Value::String(l.clone()),
        ));
    }
    let stdin = text("stdin", false, &mut errors);
    let run_timeout = number("run_timeout", 10.0, &mut errors);
    let compile_timeout = number("compile_timeout", 10.0, &mut errors);
    let memory_limit_mb = match fields.get("memory_limit_MB") {
        None => -1,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or(-1),
        Some(other) => {
            errors.push(invalid(
                "int_parsing",
                Some("memory_limit_MB"),
                "Input should be a valid integer".into(),
                other,
            ));
            -1
        }
    };
    let mut files = Vec::new();
    match fields.get("files") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (path, content) in map {
                match content {
                    Value::String(text) => files.push((path.clone(), text.clone())),
                    Value::Null => {}
                    other => errors.push(invalid_at(
                        "string_type",
                        serde_json::json!(["body", "files", path]),
                        "Input should be a valid string",
                        other,
                    )),
                }
            }
        }
        Some(other) => errors.push(invalid(
            "dict_type",
            Some("files"),
            "Input should be a valid dictionary".into(),
            other,
        )),
    }
    let mut fetch_files = Vec::new();
    match fields.get("fetch_files") {
        None | Some(Value::Null) => {}
        Some(Value::Array(paths)) => {
            for (i, path) in paths.iter().enumerate() {
                match path {
                    Value::String(p) => fetch_files.push(p.clone()),
                    other => errors.push(invalid_at(
                        "string_type",
                        serde_json::json!(["body", "fetch_files", i]),
                        "Input should be a valid string",
                        other,
                    )),
                }
            }
        }
        Some(other) => errors.push(invalid(
            "list_type",
            Some("fetch_files"),
            "Input should be a valid list".into(),
            other,
        )),
    }
    match (code, language) {
        (Some(code), Some(language)) if errors.is_empty() => Ok(RunCodeRequest {
            code,
            language,
            stdin,
            run_timeout,
            memory_limit_mb,
            compile_timeout: Some(compile_timeout),
            files,
            fetch_files,
        }),
        _ => Err(errors),
    }
}

/// Answers one HTTP request.
pub async fn handle(
    service: &Service,
    request: http::Request<Incoming>,
    limits: &HttpLimits,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    Ok(match (method, path.as_str()) {
        (Method::GET, "/v1/ping") => json(StatusCode::OK, &"pong"),
        (Method::GET, "/metrics") => Response::builder()
            .status(StatusCode::OK)
            .header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(Full::new(Bytes::from(service.stats.prometheus(
                &PoolGauges {
                    workers: service.sandbox.workers(),
                    busy: service.sandbox.busy_workers(),
                    queue_depth: service.sandbox.queued(),
                    queue_wait: service.sandbox.queue_waits(),
                },
            ))))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        (Method::POST, "/run_code") => {
            let declared = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let (body, held) = match read_body(request.into_body(), declared, limits).await {
                Ok(read) => read,
                Err(e) => {
                    let (status, message) = match e {
                        BodyError::TooLarge => (
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("request body larger than {} bytes", limits.max_bytes),
                        ),
                        BodyError::Slow => (
                            StatusCode::REQUEST_TIMEOUT,
                            format!(
                                "request body not received within {} ms",
                                limits.timeout.as_millis()
                            ),
                        ),
                        BodyError::OverBudget => {
                            service.stats.answered(Answer::Busy);
                            return Ok(detail(
                                StatusCode::SERVICE_UNAVAILABLE,
                                &format!(
                                    "request bodies being received exceed the daemon's \
                                     budget of {} bytes; retry",
                                    limits.budget_bytes
                                ),
                            ));
                        }
                        BodyError::Broken(e) => (
                            StatusCode::BAD_REQUEST,
                            format!("reading the request body: {e}"),
                        ),
                    };
                    service.stats.answered(Answer::Invalid);
                    return Ok(detail(status, &message));
                }
            };
            let parsed = validate(&body);
            drop((body, held));
            match parsed {
                Ok(run) => run_code(service, run, limits).await,
                Err(errors) => {
                    service.stats.answered(Answer::Invalid);
                    json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &serde_json::json!({ "detail": errors }),
                    )
                }
            }
        }
        (_, "/v1/ping" | "/run_code" | "/metrics") => {
            detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
        _ => detail(StatusCode::NOT_FOUND, "Not Found"),
    })
}

async fn run_code(service: &Service, run: RunCodeRequest, http: &HttpLimits) -> Response<Body> {
    if run.language != "python" {
        return json(
            StatusCode::OK,
            &RunCodeResponse::sandbox_error(format!(
                "language {:?} is not supported: azr-sandbox runs Python only",
                run.language
            )),
        );
    }
    // The time the request asks for (SandboxFusion's default: 10 s), within the operator's
    // ceiling, with fuel to match: the run ends by time, as SandboxFusion's does.
    let asked = if run.run_timeout.is_finite() && run.run_timeout > 0.0 {
        (run.run_timeout * 1000.0).ceil().max(1.0) as u64
    } else {
        service.bounds.limits.timeout_ms
    };
    let mut limits =
        service
            .bounds
            .limits
            .for_run_time(asked, http.max_run_timeout_ms, http.fuel_per_ms);
    if run.memory_limit_mb > 0 {
        let bytes = (run.memory_limit_mb as u64).saturating_mul(1 << 20);
        limits.memory_bytes = limits.memory_bytes.min(bytes);
    }
    // SandboxFusion writes every entry in order, so a later entry for a path wins.
    let mut sent: Vec<(&str, &str)> = Vec::with_capacity(run.files.len());
    for (path, content) in &run.files {
        sent.retain(|(p, _)| *p != path.as_str());
        sent.push((path.as_str(), content.as_str()));
    }
    let files = match Files::from_base64(sent, run.fetch_files.clone(), http.files) {
        Ok(files) => Arc::new(files),
        Err(e) => {
            return json(
                StatusCode::OK,
                &RunCodeResponse::sandbox_error(e.to_string()),
            );
        }
    };
    let item = Item::Script {
        program: run.code,
        imports: Vec::new(),
        stdin: run.stdin.unwrap_or_default(),
        expected_stdout: None,
        output_match: OutputMatch::default(),
        files,
    };
    let rules = service.bounds.rules.clone();
    let patience = Instant::now() + http.queue_wait;
    loop {
        let answer = service
            .execute_items(
                vec![item.clone()],
                limits.clone(),
                rules.clone(),
                false,
                None,
            )
            .await;
        match answer {
            Ok(mut outcomes) => {
                return match outcomes.pop() {
                    Some(o) => json(StatusCode::OK, &RunCodeResponse::from_outcome(o)),
                    None => json(
                        StatusCode::OK,
                        &RunCodeResponse::sandbox_error("the sandbox returned no outcome"),
                    ),
                };
            }
            // HTTP clients send one case per request: wait for room rather than refuse, up
            // to `http_queue_wait_ms`, then answer 504, which SandboxFusion's clients (veRL's
            // among them) retry, well before their own deadline passes.
            Err(status)
                if status.code() == Code::ResourceExhausted && Instant::now() < patience =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => {
                let code = match status.code() {
                    Code::ResourceExhausted => StatusCode::GATEWAY_TIMEOUT,
                    Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                return detail(code, status.message());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(verdict: Verdict, exit_code: Option<i32>) -> Outcome {
        Outcome {
            stdout: "out\n".into(),
            stderr: "err\n".into(),
            exit_code,
            micros: 1_500,
            ..Outcome::host(verdict, "X", "y")
        }
    }

    #[test]
    fn outcomes_read_as_a_sandboxfusion_process_result() {
        let ok = RunCodeResponse::from_outcome(outcome(Verdict::Ok, Some(0)));
        assert_eq!(ok.status, "Success");
        let run = ok.run_result.expect("run result");
        assert_eq!((run.status, run.return_code), ("Finished", Some(0)));
        assert_eq!(run.stdout.as_deref(), Some("out\n"));
        assert_eq!(run.execution_time, Some(0.0015));

        let exited = RunCodeResponse::from_outcome(outcome(Verdict::Error, Some(3)));
        assert_eq!(exited.status, "Failed");
        assert_eq!(exited.run_result.and_then(|r| r.return_code), Some(3));

        let slow = RunCodeResponse::from_outcome(outcome(Verdict::Timeout, None));
        assert_eq!(slow.status, "Failed");
        let run = slow.run_result.expect("run result");
        assert_eq!((run.status, run.return_code), ("TimeLimitExceeded", None));

        let big = RunCodeResponse::from_outcome(outcome(Verdict::OutOfMemory, None));
        let run = big.run_result.expect("run result");
        assert_eq!(run.return_code, Some(1));
        assert!(run.stderr.unwrap_or_default().ends_with("X: y\n"));
    }

    #[test]
    fn requests_take_sandboxfusion_defaults_and_ignore_what_cannot_apply() {
        let Ok(run) = validate(
            br#"{"code": "print(1)", "language": "python", "files": {"a.txt": null},
                "fetch_files": [], "compile_timeout": 3}"#,
        ) else {
            panic!("a valid request refused");
        };
        assert_eq!(run.run_timeout, 10.0);
        assert_eq!(run.memory_limit_mb, -1);
        assert!(run.stdin.is_none());
        let Ok(run) = validate(br#"{"code": "", "language": "cpp", "run_timeout": "2.5"}"#) else {
            panic!("a numeric string is a number, as pydantic reads it");
        };
        assert_eq!((run.language.as_str(), run.run_timeout), ("cpp", 2.5));
    }

    #[test]
    fn invalid_requests_list_every_error_as_fastapi_does() {
        let errors = |body: &[u8]| match validate(body) {
            Ok(_) => panic!("accepted: {}", String::from_utf8_lossy(body)),
            Err(errors) => errors,
        };
        let e = errors(br#"{"language": "cobol", "run_timeout": "soon", "memory_limit_MB": 1.5}"#);
        let kinds: Vec<(&str, &str)> = e
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or(""),
                    e["loc"][1].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("missing", "code"),
                ("literal_error", "language"),
                ("float_parsing", "run_timeout"),
                ("int_parsing", "memory_limit_MB"),
            ]
        );
        assert_eq!(e[0]["loc"][0], "body");
        assert_eq!(errors(b"[1]")[0]["type"], "model_attributes_type");
        assert_eq!(errors(b"{")[0]["type"], "json_invalid");
        // SandboxFusion's names only: `python3` is not one of them.
        assert_eq!(
            errors(br#"{"code": "", "language": "python3"}"#)[0]["type"],
            "literal_error"
        );
        assert_eq!(
            errors(br#"{"code": 1, "language": "python", "files": []}"#)
                .iter()
                .map(|e| e["type"].as_str().unwrap_or(""))
                .collect::<Vec<_>>(),
            ["string_type", "dict_type"]
        );
    }
}
