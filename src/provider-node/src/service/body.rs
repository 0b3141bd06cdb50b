//! Bodies of the ingress: the host's own short answers, a guest's request
//! body (capped, counted) and a guest's response body (capped, counted,
//! cut at the request's deadline).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Error of a response body: the stream is cut off.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// What the ingress answers with.
pub type ResponseBody = UnsyncBoxBody<Bytes, BodyError>;

/// A short text body.
pub(super) fn text(s: String) -> ResponseBody {
    Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A guest's response body, cut off (the connection aborted) once it
/// passes `max` bytes or the request's deadline.
pub(super) struct GuardedBody {
    inner: HyperOutgoingBody,
    deadline: Pin<Box<Sleep>>,
    sent: u64,
    max: u64,
    bytes_out: Counter,
    cut: Counter,
}

impl GuardedBody {
    pub(super) fn new(
        inner: HyperOutgoingBody,
        deadline: Instant,
        max: u64,
        bytes_out: Counter,
        cut: Counter,
    ) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            sent: 0,
            max,
            bytes_out,
            cut,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.cut.inc();
            return Poll::Ready(Some(Err("the request's time ran out".into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    this.sent = this.sent.saturating_add(len);
                    if this.sent > this.max {
                        this.cut.inc();
                        return Poll::Ready(Some(Err(format!(
                            "response body over {} bytes",
                            this.max
                        )
                        .into())));
                    }
                    this.bytes_out.inc_by(len);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(format!("{e:?}").into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
