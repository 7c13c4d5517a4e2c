//! One service at several addresses: [`Failover`] sends each call to the
//! next address that is up, round robin, and sets an address aside for a
//! moment when a call to it fails below gRPC (refused, reset, timed out
//! connecting) — so a caller (the edge, call-service asking chat-service,
//! notify-service following chat-service and presence-service) keeps
//! working while a replica is down, and uses it again once it is back.
//!
//! Addresses are a comma-separated list ([`Failover::lazy`]), the same
//! syntax in every `*_URL` setting that names a service; one address is a
//! list of one. DNS names are resolved at each connect, so a name that
//! resolves to several replicas (a Kubernetes headless Service) is
//! balanced per connection by the resolver, not per call: list the
//! replicas for per-call balancing and failover.
//!
//! A call that failed is not retried elsewhere (it may have been carried
//! out): the caller gets `UNAVAILABLE` and may try again; the calls after
//! it go to the other addresses. A `Subscribe` stream that breaks is
//! reopened by its follower, on the next address that is up, from where
//! it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::transport::{Channel, Endpoint};
use tower::{BoxError, Service, ServiceExt};

/// How every caller sets up its channel to a service: connect within 1 s,
/// write each packet at once, keep the connection alive with HTTP/2 pings.
/// With a `timeout` (unary calls) a call that has not answered in time
/// fails with DEADLINE_EXCEEDED; without one (the long-lived `Subscribe`
/// streams) pings come more often and a peer that stops answering them
/// within 5 s is taken for dead, so the stream is reopened elsewhere.
pub fn endpoint(e: Endpoint, timeout: Option<Duration>) -> Endpoint {
    let e = e
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .keep_alive_while_idle(true);
    match timeout {
        Some(t) => e
            .timeout(t)
            .http2_keep_alive_interval(Duration::from_secs(20)),
        None => e
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5)),
    }
}

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

impl Failover {
    /// Lazily connected channels to every address of `urls` (comma
    /// separated; blanks ignored), each endpoint set up by `configure`
    /// (timeouts, keep-alive). An error names an address that does not
    /// parse, or says the list is empty.
    pub fn lazy(urls: &str, configure: impl Fn(Endpoint) -> Endpoint) -> Result<Self, String> {
        let channels = addresses(urls)
            .map(|url| {
                Endpoint::from_shared(url.to_string())
                    .map(|e| configure(e).connect_lazy())
                    .map_err(|e| format!("{url:?} is not a gRPC address: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if channels.is_empty() {
            return Err("no address given for a service".into());
        }
        Ok(Self::new(channels))
    }

    /// How many addresses this service has.
    pub fn len(&self) -> usize {
        self.inner.channels.len()
    }

    /// Always false: a `Failover` has at least one address.
    pub fn is_empty(&self) -> bool {
        self.inner.channels.is_empty()
    }
}

/// The addresses of a comma-separated list, trimmed, blanks left out.
pub fn addresses(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty())
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next address that is up, round robin; when every one is set
    /// aside, the next one all the same (one of them may be back).
    fn pick(&self) -> usize {
        let n = self.aside_until.len();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_list_is_its_addresses_and_an_empty_one_is_refused() {
        assert_eq!(
            addresses(" http://a:1, ,http://b:2 ,").collect::<Vec<_>>(),
            ["http://a:1", "http://b:2"]
        );
        let two = Failover::lazy("http://127.0.0.1:1,http://127.0.0.1:2", |e| e).unwrap();
        assert_eq!(two.len(), 2);
        let refused = |urls: &str| Failover::lazy(urls, |e| e).err().unwrap_or_default();
        assert!(refused(" , ").contains("no address"), "{}", refused(" , "));
        assert!(
            refused("http://a b").contains("a b"),
            "{}",
            refused("http://a b")
        );
    }

    #[test]
    fn every_address_that_is_up_takes_its_turn_and_one_set_aside_is_skipped() {
        let inner = Inner {
            channels: Vec::new(),
            aside_until: (0..3).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        };
        let picks: Vec<usize> = (0..3).map(|_| inner.pick()).collect();
        assert_eq!(picks, [0, 1, 2]);
        inner.aside_until[1].store(u64::MAX, Ordering::Relaxed);
        let picks: Vec<usize> = (0..4).map(|_| inner.pick()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
    }
}
