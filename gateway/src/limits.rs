//! Request body limit: `CappedBody` streams a body and fails once it grows past the limit,
//! remembering that it did (`BodyCap`), so the gRPC side can answer RESOURCE_EXHAUSTED and the
//! HTTP side 413 however deep the body error ends up wrapped.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Shared flag: did this request's body exceed the limit? Stored in the request's extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyCap(Arc<AtomicBool>);

impl BodyCap {
    pub(crate) fn exceeded(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The body was larger than the limit.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {limit} bytes")]
pub(crate) struct BodyTooLarge {
    limit: usize,
}

/// A body that yields at most `limit` bytes of data, then an error.
#[derive(Debug)]
pub(crate) struct CappedBody<B> {
    inner: B,
    remaining: usize,
    limit: usize,
    cap: BodyCap,
}

impl<B> CappedBody<B> {
    pub(crate) fn new(inner: B, limit: usize) -> (Self, BodyCap) {
        let cap = BodyCap::default();
        let body = Self {
            inner,
            remaining: limit,
            limit,
            cap: cap.clone(),
        };
        (body, cap)
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if data.len() > this.remaining {
                        this.cap.0.store(true, Ordering::Relaxed);
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                            limit: this.limit,
                        }))));
                    }
                    this.remaining -= data.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    /// Never exact: tonic-web's text mode decodes base64 but passes the size hint through, and
    /// an exact hint becomes the upstream h2 `content-length`; a decoded body shorter than that
    /// is a PROTOCOL_ERROR upstream. An upper bound is all we state.
    fn size_hint(&self) -> SizeHint {
        let mut hint = SizeHint::new();
        if let Some(upper) = self.inner.size_hint().upper() {
            hint.set_upper(upper);
        }
        hint
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn a_body_within_the_limit_passes_whole() {
        let (body, cap) = CappedBody::new(Full::new(Bytes::from_static(b"12345")), 5);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"12345");
        assert!(!cap.exceeded());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_fails_and_says_so() {
        let (body, cap) = CappedBody::new(Full::new(Bytes::from_static(b"123456")), 5);
        assert!(body.collect().await.is_err());
        assert!(cap.exceeded());
    }
}
