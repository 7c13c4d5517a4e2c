//! Databases and a running chat-service for integration tests.
//!
//! Every test gets a database of its own: a fresh SQLite file in a temporary
//! directory, or — when `DATABASE_URL` points at a PostgreSQL server — a fresh
//! `confab_test_<random>` database created on that server. Tests therefore
//! never see each other's rows and may run in parallel.

use confab_proto::server::ServiceHandle;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// A fresh SQLite database file. The URL is valid as long as the returned
/// directory is kept alive; dropping it deletes the file.
pub async fn sqlite_url() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("chat.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    (url, dir)
}

/// Whether PostgreSQL runs are configured (`DATABASE_URL` set). When not,
/// the calling test is reported as skipped ([`crate::skip`]).
///
/// # Panics
///
/// When `CI=true` and `DATABASE_URL` is unset: CI requires the PostgreSQL path.
pub fn postgres_url_configured() -> bool {
    crate::skip::required_env("DATABASE_URL", "the PostgreSQL run").is_some()
}

/// A fresh, empty PostgreSQL database on the server `DATABASE_URL` names,
/// reached as the same user; `None` when `DATABASE_URL` is unset, after
/// reporting the calling test as skipped ([`crate::skip`]).
///
/// # Panics
///
/// When `CI=true` and `DATABASE_URL` is unset: in CI a missing database
/// service is a failure, not a reason to skip. Also when the server cannot
/// be reached or refuses to create the database.
pub async fn postgres_url() -> Option<String> {
    let admin_url = crate::skip::required_env("DATABASE_URL", "the PostgreSQL run")?;
    let name = format!("confab_test_{:016x}", rand::random::<u64>());
    let admin = connect_admin(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let _ = admin.close().await;
    Some(with_database(&admin_url, &name))
}

/// Drops a database made by [`postgres_url`], closing whatever connections
/// are still open to it. Failures are printed, not raised: cleanup must not
/// fail a test that passed.
pub async fn drop_postgres(url: &str) {
    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        return;
    };
    let Some(name) = database_name(url) else {
        return;
    };
    if !name.starts_with("confab_test_") {
        return;
    }
    let result = async {
        let admin = connect_admin(&admin_url).await?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin.close().await
    }
    .await;
    if let Err(e) = result {
        eprintln!("could not drop test database {name}: {e}");
    }
}

/// Migrates the database at `url`, serves chat-service on a random local
/// port and returns it with a gRPC client connected to it.
pub async fn spawn_chat(url: &str) -> (ServiceHandle, ChatServiceClient<Channel>) {
    let chat = confab_chat::build(confab_chat::Config {
        database_url: url.to_string(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("cannot connect to or migrate {url}: {e:#}"));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let handle = chat.serve(listener).await.expect("start chat-service");
    let client = ChatServiceClient::connect(handle.url())
        .await
        .expect("connect to chat-service");
    (handle, client)
}

/// One short-lived connection to the server's maintenance database.
async fn connect_admin(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(opts).await
}

/// `url` with its database name replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// The database name in a PostgreSQL URL.
fn database_name(url: &str) -> Option<&str> {
    let base = url.split('?').next()?;
    let rest = base.split_once("://")?.1;
    let name = rest.split_once('/')?.1;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(database_name("postgres://u@h/x?a=b"), Some("x"));
        assert_eq!(database_name("postgres://u@h"), None);
    }
}
