//! A response body that holds what the request occupies (its place under the circuit
//! breakers, its count on the host, its HTTP/1.1 connection) until the body ends.

use super::pool::Lease;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct Tracked<G> {
    inner: Incoming,
    /// Returned to the pool only when the body was read to its end.
    lease: Option<Lease>,
    /// Dropped with the body, wherever it ends.
    _guards: G,
}

impl<G> Tracked<G> {
    pub fn new(inner: Incoming, lease: Option<Lease>, guards: G) -> Tracked<G> {
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
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = matches!(polled, Poll::Ready(None))
            || matches!(&polled, Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream());
        if ended {
            if let Some(lease) = self.lease.take() {
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
