//! Reports from clients (`story_viewed`): a story's first view by a user
//! is recorded and published for internal services, a repeat is a
//! `duplicate` no-op; the story's views are listed a page at a time.

use confab_kit::{db_err, now_ms, page};
use confab_proto::v1::{self, Audience, notify_event::Kind};
use confab_proto::{ServiceError, ids};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::Value;

use super::publish::json_object;
use super::{Notify, REPORT_TYPES, Result, check_user_id};
use crate::entity::story_view;

impl Notify {
    pub async fn report(&self, req: v1::ReportRequest) -> Result<v1::ReportResponse> {
        let actor = match &req.actor {
            Some(a) if !a.id.trim().is_empty() => a.clone(),
            _ => return Err(ServiceError::invalid("actor.id is required")),
        };
        check_user_id(&actor.id, "actor.id")?;
        if !REPORT_TYPES.contains(&req.r#type.as_str()) {
            return Err(ServiceError::invalid(format!(
                "unknown report type {:?}: use one of {}",
                req.r#type,
                REPORT_TYPES.join(", ")
            )));
        }
        let payload = json_object(&req.payload_json)?;
        let story = payload.get("storyId").cloned().unwrap_or(Value::Null);
        let story_id = story_id_of(&story)?;
        let now = now_ms();
        let added = story_view::Entity::insert(story_view::ActiveModel {
            story_id: Set(story_id.clone()),
            viewer_id: Set(actor.id.clone()),
            viewer_name: Set(actor.name.clone()),
            viewer_username: Set(actor.username.clone()),
            viewer_avatar: Set(actor.avatar.clone()),
            viewed_at: Set(now),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([story_view::Column::StoryId, story_view::Column::ViewerId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(db_err)?;
        if added == 0 {
            return Ok(v1::ReportResponse { duplicate: true });
        }
        // The canonical payload: the story as the client named it, the
        // viewer from the token.
        let payload = serde_json::json!({ "storyId": story, "viewerId": actor.id });
        self.emit(
            Audience::default(),
            Kind::DomainEvent(v1::DomainEvent {
                r#type: req.r#type,
                payload_json: payload.to_string(),
                actor_id: actor.id,
                event_id: String::new(),
                at_ms: now,
            }),
        )
        .await;
        Ok(v1::ReportResponse { duplicate: false })
    }

    pub async fn story_views(
        &self,
        req: v1::ListStoryViewsRequest,
    ) -> Result<v1::ListStoryViewsResponse> {
        let story_id = story_id_of(&Value::String(req.story_id.clone()))?;
        let after = ids::parse_opt(&req.after)
            .map_err(|_| ServiceError::invalid("after must be a cursor from next_after"))?;
        let limit = page::limit(req.limit, 100, 1000)?;
        let mut q =
            story_view::Entity::find().filter(story_view::Column::StoryId.eq(story_id.clone()));
        if let Some(a) = after {
            q = q.filter(story_view::Column::Id.gt(a));
        }
        let mut rows = q
            .order_by_asc(story_view::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let more = page::trim(&mut rows, limit);
        let next_after = page::next_cursor(more, rows.last().map(|r| r.id));
        let total = story_view::Entity::find()
            .filter(story_view::Column::StoryId.eq(story_id))
            .count(&self.db)
            .await
            .map_err(db_err)? as u32;
        Ok(v1::ListStoryViewsResponse {
            views: rows
                .into_iter()
                .map(|r| v1::StoryView {
                    story_id: r.story_id,
                    viewer: Some(v1::Actor {
                        id: r.viewer_id,
                        name: r.viewer_name,
                        avatar: r.viewer_avatar,
                        username: r.viewer_username,
                    }),
                    viewed_at_ms: r.viewed_at,
                })
                .collect(),
            next_after,
            total,
        })
    }
}

/// A story id as a client may send it: a positive integer or a non-empty
/// string of at most 128 bytes.
pub(super) fn story_id_of(v: &Value) -> Result<String> {
    let s = match v {
        Value::Number(n) => match n.as_u64() {
            Some(n) if n > 0 => n.to_string(),
            _ => String::new(),
        },
        Value::String(s) => s.trim().to_string(),
        _ => String::new(),
    };
    if s.is_empty() || s.len() > 128 {
        return Err(ServiceError::invalid(
            "storyId must be a positive integer or a string of 1..=128 bytes",
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_ids_are_numbers_or_strings() {
        assert_eq!(story_id_of(&serde_json::json!(12)).unwrap(), "12");
        assert_eq!(story_id_of(&serde_json::json!("s-1")).unwrap(), "s-1");
        for bad in [
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(""),
            serde_json::json!(null),
            serde_json::json!({}),
        ] {
            assert!(story_id_of(&bad).is_err(), "{bad}");
        }
    }
}
