//! Closes a connection on which nothing moved for too long.
//!
//! A TCP client that connects and then says nothing (or stops half-way through a request)
//! holds a connection slot, a task and its buffers for as long as it likes: hyper's HTTP/1
//! server times out a request's *headers*, not an idle keep-alive connection nor a body that
//! stops arriving. [`IdleTimeout`] wraps the socket and fails its next read with
//! `TimedOut` once no byte went in or out for the configured time, which ends the
//! connection. While a request of the connection is being answered (queued or running) the
//! connection is not idle, whatever the wait: the client is waiting for the daemon, and the
//! run is bounded by its own limits.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// A stream that errors with [`io::ErrorKind::TimedOut`] on a read after `idle` without
/// traffic in either direction.
pub struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    answering: Answering,
}

/// Requests of one connection being answered; see [`Answering::start`].
#[derive(Clone, Default)]
pub struct Answering(Arc<AtomicUsize>);

impl Answering {
    /// Marks a request as being answered until the guard is dropped.
    pub fn start(&self) -> AnsweringGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        AnsweringGuard(self.0.clone())
    }

    fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

pub struct AnsweringGuard(Arc<AtomicUsize>);

impl Drop for AnsweringGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, idle: Duration, answering: Answering) -> Self {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            answering,
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.answering.any() => {
                // The client waits for an answer: not idle.
                self.moved();
                Poll::Pending
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no traffic for {} ms", self.idle.as_millis()),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_peer_is_cut_off_after_the_idle_time_and_traffic_resets_it() {
        let idle = Duration::from_millis(300);
        let (mut client, server) = tokio::io::duplex(64);
        let answering = Answering::default();
        let mut server = IdleTimeout::new(server, idle, answering.clone());
        let mut buf = [0u8; 8];
        // Traffic within the window keeps the connection, past the first window's end.
        for _ in 0..3 {
            tokio::time::sleep(idle / 2).await;
            client.write_all(b"hi").await.expect("written");
            assert_eq!(server.read(&mut buf).await.expect("read"), 2);
        }
        // Waiting for an answer is not silence, however long.
        let guard = answering.start();
        let waited = tokio::time::timeout(idle * 3, server.read(&mut buf)).await;
        assert!(waited.is_err(), "cut off while answering: {waited:?}");
        drop(guard);
        // Then silence: the next read fails once a whole window has passed.
        let started = std::time::Instant::now();
        let error = server.read(&mut buf).await.expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= idle / 2, "{:?}", started.elapsed());
    }
}
