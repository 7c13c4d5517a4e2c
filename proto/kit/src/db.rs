//! A service's database: how it is connected (the same settings for every
//! service) and what a failure of it becomes for a caller.

use std::time::Duration;

use anyhow::Context;
use confab_proto::ServiceError;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

/// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`) and
/// brings its schema up to date with the migrations `M`.
///
/// A SQLite file's directory is created first. SQLite has one writer at a
/// time: one connection serialises every statement in order, instead of
/// several connections contending for the write lock and backing off in
/// SQLite's busy handler (which sleeps for up to 100 ms a try). WAL with
/// `synchronous = NORMAL` makes each commit an append to the log, durable
/// across a crash of confab (not of the machine) — the usual choice for an
/// app server. PostgreSQL gets a pool of ten, and replicas starting at
/// once migrate one after the other (a PostgreSQL advisory lock), so two
/// never create the same table.
pub async fn connect<M: MigratorTrait>(url: &str) -> anyhow::Result<DatabaseConnection> {
    create_sqlite_dir(url)?;
    let mut opts = ConnectOptions::new(url.to_string());
    opts.connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if url.starts_with("sqlite") {
        opts.max_connections(1).map_sqlx_sqlite_opts(|o| {
            o.pragma("journal_mode", "WAL")
                .pragma("synchronous", "NORMAL")
                .busy_timeout(Duration::from_secs(5))
        });
    } else {
        opts.max_connections(10);
    }
    let db = Database::connect(opts).await?;
    if url.starts_with("postgres") {
        migrate_in_turn::<M>(url, &db).await?;
    } else {
        M::up(&db, None).await?;
    }
    Ok(db)
}

/// The advisory lock confab's migrations take on a PostgreSQL server.
const MIGRATION_LOCK: i64 = 0x636f_6e66_6162; // "confab"

/// Runs the migrations `M` on `db` while holding [`MIGRATION_LOCK`] on a
/// connection of its own (a session lock: held until unlocked or closed),
/// so replicas of a service starting together take turns.
async fn migrate_in_turn<M: MigratorTrait>(
    url: &str,
    db: &DatabaseConnection,
) -> anyhow::Result<()> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(1)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    let lock = Database::connect(opts).await?;
    lock.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await
        .context("waiting for the migration lock")?;
    let migrated = M::up(db, None).await;
    let _ = lock
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await;
    let _ = lock.close().await;
    Ok(migrated?)
}

/// Creates the directory of a `sqlite://path` URL's file, if it names one.
fn create_sqlite_dir(url: &str) -> anyhow::Result<()> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .and_then(|p| p.split('?').next())
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// A storage failure as callers see it: logged here, `INTERNAL` with no
/// detail for the caller.
pub fn db_err(e: DbErr) -> ServiceError {
    tracing::error!(error = %e, "database error");
    ServiceError::internal("storage failure")
}
