//! Schema migrations, run on every start (already-applied ones are skipped).
//! They are recorded in `notify_migrations`, so notify-service may share a
//! PostgreSQL database with chat-service and presence-service without
//! mixing their histories (its table names are its own too).

use sea_orm::{DynIden, EntityTrait, Schema};
use sea_orm_migration::prelude::*;

use crate::entity::{cursor, event, notification, story_view};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }

    fn migration_table_name() -> DynIden {
        "notify_migrations".into_iden()
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
        create(manager, &schema, event::Entity).await?;
        create(manager, &schema, notification::Entity).await?;
        create(manager, &schema, story_view::Entity).await?;
        create(manager, &schema, cursor::Entity).await?;
        // A user's page of notifications, newest first, and their unread count.
        index(
            manager,
            "ix_notifications_user_id",
            notification::Entity,
            &[notification::Column::UserId, notification::Column::Id],
            false,
        )
        .await?;
        index(
            manager,
            "ix_notifications_user_read",
            notification::Entity,
            &[notification::Column::UserId, notification::Column::Read],
            false,
        )
        .await?;
        index(
            manager,
            "ux_story_views_once",
            story_view::Entity,
            &[story_view::Column::StoryId, story_view::Column::ViewerId],
            true,
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

async fn index<E: EntityTrait + Iden + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    entity: E,
    columns: &[C],
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(entity);
    if unique {
        index.unique();
    }
    for c in columns {
        index.col(*c);
    }
    manager.create_index(index).await
}
