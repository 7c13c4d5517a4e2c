//! Schema migrations, run on every start (already-applied ones are skipped).
//! They are recorded in `call_migrations`, so call-service may share a
//! PostgreSQL database with the other services without mixing histories.

use sea_orm::{DynIden, EntityTrait, Schema};
use sea_orm_migration::prelude::*;

use crate::entity::{call, participant};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Calls)]
    }

    fn migration_table_name() -> DynIden {
        "call_migrations".into_iden()
    }
}

struct M0001Calls;

impl MigrationName for M0001Calls {
    fn name(&self) -> &str {
        "m0001_calls"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Calls {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, call::Entity).await?;
        create(manager, &schema, participant::Entity).await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_call_participants_once")
                    .table(participant::Entity)
                    .unique()
                    .col(participant::Column::CallId)
                    .col(participant::Column::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_calls_client_call_id")
                    .table(call::Entity)
                    .unique()
                    .col(call::Column::CallerId)
                    .col(call::Column::ClientCallId)
                    .to_owned(),
            )
            .await
    }
}

async fn create<E: EntityTrait>(
    manager: &SchemaManager<'_>,
    schema: &Schema,
    entity: E,
) -> Result<(), DbErr> {
    manager
        .create_table(schema.create_table_from_entity(entity))
        .await?;
    for index in schema.create_index_from_entity(entity) {
        manager.create_index(index).await?;
    }
    Ok(())
}
