//! One service at several addresses: [`Failover`] sends each call to the
//! next address that is up, round robin, and sets an address aside for a
//! moment when a call to it fails below gRPC (refused, reset, timed out
//! connecting) — so an edge keeps working while a replica is down, and
//! uses it again once it is back.
//!
//! A call that failed is not retried elsewhere (it may have been carried
//! out): the client gets its contract's `UNAVAILABLE` and may send again;
//! the calls after it go to the other addresses. A `Subscribe` stream
//! that breaks is reopened by its follower, on the next address that is
//! up, from where it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::transport::Channel;
use tower::{BoxError, Service, ServiceExt};

/// How long an address that failed is set aside before it is tried again.
pub const SET_ASIDE: Duration = Duration::from_secs(2);

/// Several channels to replicas of one service.
#[derive(Clone)]
pub struct Failover {
    inner: Arc<Inner>,
}

struct Inner {
    channels: Vec<Channel>,
    /// Per channel: until when it is set aside (ms since `epoch`; 0: up).
    aside_until: Vec<AtomicU64>,
    next: AtomicUsize,
    epoch: Instant,
}

impl Failover {
    pub fn new(channels: Vec<Channel>) -> Self {
        let aside_until = channels.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            inner: Arc::new(Inner {
                channels,
                aside_until,
                next: AtomicUsize::new(0),
                epoch: Instant::now(),
            }),
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next address that is up, round robin; when every one is set
    /// aside, the next one all the same (one of them may be back).
    fn pick(&self) -> usize {
        let n = self.channels.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.aside_until[i].load(Ordering::Relaxed) <= now)
            .unwrap_or(start % n)
    }

    fn set_aside(&self, i: usize) {
        let until = self.now_ms() + SET_ASIDE.as_millis() as u64;
        self.aside_until[i].store(until, Ordering::Relaxed);
    }
}

impl Service<Request<Body>> for Failover {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call waits for its own channel's readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let i = inner.pick();
        let channel = inner.channels[i].clone();
        Box::pin(async move {
            let result = channel.oneshot(request).await;
            if result.is_err() {
                inner.set_aside(i);
            }
            result.map_err(|e| Box::new(e) as BoxError)
        })
    }
}
