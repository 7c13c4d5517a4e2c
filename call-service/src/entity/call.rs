use sea_orm::entity::prelude::*;

/// Where a call is: `Ringing` → `Ongoing` → `Ended`, or `Ringing` →
/// `Rejected` / `Cancelled` / `Missed`. Stored as the lowercase name (the
/// column's values since the first migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Status {
    #[sea_orm(string_value = "ringing")]
    Ringing,
    #[sea_orm(string_value = "ongoing")]
    Ongoing,
    #[sea_orm(string_value = "ended")]
    Ended,
    #[sea_orm(string_value = "rejected")]
    Rejected,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    #[sea_orm(string_value = "missed")]
    Missed,
}

impl Status {
    /// The states a call can still change from.
    pub const LIVE: [Status; 2] = [Status::Ringing, Status::Ongoing];

    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }

    /// The stored name (`ringing`, `ended`, ...), also what a refusal
    /// carries as the call's state.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ringing => "ringing",
            Status::Ongoing => "ongoing",
            Status::Ended => "ended",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
            Status::Missed => "missed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a call carries. Stored as `audio` / `video`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Media {
    #[sea_orm(string_value = "audio")]
    Audio,
    #[sea_orm(string_value = "video")]
    Video,
}

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
    pub media: Media,
    #[sea_orm(indexed)]
    pub state: Status,
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
