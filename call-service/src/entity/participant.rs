use sea_orm::entity::prelude::*;

/// A participant's part in a call. Stored as `caller` / `callee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Role {
    #[sea_orm(string_value = "caller")]
    Caller,
    #[sea_orm(string_value = "callee")]
    Callee,
}

impl Role {
    /// The stored name, also `Participant.role` in the API.
    pub fn name(self) -> &'static str {
        match self {
            Role::Caller => "caller",
            Role::Callee => "callee",
        }
    }
}

/// One user in one call: the caller, or a callee rung by it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "call_participants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(indexed)]
    pub call_id: i64,
    #[sea_orm(indexed)]
    pub user_id: String,
    pub role: Role,
    /// The socket the participant calls from ("" until a callee answers).
    pub session_id: String,
    /// When the participant joined (0: not yet, or never).
    pub joined_at: i64,
    /// When the participant left, declined or was dropped (0: still in).
    pub left_at: i64,
    /// When the participant's call socket closed (0: connected).
    pub disconnected_at: i64,
    /// When a disconnected participant is out unless a socket comes back
    /// (0: no grace running).
    #[sea_orm(indexed)]
    pub grace_deadline: i64,
    pub muted: bool,
    pub video_enabled: bool,
    pub screen_sharing: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
