//! The body of a forwarded gRPC request: data frames pass through, request trailers are dropped
//! (they would otherwise reach the upstream as metadata, around the header allowlist), and a
//! failure to read the body (malformed grpc-web text, a reset stream) is remembered so the call
//! is answered as the client's fault rather than as an upstream outage.

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

/// Shared flag: did reading this request's body fail?
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyFailed(Arc<AtomicBool>);

impl BodyFailed {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request body with its trailers removed and its errors recorded.
#[derive(Debug)]
pub(crate) struct ForwardedBody<B> {
    inner: B,
    failed: BodyFailed,
}

impl<B> ForwardedBody<B> {
    pub(crate) fn new(inner: B) -> (Self, BodyFailed) {
        let failed = BodyFailed::default();
        let body = Self {
            inner,
            failed: failed.clone(),
        };
        (body, failed)
    }
}

impl<B> Body for ForwardedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        loop {
            return match Pin::new(&mut this.inner).poll_frame(cx) {
                // gRPC clients send no request trailers; whatever a client puts there (an
                // `x-user-id`, a `cookie` that skipped the Origin check) must not reach the
                // upstream, where tonic merges request trailers into the call's metadata.
                Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => continue,
                Poll::Ready(Some(Err(error))) => {
                    this.failed.0.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(error)))
                }
                other => other,
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http_body_util::{BodyExt, StreamBody};

    type Item = Result<Frame<Bytes>, std::io::Error>;
    type Frames = Vec<Item>;
    type TestBody = StreamBody<tokio_stream::Iter<std::vec::IntoIter<Item>>>;

    fn body(frames: Frames) -> TestBody {
        StreamBody::new(tokio_stream::iter(frames))
    }

    #[tokio::test]
    async fn trailers_are_dropped_and_data_passes() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-user-id", "someone-else".parse().unwrap());
        let frames: Frames = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::trailers(trailers)),
        ];
        let (body, failed) = ForwardedBody::new(body(frames));
        let collected = body.collect().await.unwrap();
        assert!(collected.trailers().is_none());
        assert_eq!(&collected.to_bytes()[..], b"abc");
        assert!(!failed.is_set());
    }

    #[tokio::test]
    async fn a_body_error_is_remembered() {
        let frames: Frames = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err(std::io::Error::other("bad base64")),
        ];
        let (body, failed) = ForwardedBody::new(body(frames));
        assert!(body.collect().await.is_err());
        assert!(failed.is_set());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use super::*;
    use http::HeaderMap;
    use http_body_util::{BodyExt, StreamBody};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn data_passes_whole_and_no_trailers_ever_do(
            frames in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..64)), 0..16),
        ) {
            let expected: Vec<u8> = frames.iter().flatten().flatten().copied().collect();
            let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = frames
                .into_iter()
                .map(|frame| Ok(match frame {
                    Some(data) => Frame::data(Bytes::from(data)),
                    None => {
                        let mut trailers = HeaderMap::new();
                        trailers.insert("x-user-id", "someone-else".parse().unwrap());
                        Frame::trailers(trailers)
                    }
                }))
                .collect();
            let (body, failed) = ForwardedBody::new(StreamBody::new(tokio_stream::iter(frames)));
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let collected = runtime.block_on(body.collect()).unwrap();
            prop_assert!(collected.trailers().is_none());
            prop_assert_eq!(collected.to_bytes().to_vec(), expected);
            prop_assert!(!failed.is_set());
        }
    }
}
