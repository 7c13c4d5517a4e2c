use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "members")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(indexed)]
    pub conversation_id: i64,
    #[sea_orm(indexed)]
    pub user_id: String,
    /// "owner" or "member".
    pub role: String,
    pub joined_at: i64,
    /// Highest message id this member has read (0 when none).
    pub last_read_message_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
