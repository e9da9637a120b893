//! An upstream HTTP/1.1 connection whose I/O runs in the task of the request using it.
//!
//! hyper splits a client connection into a sender and a future that does the I/O. Spawned
//! as a task of its own, that future makes every request cross tasks twice (the request
//! handed to the connection task, the response handed back), each crossing a wake-up and a
//! task switch. Here the future stays with the sender instead: the request's task polls it
//! while waiting for the response headers ([`Http1::send`]) and while reading the body
//! (`body::Tracked`). An idle connection is polled by nobody, so a close by the server
//! shows when the connection is next taken ([`Http1::ready`]), not when it happens.

use super::tls::Stream;
use super::UpstreamBody;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The connection's I/O (hyper's connection future, with upgrade support).
type Io = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send + Sync>>;

pub struct Http1 {
    sender: http1::SendRequest<UpstreamBody>,
    /// None once it has ended: closed by either side, failed, or handed to an upgrade.
    io: Option<Io>,
}

impl Http1 {
    /// The HTTP/1.1 handshake (nothing is sent) over a connected stream.
    pub async fn handshake(stream: Stream) -> hyper::Result<Http1> {
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Http1 {
            sender,
            io: Some(Box::pin(conn.with_upgrades())),
        })
    }

    /// Runs the connection's I/O as far as it goes without waiting; false once it ended.
    pub fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(io) = &mut self.io else {
            return false;
        };
        match io.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
                // Dropping the I/O also fails a request still waiting on it.
                self.io = None;
                false
            }
        }
    }

    /// Whether the connection may still carry requests, as far as is known without I/O.
    pub fn is_open(&self) -> bool {
        self.io.is_some() && !self.sender.is_closed()
    }

    /// Runs the connection until it can take a request (done with the previous one);
    /// false when it ended instead.
    pub async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            let open = self.poll_io(cx);
            match self.sender.poll_ready(cx) {
                Poll::Ready(r) => Poll::Ready(open && r.is_ok()),
                Poll::Pending if open => Poll::Pending,
                Poll::Pending => Poll::Ready(false),
            }
        })
        .await
    }

    /// Sends `req` (after [`Http1::ready`]) and runs the connection until the response
    /// headers arrive; the body then arrives as the connection is polled on.
    pub async fn send(
        &mut self,
        req: http::Request<UpstreamBody>,
    ) -> hyper::Result<http::Response<Incoming>> {
        let response = self.sender.send_request(req);
        let mut response = std::pin::pin!(response);
        poll_fn(|cx| {
            // The I/O first: it writes the request and reads what came back, so a response
            // already there is taken in the same poll. Ended, it has answered the request
            // (with an error at worst), which the poll below sees.
            self.poll_io(cx);
            response.as_mut().poll(cx)
        })
        .await
    }

    /// Runs the I/O to its end in a task of its own: after a `101 Switching Protocols`,
    /// where the end hands the socket to the upgrade, or for a connection kept by nobody.
    pub fn spawn<G: Send + 'static>(mut self, guard: G) {
        tokio::spawn(async move {
            poll_fn(|cx| match self.poll_io(cx) {
                true => Poll::Pending,
                false => Poll::Ready(()),
            })
            .await;
            drop(guard);
        });
    }
}
