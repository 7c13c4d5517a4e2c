use sea_orm::entity::prelude::*;

/// One call, from its first ring to its end.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "calls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(indexed)]
    pub caller_id: String,
    pub caller_name: String,
    pub caller_avatar: String,
    /// The conversation the call belongs to (0: none).
    #[sea_orm(indexed)]
    pub conversation_id: i64,
    pub group_call: bool,
    /// "audio" or "video".
    pub media: String,
    /// "ringing", "ongoing", "ended", "rejected", "cancelled" or "missed".
    #[sea_orm(indexed)]
    pub state: String,
    /// The caller's idempotency key (unique per caller; NULL when none).
    pub client_call_id: Option<String>,
    pub created_at: i64,
    pub answered_at: i64,
    pub ended_at: i64,
    pub end_reason: String,
    /// Who ended it ("system" for the timers; "" while live).
    pub ended_by: String,
    pub sdp_offer: String,
    pub sdp_answer: String,
    /// When the ringing becomes missed (ringing calls).
    pub ring_deadline: i64,
    /// When the ongoing call reaches its maximum duration (ongoing calls).
    pub end_deadline: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
