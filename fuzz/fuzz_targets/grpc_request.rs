//! The daemon's request handling on arbitrary bytes, without a socket.
//!
//! Input: the first byte picks a request message of `azr.sandbox.v1`, the rest is decoded as
//! that message with prost (what tonic does with a request body). Whatever decodes goes
//! through the same checks and conversions the server runs before queueing
//! (`server::convert`): options with limits capping, and single or batch task conversion.
//! Invariants: no panic; every accepted request yields one item per task; applied limits
//! never exceed the server's cap and are never zero; every refusal is `INVALID_ARGUMENT`
//! with a message.

#![no_main]

use azr_proto::v1;
use azr_sandbox::{
    Item, Limits, Rules,
    server::convert::{self, RequestBounds},
};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::{Code, Status};

fn bounds() -> RequestBounds {
    RequestBounds {
        limits: Limits::default(),
        rules: Rules::default(),
        max_batch_tasks: 64,
        max_expanded_bytes: 1 << 20,
        files: azr_sandbox::files::FileLimits::default(),
    }
}

fn refused(status: &Status) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(!status.message().is_empty());
}

fn options(o: Option<&v1::Options>, b: &RequestBounds) {
    match convert::options(o, b) {
        Ok((limits, _rules)) => {
            let cap = &b.limits;
            assert!(limits.fuel > 0 && limits.fuel <= cap.fuel);
            assert!(limits.timeout_ms > 0 && limits.timeout_ms <= cap.timeout_ms);
            assert!(limits.memory_bytes > 0 && limits.memory_bytes <= cap.memory_bytes);
            assert!(limits.stdout_chars > 0 && limits.stdout_chars <= cap.stdout_chars);
            assert!(limits.value_chars > 0 && limits.value_chars <= cap.value_chars);
            assert!(limits.recursion_limit > 0 && limits.recursion_limit <= cap.recursion_limit);
        }
        Err(status) => refused(&status),
    }
}

fn items(result: Result<Vec<Item>, Status>, tasks: usize) {
    match result {
        Ok(items) => assert_eq!(items.len(), tasks),
        Err(status) => refused(&status),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let b = bounds();
    match kind % 6 {
        0 => {
            if let Ok(r) = v1::RunRequest::decode(body) {
                options(r.options.as_ref(), &b);
                if let Some(t) = &r.task
                    && let Err(s) = convert::run_item(t, None, &b, "task")
                {
                    refused(&s);
                }
            }
        }
        1 => {
            if let Ok(r) = v1::ValidateRequest::decode(body) {
                options(r.options.as_ref(), &b);
                if let Some(t) = &r.task
                    && let Err(s) = convert::validate_item(t, None, &b, "task")
                {
                    refused(&s);
                }
            }
        }
        2 => {
            if let Ok(r) = v1::CheckRequest::decode(body) {
                options(r.options.as_ref(), &b);
                if let Some(t) = &r.task
                    && let Err(s) = convert::check_item(t, None, &b, "task")
                {
                    refused(&s);
                }
            }
        }
        3 => {
            if let Ok(r) = v1::RunBatchRequest::decode(body) {
                options(r.options.as_ref(), &b);
                let result = convert::batch(&r.tasks, r.program.as_ref(), &b, convert::run_item);
                items(result, r.tasks.len());
            }
        }
        4 => {
            if let Ok(r) = v1::ValidateBatchRequest::decode(body) {
                options(r.options.as_ref(), &b);
                let result =
                    convert::batch(&r.tasks, r.program.as_ref(), &b, convert::validate_item);
                items(result, r.tasks.len());
            }
        }
        _ => {
            if let Ok(r) = v1::CheckBatchRequest::decode(body) {
                options(r.options.as_ref(), &b);
                let result = convert::batch(&r.tasks, r.program.as_ref(), &b, convert::check_item);
                items(result, r.tasks.len());
            }
        }
    }
});
