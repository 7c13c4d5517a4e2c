use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// "direct" or "group".
    pub kind: String,
    pub name: String,
    pub created_by: String,
    pub created_at: i64,
    /// For direct conversations: the two user ids, sorted, joined by a space;
    /// unique, so finding or creating a direct conversation never duplicates.
    #[sea_orm(unique)]
    pub direct_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
