use sea_orm::entity::prelude::*;

/// A user's first view of a story (one row per story and viewer).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "story_views")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The story's id in the service that owns stories.
    pub story_id: String,
    pub viewer_id: String,
    pub viewer_name: String,
    pub viewer_username: String,
    #[sea_orm(column_type = "Text")]
    pub viewer_avatar: String,
    pub viewed_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
