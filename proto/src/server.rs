//! Serving a confab service: its gRPC routes plus health and reflection, on a
//! listener the caller bound, until the caller asks it to stop.
//!
//! Every service binary and the embedded mode start services through
//! [`spawn`], so they all behave the same: `grpc.health.v1.Health` reports
//! SERVING for the named service, reflection lists the confab API, and
//! [`ServiceHandle::shutdown`] drains in-flight calls before returning.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic_health::ServingStatus;

/// Tells a service that it is shutting down: its `Subscribe` streams end
/// (so subscribers reconnect elsewhere) instead of holding the server open.
#[derive(Clone)]
pub struct Closing(watch::Receiver<bool>);

impl Closing {
    /// Resolves once shutdown has begun.
    pub async fn closed(mut self) {
        let _ = self.0.wait_for(|closing| *closing).await;
    }
}

/// The sending half of [`Closing`], held by the [`ServiceHandle`].
pub struct Closer(watch::Sender<bool>);

/// A new shutdown signal for one service.
pub fn closing() -> (Closer, Closing) {
    let (tx, rx) = watch::channel(false);
    (Closer(tx), Closing(rx))
}

/// A running gRPC server.
pub struct ServiceHandle {
    pub addr: SocketAddr,
    closer: Closer,
    join: JoinHandle<()>,
}

impl ServiceHandle {
    /// `http://addr`, the form gRPC clients take.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends the `Subscribe` streams, stops accepting calls, lets in-flight
    /// ones finish (at most 5 s), and waits.
    pub async fn shutdown(mut self) {
        let _ = self.closer.0.send(true);
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.join)
            .await
            .is_err()
        {
            tracing::warn!(addr = %self.addr, "gRPC server did not drain within 5 s; aborting");
            self.join.abort();
        }
    }

    /// Waits until the server stops by itself (it only does on error).
    pub async fn wait(self) {
        let _ = self.join.await;
    }
}

/// Serves `routes` (one confab service) with health and reflection on
/// `listener`. `service_name` is the fully-qualified gRPC name, e.g.
/// `confab.v1.ChatService`, reported as SERVING by the health service.
/// `closer` is the other half of the [`Closing`] the service's streams watch.
pub async fn spawn(
    listener: TcpListener,
    service_name: &'static str,
    routes: Routes,
    closer: Closer,
) -> std::io::Result<ServiceHandle> {
    let addr = listener.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(service_name, ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(std::io::Error::other)?;
    let routes = routes.add_service(health).add_service(reflection);
    let stopped = Closing(closer.0.subscribe());
    let join = tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped.closed())
            .await;
        match result {
            Ok(()) => tracing::info!(service_name, "gRPC server stopped"),
            Err(e) => tracing::error!(service_name, error = %e, "gRPC server failed"),
        }
    });
    tracing::info!(service_name, %addr, "gRPC server listening");
    Ok(ServiceHandle { addr, closer, join })
}

/// Installs the `tracing` subscriber every confab binary uses: `RUST_LOG`
/// filters (default `info`), human-readable lines on stderr.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves when the process receives Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
