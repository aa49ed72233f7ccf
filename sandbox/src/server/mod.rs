//! The daemon: `azr.sandbox.v1` over HTTP/2 on a Unix socket.
//!
//! Connections are served by hyper directly (not tonic's TCP-oriented server) so that the
//! daemon decides everything that matters on a local socket: the peer check happens once per
//! connection from `SO_PEERCRED`, the number of connections is bounded, the request deadline
//! is answered with `DEADLINE_EXCEEDED` by the service itself, and SIGTERM drains in-flight
//! requests before the socket is removed.
//!
//! The two front ends cannot starve each other: gRPC connections and HTTP connections have
//! limits of their own, and a full HTTP side never stops the daemon from accepting on the
//! Unix socket (an HTTP connection over its limit is accepted and closed at once). HTTP
//! connections are also closed when idle ([`idle`]), when their headers are slow, and their
//! request bodies are bounded one by one, in time and all together ([`http_api`]).

pub mod authority;
pub mod convert;
pub mod http_api;
pub mod idle;
pub mod listener;
pub mod service;
pub mod stats;

use std::{
    convert::Infallible,
    io,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use azr_proto::v1::sandbox_server::SandboxServer;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
    signal::unix::{SignalKind, signal},
    sync::Semaphore,
};
use tonic::Status;
use tower::Service as _;

use self::{listener::PeerPolicy, service::Service, stats::Answer};
use crate::config::ServerConfig;

/// gRPC status code numbers that travel in the `grpc-status` header.
const GRPC_OUT_OF_RANGE: &str = "11";
const GRPC_INVALID_ARGUMENT: &str = "3";

/// Serves until SIGTERM or SIGINT, then drains: new requests get `UNAVAILABLE`, requests in
/// flight finish (up to `drain_timeout_ms`), and the socket file is removed if the daemon
/// created it.
pub async fn serve(
    listener: UnixListener,
    owned_path: Option<PathBuf>,
    http_listener: Option<TcpListener>,
    service: Service,
    peers: PeerPolicy,
    config: &ServerConfig,
) -> io::Result<()> {
    let draining = service.draining.clone();
    let stats = service.stats.clone();
    let service = Arc::new(service);
    let http_service = service.clone();
    let grpc = SandboxServer::from_arc(service)
        .max_decoding_message_size(config.max_request_bytes)
        .max_encoding_message_size(usize::MAX);
    let graceful = GracefulShutdown::new();
    let grpc_slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let http_slots = Arc::new(Semaphore::new(config.http_max_connections.max(1)));
    let http_limits = Arc::new(http_api::HttpLimits::new(config));
    let http_idle = Duration::from_millis(config.http_idle_timeout_ms.max(1));
    let http_header_timeout = Duration::from_millis(config.http_header_timeout_ms.max(1));
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        // A Unix connection is accepted only with a gRPC slot free; TCP connections are
        // always accepted (and closed at once over their own limit), so that neither front
        // end's load stops the other's accepting.
        let accepted = tokio::select! {
            (permit, accepted) = async {
                let permit = grpc_slots.clone().acquire_owned().await;
                (permit, listener.accept().await)
            } => match (permit, accepted) {
                (Ok(permit), Ok((stream, _))) => Ok(Accepted::Unix(stream, permit)),
                (Err(_), _) => break,
                (_, Err(e)) => Err(e),
            },
            accepted = accept_tcp(http_listener.as_ref()) => accepted.map(Accepted::Tcp),
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let (stream, permit) = match accepted {
            Ok(Accepted::Unix(stream, permit)) => (stream, permit),
            Ok(Accepted::Tcp(stream)) => {
                let Ok(permit) = http_slots.clone().try_acquire_owned() else {
                    tracing::debug!(
                        limit = config.http_max_connections,
                        "HTTP connection over the limit closed"
                    );
                    drop(stream);
                    continue;
                };
                let service = http_service.clone();
                let limits = http_limits.clone();
                let answering = idle::Answering::default();
                let io = idle::IdleTimeout::new(stream, http_idle, answering.clone());
                let svc = hyper::service::service_fn(move |request| {
                    let service = service.clone();
                    let limits = limits.clone();
                    let answering = answering.start();
                    async move {
                        let response = http_api::handle(&service, request, &limits).await;
                        drop(answering);
                        response
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(http_header_timeout)
                    .serve_connection(TokioIo::new(io), svc);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("HTTP connection ended: {e}");
                    }
                    drop(permit);
                });
                continue;
            }
            Err(e) => {
                // Out of descriptors or a peer that went away: not a reason to stop
                // serving everyone else.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let allowed = match stream.peer_cred() {
            Ok(cred) => {
                let ok = peers.allows(cred.uid(), cred.gid());
                if !ok {
                    tracing::warn!(
                        uid = cred.uid(),
                        gid = cred.gid(),
                        pid = cred.pid(),
                        "refusing a peer that is not on the allow-list"
                    );
                }
                ok
            }
            Err(e) => {
                tracing::warn!("cannot read the peer's credentials: {e}");
                false
            }
        };
        let grpc = grpc.clone();
        let stats = stats.clone();
        let svc = tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let mut grpc = grpc.clone();
            let stats = stats.clone();
            async move {
                if !allowed {
                    stats.answered(Answer::Denied);
                    let denied = Status::permission_denied(
                        "this uid/gid is not on the sandbox daemon's allow-list",
                    );
                    return Ok::<_, Infallible>(denied.into_http());
                }
                let mut response = grpc.call(request).await?;
                // tonic refuses an oversized message with OUT_OF_RANGE before the service
                // sees it; for the client it is an invalid request like any other.
                let headers = response.headers_mut();
                if headers
                    .get("grpc-status")
                    .is_some_and(|v| v == GRPC_OUT_OF_RANGE)
                {
                    stats.answered(Answer::Invalid);
                    headers.insert(
                        "grpc-status",
                        http::HeaderValue::from_static(GRPC_INVALID_ARGUMENT),
                    );
                }
                Ok(response)
            }
        });
        // The filter assumes the protocol defaults for these two settings; say them.
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .max_frame_size(authority::MAX_FRAME_SIZE as u32)
            .header_table_size(authority::HEADER_TABLE_SIZE as u32)
            .serve_connection(
                TokioIo::new(authority::Filtered::new(stream)),
                TowerToHyperService::new(svc),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }

    tracing::info!("shutting down: draining requests in flight");
    draining.store(true, Ordering::Relaxed);
    drop(listener);
    drop(http_listener);
    if let Some(path) = &owned_path
        && let Err(e) = std::fs::remove_file(path)
    {
        tracing::warn!("removing {}: {e}", path.display());
    }
    let drain = Duration::from_millis(config.drain_timeout_ms);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {} ms; exiting anyway",
            config.drain_timeout_ms
        );
    }
    Ok(())
}

enum Accepted {
    Unix(UnixStream, tokio::sync::OwnedSemaphorePermit),
    Tcp(TcpStream),
}

/// The next connection of the HTTP listener; never, when there is none.
async fn accept_tcp(listener: Option<&TcpListener>) -> io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}
