use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(indexed)]
    pub conversation_id: i64,
    pub sender_id: String,
    pub sender_name: String,
    pub sender_username: String,
    pub sender_avatar: String,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    /// JSON array of attachments.
    #[sea_orm(column_type = "Text")]
    pub attachments: String,
    pub kind: String,
    pub reply_to_id: Option<i64>,
    /// JSON array of mentioned user ids.
    #[sea_orm(column_type = "Text")]
    pub mentions: String,
    pub client_message_id: Option<String>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub deleted: bool,
    pub recalled: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
