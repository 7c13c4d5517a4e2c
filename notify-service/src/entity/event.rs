use sea_orm::entity::prelude::*;

/// One publish: a domain event from an internal service, or a chat message
/// some members missed. Its idempotency key, when it has one, is unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notify_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub idempotency_key: Option<String>,
    /// A digest of what was asked, so a key reused for another request is
    /// refused instead of answered with the wrong result.
    pub fingerprint: String,
    pub event_type: String,
    #[sea_orm(column_type = "Text")]
    pub payload_json: String,
    pub everyone: bool,
    pub recipient_count: i32,
    /// Whether each recipient got a notification (the `n_*` and `actor_*`
    /// columns describe it).
    pub has_notification: bool,
    pub n_type: String,
    pub n_title: String,
    #[sea_orm(column_type = "Text")]
    pub n_content: String,
    #[sea_orm(column_type = "Text")]
    pub n_link: String,
    pub actor_id: String,
    pub actor_name: String,
    pub actor_username: String,
    #[sea_orm(column_type = "Text")]
    pub actor_avatar: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
