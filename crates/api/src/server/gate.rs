//! The gate between a client's socket and hyper: it holds each request head back until
//! [`head::check`] has accepted it, follows the body's framing to find the next head, and
//! answers a refused head itself with MDE's envelope, so no client ever gets hyper's bare
//! 400, 414 or 431.
//!
//! A refused head is never shown to hyper: the gate ends the stream there (hyper sees the
//! client go quiet and finishes what it was answering), then writes the refusal before the
//! connection closes, after any response hyper still had to send.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::clients::Tracked;
use super::head::{self, Chunks, Fed, Framing, HeadLimits, Verdict};
use crate::error::ApiError;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

enum Phase {
    /// Reading the next request head.
    Head,
    /// Passing `left` bytes of a `Content-Length` body.
    Length {
        left: u64,
    },
    Chunked(Chunks),
    /// The framing was lost (a broken chunked body, which hyper refuses itself): everything
    /// passes unchecked until the connection closes.
    Through,
    /// A head was refused: the stream has ended for hyper.
    Refused,
}

pub struct Gate {
    inner: TcpStream,
    peer: SocketAddr,
    limits: HeadLimits,
    phase: Phase,
    /// Bytes read from the client that hyper has not taken; the first `approved` of them
    /// belong to accepted heads and bodies.
    buf: Vec<u8>,
    approved: usize,
    eof: bool,
    /// The answer to a refused head and how much of it is written.
    refusal: Option<(Vec<u8>, usize)>,
    /// After a refusal: until when what the client still sends is read and dropped.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
    tracked: Arc<Tracked>,
}

/// How long what a refused client still sends is read and dropped before the socket closes:
/// closing on unread bytes resets the connection, and a reset can destroy the refusal before
/// the client reads it.
const LINGER: Duration = Duration::from_secs(2);

impl Gate {
    pub fn new(
        inner: TcpStream,
        peer: SocketAddr,
        limits: HeadLimits,
        tracked: Arc<Tracked>,
    ) -> Gate {
        tracked.set_idle(true);
        Gate {
            inner,
            peer,
            limits,
            phase: Phase::Head,
            buf: Vec::new(),
            approved: 0,
            eof: false,
            refusal: None,
            linger: None,
            tracked,
        }
    }

    /// Moves as far through the buffered bytes as the framing allows.
    fn advance(&mut self) {
        loop {
            let pending = &self.buf[self.approved..];
            if pending.is_empty() {
                return;
            }
            match &mut self.phase {
                Phase::Head => match head::check(pending, self.limits) {
                    Verdict::Partial => return,
                    Verdict::Accept { len, framing } => {
                        self.approved += len;
                        self.phase = match framing {
                            Framing::Length(0) => Phase::Head,
                            Framing::Length(left) => Phase::Length { left },
                            Framing::Chunked => Phase::Chunked(Chunks::default()),
                        };
                    }
                    Verdict::Refuse(e) => {
                        self.refuse(e);
                        return;
                    }
                },
                Phase::Length { left } => {
                    let take = (*left).min(pending.len() as u64);
                    self.approved += take as usize;
                    *left -= take;
                    if *left == 0 {
                        self.phase = Phase::Head;
                    }
                }
                Phase::Chunked(chunks) => match chunks.feed(pending) {
                    Fed::More => self.approved = self.buf.len(),
                    Fed::End(n) => {
                        self.approved += n;
                        self.phase = Phase::Head;
                    }
                    Fed::Broken(_) => self.phase = Phase::Through,
                },
                Phase::Through => self.approved = self.buf.len(),
                Phase::Refused => return,
            }
        }
    }

    fn refuse(&mut self, e: ApiError) {
        let request_id = uuid::Uuid::new_v4().to_string();
        tracing::info!(
            request_id = %request_id,
            peer = %self.peer,
            status = e.status().as_u16(),
            reason = %e,
            "request refused before routing"
        );
        self.refusal = Some((refusal_bytes(&e, &request_id), 0));
        self.phase = Phase::Refused;
        // What follows the refused head is never read.
        self.buf.truncate(self.approved);
    }

    fn note_idleness(&self) {
        let idle = matches!(self.phase, Phase::Head) && self.buf.is_empty();
        self.tracked.set_idle(idle);
    }

    /// Writes what is left of the refusal.
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some((bytes, written)) = &mut self.refusal {
            while *written < bytes.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The whole HTTP response to a refused head: the envelope, the request id, and the
/// connection closed after it.
fn refusal_bytes(e: &ApiError, request_id: &str) -> Vec<u8> {
    let body = e.envelope(request_id);
    let status = e.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\n\
         content-length: {}\r\nrequest-id: {request_id}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let ApiError::TooManyRequests {
        retry_after_secs, ..
    } = e
    {
        head.push_str(&format!("retry-after: {}\r\n", retry_after_secs.max(&1)));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Answers a connection that is not served at all (too many from its address) and closes
/// it, without waiting long for a client that does not read.
pub async fn turn_away(mut stream: TcpStream, e: ApiError) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request_id = uuid::Uuid::new_v4().to_string();
    let bytes = refusal_bytes(&e, &request_id);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await?;
        // Read what the client sends until it closes, so the close does not reset the
        // connection before the client read the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

impl AsyncRead for Gate {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.approved > 0 {
                let n = this.approved.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.approved -= n;
                this.note_idleness();
                return Poll::Ready(Ok(()));
            }
            if this.eof || matches!(this.phase, Phase::Refused) {
                // The end of the stream; a head cut short by the client is dropped unread.
                return Poll::Ready(Ok(()));
            }
            let start = this.buf.len();
            this.buf.resize(start + READ_CHUNK, 0);
            let mut rb = ReadBuf::new(&mut this.buf[start..]);
            let res = Pin::new(&mut this.inner).poll_read(cx, &mut rb);
            let got = rb.filled().len();
            this.buf.truncate(start + got);
            match res {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if got == 0 => this.eof = true,
                Poll::Ready(Ok(())) => {
                    this.advance();
                    this.note_idleness();
                }
            }
        }
    }
}

impl AsyncWrite for Gate {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tracked.touch();
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.tracked.touch();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_refusal(cx))?;
        if self.refusal.is_none() {
            return Pin::new(&mut self.inner).poll_shutdown(cx);
        }
        let this = &mut *self;
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut sink = [0u8; 8192];
        loop {
            if let Some(deadline) = this.linger.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ok(()));
                }
            }
            let mut rb = ReadBuf::new(&mut sink);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // hyper closes a connection it gave up on without shutting it down: the refusal
        // still goes out if the socket takes it at once (it is a few hundred bytes).
        if let Some((bytes, written)) = &self.refusal {
            if *written < bytes.len() {
                let _ = self.inner.try_write(&bytes[*written..]);
            }
        }
    }
}
