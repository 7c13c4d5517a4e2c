//! Schema migrations, run on every start (already-applied ones are skipped).

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;

use crate::entity::{conversation, delivery, member, message, reaction};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }
}

struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, conversation::Entity).await?;
        create(manager, &schema, member::Entity).await?;
        create(manager, &schema, message::Entity).await?;
        create(manager, &schema, reaction::Entity).await?;
        create(manager, &schema, delivery::Entity).await?;
        unique(
            manager,
            "ux_members_conv_user",
            member::Entity,
            &[member::Column::ConversationId, member::Column::UserId],
        )
        .await?;
        unique(
            manager,
            "ux_messages_client_id",
            message::Entity,
            &[
                message::Column::ConversationId,
                message::Column::SenderId,
                message::Column::ClientMessageId,
            ],
        )
        .await?;
        unique(
            manager,
            "ux_reactions_once",
            reaction::Entity,
            &[
                reaction::Column::MessageId,
                reaction::Column::UserId,
                reaction::Column::Emoji,
            ],
        )
        .await?;
        unique(
            manager,
            "ux_deliveries_once",
            delivery::Entity,
            &[delivery::Column::MessageId, delivery::Column::UserId],
        )
        .await?;
        Ok(())
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

async fn unique<E: EntityTrait + Iden + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    entity: E,
    columns: &[C],
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(entity).unique();
    for c in columns {
        index.col(*c);
    }
    manager.create_index(index).await
}
