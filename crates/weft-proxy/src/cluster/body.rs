//! A response body that holds what the request occupies (its place under the circuit
//! breakers, its count on the host, its HTTP/1.1 connection) until the body ends, and
//! runs that connection's I/O while it is read.

use super::pool::Lease;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct Tracked<G> {
    inner: Incoming,
    /// Its I/O delivers `inner`; returned to the pool only when the body was read to its
    /// end.
    lease: Option<Lease>,
    /// Dropped with the body, wherever it ends.
    _guards: G,
}

impl<G> Tracked<G> {
    pub fn new(inner: Incoming, mut lease: Option<Lease>, guards: G) -> Tracked<G> {
        // No body to come (HEAD, 204, 304, `content-length: 0`): the connection is done
        // with the response now, and a body that has ended is never read.
        if inner.is_end_stream() {
            if let Some(lease) = lease.take() {
                lease.release();
            }
        }
        Tracked {
            inner,
            lease,
            _guards: guards,
        }
    }
}

impl<G: Unpin> Body for Tracked<G> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let mut polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_pending() {
            // The connection reads the body in this task: run it, then look again.
            if let Some(lease) = &mut this.lease {
                lease.poll_io(cx);
                polled = Pin::new(&mut this.inner).poll_frame(cx);
            }
        }
        let ended = matches!(polled, Poll::Ready(None))
            || matches!(&polled, Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream());
        if ended {
            if let Some(lease) = this.lease.take() {
                lease.release();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
