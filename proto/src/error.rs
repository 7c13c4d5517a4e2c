//! Stable error codes carried in gRPC status details.
//!
//! A service returns `ServiceError`; it becomes a `tonic::Status` whose gRPC
//! code is the closest standard one and whose details hold an encoded
//! [`ErrorDetail`](crate::v1::ErrorDetail). Clients read it back with
//! [`ServiceError::from_status`], which also maps transport failures to
//! [`ErrorCode::Unavailable`].

use prost::Message;
use tonic::{Code, Status};

use crate::v1::ErrorDetail;

/// Every stable error code a confab service returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A field is missing, malformed or out of range.
    InvalidArgument,
    /// The message text is longer than the limit (10 KB).
    MessageTooLong,
    /// A message has neither text nor attachments.
    EmptyMessage,
    /// No conversation with that id.
    ConversationNotFound,
    /// No message with that id.
    MessageNotFound,
    /// The actor is not a member of the conversation.
    NotAMember,
    /// Only the author may do this to a message.
    NotAuthor,
    /// The message was deleted or recalled and cannot change any more.
    MessageGone,
    /// Any other refusal by policy.
    PermissionDenied,
    /// The named resource (call, notification, ...) does not exist.
    NotFound,
    /// The request conflicts with the current state (e.g. a call already
    /// ended); when that state is the reason, it is in
    /// [`ServiceError::state`].
    Conflict,
    /// The user is already in an ongoing call (starting or answering
    /// another one).
    UserBusy,
    /// Too many requests or sessions.
    LimitExceeded,
    /// The service could not be reached or timed out.
    Unavailable,
    /// A bug or a storage failure on the service's side.
    Internal,
}

impl ErrorCode {
    /// What a client is told when a failure carries no message of the
    /// service's own.
    pub fn generic_message(self) -> &'static str {
        match self {
            Self::Unavailable => "the service is unavailable; try again",
            Self::LimitExceeded => "too many requests, or a request too large",
            Self::InvalidArgument => "the request is invalid",
            Self::NotFound => "not found",
            Self::PermissionDenied => "not allowed",
            Self::Conflict => "the request conflicts with the current state",
            Self::UserBusy => "the user is in another call",
            _ => "the request failed",
        }
    }

    pub const ALL: [ErrorCode; 15] = [
        Self::InvalidArgument,
        Self::MessageTooLong,
        Self::EmptyMessage,
        Self::ConversationNotFound,
        Self::MessageNotFound,
        Self::NotAMember,
        Self::NotAuthor,
        Self::MessageGone,
        Self::PermissionDenied,
        Self::NotFound,
        Self::Conflict,
        Self::UserBusy,
        Self::LimitExceeded,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The code as it appears in status details and in client errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::MessageTooLong => "MESSAGE_TOO_LONG",
            Self::EmptyMessage => "EMPTY_MESSAGE",
            Self::ConversationNotFound => "CONVERSATION_NOT_FOUND",
            Self::MessageNotFound => "MESSAGE_NOT_FOUND",
            Self::NotAMember => "NOT_A_MEMBER",
            Self::NotAuthor => "NOT_AUTHOR",
            Self::MessageGone => "MESSAGE_GONE",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::UserBusy => "USER_BUSY",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn grpc_code(self) -> Code {
        match self {
            Self::InvalidArgument | Self::MessageTooLong | Self::EmptyMessage => {
                Code::InvalidArgument
            }
            Self::ConversationNotFound | Self::MessageNotFound | Self::NotFound => Code::NotFound,
            Self::NotAMember | Self::NotAuthor | Self::PermissionDenied => Code::PermissionDenied,
            Self::MessageGone | Self::Conflict | Self::UserBusy => Code::FailedPrecondition,
            Self::LimitExceeded => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with a stable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    /// With [`ErrorCode::LimitExceeded`]: how long to wait before retrying
    /// (0 when not said).
    pub retry_after_ms: i64,
    /// With [`ErrorCode::Conflict`]: the current state of what the request
    /// names, when that state is why it was refused (a call's `ended`,
    /// `missed`, ...); empty otherwise. Clients render it; they never
    /// parse `message`.
    pub state: String,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: 0,
            state: String::new(),
        }
    }

    /// `CONFLICT` because what the request names is in `state` now.
    pub fn conflict_in(state: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            state: state.into(),
            ..Self::new(ErrorCode::Conflict, message)
        }
    }

    /// `LIMIT_EXCEEDED`, to be retried after `retry_after_ms`.
    pub fn limit(message: impl Into<String>, retry_after_ms: i64) -> Self {
        Self {
            retry_after_ms: retry_after_ms.max(0),
            ..Self::new(ErrorCode::LimitExceeded, message)
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// Reads the stable code back from a status returned by a confab service.
    /// Statuses without details (transport failures, timeouts) map by their
    /// gRPC code.
    pub fn from_status(status: &Status) -> Self {
        if let Ok(detail) = ErrorDetail::decode(status.details())
            && let Some(code) = ErrorCode::parse(&detail.code)
        {
            return Self {
                retry_after_ms: detail.retry_after_ms,
                state: detail.state,
                ..Self::new(code, detail.message)
            };
        }
        let code = match status.code() {
            Code::InvalidArgument => ErrorCode::InvalidArgument,
            Code::NotFound => ErrorCode::NotFound,
            Code::PermissionDenied | Code::Unauthenticated => ErrorCode::PermissionDenied,
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => ErrorCode::Conflict,
            Code::ResourceExhausted => ErrorCode::LimitExceeded,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                ErrorCode::Unavailable
            }
            _ => ErrorCode::Internal,
        };
        // A status without confab's detail came from below the service's
        // rules (the transport, a size limit, a timeout): its message names
        // internals a client has no use for, so it is logged, not passed on.
        tracing::warn!(grpc_code = ?status.code(), message = status.message(), "a call failed below the service");
        Self::new(code, code.generic_message())
    }
}

/// A failed call as its caller decides on it ([`ServiceError::from_status`]).
impl From<Status> for ServiceError {
    fn from(status: Status) -> Self {
        Self::from_status(&status)
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let detail = ErrorDetail {
            code: e.code.as_str().to_string(),
            message: e.message.clone(),
            retry_after_ms: e.retry_after_ms,
            state: e.state.clone(),
        };
        Status::with_details(e.code.grpc_code(), e.message, detail.encode_to_vec().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_from_below_the_service_is_not_shown_to_clients() {
        let status = Status::resource_exhausted(
            "decoded message length too large: found 5242880 bytes, the limit is: 4194304 bytes",
        );
        let e = ServiceError::from_status(&status);
        assert_eq!(e.code, ErrorCode::LimitExceeded);
        assert!(!e.message.contains("bytes"), "{}", e.message);
        let e = ServiceError::from_status(&Status::unavailable("tcp connect error: refused"));
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(!e.message.contains("tcp"), "{}", e.message);
    }

    #[test]
    fn codes_survive_a_status_round_trip() {
        for code in ErrorCode::ALL {
            let status: Status = ServiceError::new(code, "why").into();
            let back = ServiceError::from_status(&status);
            assert_eq!(back.code, code);
            assert_eq!(back.message, "why");
        }
    }

    #[test]
    fn retry_after_survives_a_status_round_trip() {
        let status: Status = ServiceError::limit("slow down", 1500).into();
        let back = ServiceError::from_status(&status);
        assert_eq!(back.code, ErrorCode::LimitExceeded);
        assert_eq!(back.retry_after_ms, 1500);
    }

    #[test]
    fn a_conflicts_state_survives_a_status_round_trip() {
        let status: Status = ServiceError::conflict_in("ended", "the call is over").into();
        let back = ServiceError::from_status(&status);
        assert_eq!(back.code, ErrorCode::Conflict);
        assert_eq!(back.state, "ended");
        assert_eq!(back.message, "the call is over");
    }

    #[test]
    fn transport_failures_read_as_unavailable() {
        let status = Status::unavailable("connection refused");
        assert_eq!(
            ServiceError::from_status(&status).code,
            ErrorCode::Unavailable
        );
    }
}
