//! The resolver's errors, and the one place they become gRPC statuses.

use prost::Message;
use strata_policy::Problems;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("the bundle is invalid: {} problem(s)", .0.errors().count())]
    Invalid(Problems),
    #[error("{0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
    #[error("no policy is active: publish an org bundle first")]
    NoPolicy,
    #[error("invalid credentials")]
    Unauthenticated,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ResolverError {
    /// A stable code for clients, metrics and tests
    pub fn code(&self) -> &'static str {
        match self {
            ResolverError::Invalid(_) => "resolver.invalid_bundle",
            ResolverError::BadRequest(_) => "resolver.bad_request",
            ResolverError::NotFound(_) => "resolver.not_found",
            ResolverError::Precondition(_) => "resolver.precondition",
            ResolverError::NoPolicy => "resolver.no_policy",
            ResolverError::Unauthenticated => "resolver.unauthenticated",
            ResolverError::Store(StoreError::Unavailable(_)) => "resolver.store_unavailable",
            ResolverError::Store(StoreError::Conflict { .. }) => "resolver.conflict",
            ResolverError::Store(StoreError::Backend(_) | StoreError::Corrupt { .. }) => {
                "resolver.store"
            }
            ResolverError::Internal(_) => "resolver.internal",
        }
    }
}

impl From<ResolverError> for tonic::Status {
    fn from(e: ResolverError) -> tonic::Status {
        use tonic::Code;
        let code = match &e {
            ResolverError::Invalid(_) | ResolverError::BadRequest(_) => Code::InvalidArgument,
            ResolverError::NotFound(_) => Code::NotFound,
            ResolverError::Precondition(_) => Code::FailedPrecondition,
            ResolverError::NoPolicy => Code::Unavailable,
            ResolverError::Unauthenticated => Code::Unauthenticated,
            // publishing while the database is away: retry later; decisions go on meanwhile
            ResolverError::Store(StoreError::Unavailable(_)) => Code::Unavailable,
            // another resolver kept activating revisions while this one tried to publish
            ResolverError::Store(StoreError::Conflict { .. }) => Code::Aborted,
            ResolverError::Store(StoreError::Backend(_) | StoreError::Corrupt { .. })
            | ResolverError::Internal(_) => Code::Internal,
        };
        match e {
            ResolverError::Invalid(problems) => {
                // every problem in the message (for grpcurl) and in the details (for clients)
                let mut msg = format!(
                    "the bundle is invalid: {} error(s)",
                    problems.errors().count()
                );
                for p in problems.errors() {
                    msg.push('\n');
                    msg.push_str(&p.to_string());
                }
                let details = strata_proto::v1::Problems::from(&problems).encode_to_vec();
                tonic::Status::with_details(code, msg, details.into())
            }
            other => {
                if matches!(other, ResolverError::Store(_) | ResolverError::Internal(_)) {
                    tracing::error!(error = %other, "request failed");
                }
                tonic::Status::new(code, other.to_string())
            }
        }
    }
}
