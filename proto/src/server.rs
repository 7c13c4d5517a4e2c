//! Serving a confab service: its gRPC routes plus health and reflection, on a
//! listener the caller bound, until the caller asks it to stop.
//!
//! Every service binary and the embedded mode start services through
//! [`GrpcServer`], so they all behave the same: `grpc.health.v1.Health`
//! reports SERVING for each service served, reflection lists the confab
//! API, and [`ServiceHandle::shutdown`] drains in-flight calls before
//! returning.

use std::convert::Infallible;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
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
    closers: Vec<Closer>,
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
        for closer in &self.closers {
            let _ = closer.0.send(true);
        }
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

/// One or more confab services, built and ready to serve: their gRPC
/// routes and the signals that end their streams.
///
/// A service binary serves one; the embedded `confab` serves all four on
/// one address and also hands [`GrpcServer::routes`] to its edge, which
/// calls the same handlers in-process.
#[derive(Default)]
pub struct GrpcServer {
    names: Vec<&'static str>,
    routes: Routes,
    closers: Vec<Closer>,
}

impl GrpcServer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service; `closer` is the other half of the [`Closing`] its
    /// streams watch.
    pub fn add<S>(mut self, svc: S, closer: Closer) -> Self
    where
        S: tonic::codegen::Service<
                tonic::codegen::http::Request<tonic::body::Body>,
                Response = tonic::codegen::http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes = self.routes.add_service(svc);
        self.closers.push(closer);
        self
    }

    /// The services' routes, for calling them without a network hop.
    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    /// Serves the services with health and reflection on `listener`:
    /// `grpc.health.v1.Health` reports SERVING for each service's
    /// fully-qualified name (e.g. `confab.v1.ChatService`) and for `""`.
    pub async fn spawn(self, listener: TcpListener) -> std::io::Result<ServiceHandle> {
        let addr = listener.local_addr()?;
        let (reporter, health) = tonic_health::server::health_reporter();
        for name in &self.names {
            reporter
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        // Reflection v1 and v1alpha: grpcurl asks for the first, many other
        // tools (and grpcio's reflection client) only know the second.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let v1 = reflection().build_v1().map_err(std::io::Error::other)?;
        let v1alpha = reflection()
            .build_v1alpha()
            .map_err(std::io::Error::other)?;
        let routes = self
            .routes
            .add_service(health)
            .add_service(v1)
            .add_service(v1alpha);
        let (stop, stopped) = closing();
        let mut closers = self.closers;
        closers.push(stop);
        let names = self.names.join(", ");
        let join = tokio::spawn({
            let names = names.clone();
            async move {
                let result = tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(listener),
                        stopped.closed(),
                    )
                    .await;
                match result {
                    Ok(()) => tracing::info!(services = %names, "gRPC server stopped"),
                    Err(e) => tracing::error!(services = %names, error = %e, "gRPC server failed"),
                }
            }
        });
        tracing::info!(services = %names, %addr, "gRPC server listening");
        Ok(ServiceHandle {
            addr,
            closers,
            join,
        })
    }
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
