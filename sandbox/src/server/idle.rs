//! Closes a connection on which nothing moved for too long.
//!
//! A TCP client that connects and then says nothing (or stops half-way through a request)
//! holds a connection slot, a task and its buffers for as long as it likes: hyper's HTTP/1
//! server times out a request's *headers*, not an idle keep-alive connection nor a body that
//! stops arriving. [`IdleTimeout`] wraps the socket and fails its next read with
//! `TimedOut` once no byte went in or out for the configured time, which ends the
//! connection; a request being run keeps it alive only while the client waits for the
//! answer (the response's bytes count as traffic once they flow, and a run is bounded by
//! its own limits).

use std::{
    io,
    pin::Pin,
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
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
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
        let mut server = IdleTimeout::new(server, idle);
        let mut buf = [0u8; 8];
        // Traffic within the window keeps the connection, past the first window's end.
        for _ in 0..3 {
            tokio::time::sleep(idle / 2).await;
            client.write_all(b"hi").await.expect("written");
            assert_eq!(server.read(&mut buf).await.expect("read"), 2);
        }
        // Then silence: the next read fails once a whole window has passed.
        let started = std::time::Instant::now();
        let error = server.read(&mut buf).await.expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= idle / 2, "{:?}", started.elapsed());
    }
}
