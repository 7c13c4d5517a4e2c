//! Schema migrations, run on every start (already-applied ones are skipped).
//! They are recorded in `presence_migrations`, so presence-service may share
//! a PostgreSQL database with chat-service without mixing their histories.

use sea_orm::{DynIden, Schema};
use sea_orm_migration::prelude::*;

use crate::entity::last_seen;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001LastSeen)]
    }

    fn migration_table_name() -> DynIden {
        "presence_migrations".into_iden()
    }
}

struct M0001LastSeen;

impl MigrationName for M0001LastSeen {
    fn name(&self) -> &str {
        "m0001_last_seen"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001LastSeen {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(schema.create_table_from_entity(last_seen::Entity))
            .await
    }
}
