//! The gRPC adapters: authenticate, decode, call the resolver / the policy core, encode.

use std::pin::Pin;
use std::sync::Arc;

use strata_policy::explain::{effective_settings, explain};
use strata_proto::v1::admin_service_server::AdminService;
use strata_proto::v1::policy_service_server::PolicyService;
use strata_proto::v1::{self, decide_request::Identity};
use tokio_stream::{Stream, StreamExt, wrappers::WatchStream};
use tonic::{Request, Response, Status};

use crate::error::ResolverError;
use crate::state::{Active, Resolver};

/// Most requests one BatchDecide may carry
pub const MAX_BATCH: usize = 1_000;
/// Most `candidate_models` one ResolveSettings may carry (a provider's catalogue holds hundreds)
pub const MAX_CANDIDATE_MODELS: usize = 10_000;

fn bearer<T>(req: &Request<T>) -> Option<&str> {
    let v = req.metadata().get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

#[derive(Clone)]
pub struct PolicySvc {
    pub resolver: Arc<Resolver>,
}

#[derive(Clone)]
pub struct AdminSvc {
    pub resolver: Arc<Resolver>,
}

impl PolicySvc {
    fn auth<T>(&self, req: &Request<T>) -> Result<Arc<Active>, Status> {
        match bearer(req) {
            Some(t) if self.resolver.is_service(t) => {}
            _ => return Err(ResolverError::Unauthenticated.into()),
        }
        self.resolver
            .active()
            .ok_or_else(|| ResolverError::NoPolicy.into())
    }

    /// Who the request is about, and the token it came with (whose projects limit it)
    fn identity(
        &self,
        identity: &Option<Identity>,
    ) -> Result<(v1::Principal, Option<Arc<v1::StoredToken>>), Status> {
        match identity {
            Some(Identity::Token(t)) => {
                let rec = self
                    .resolver
                    .token(t)
                    .ok_or(ResolverError::Unauthenticated)?;
                Ok((
                    v1::Principal {
                        user: rec.user.clone(),
                        groups: rec.groups.clone(),
                    },
                    Some(rec),
                ))
            }
            Some(Identity::Principal(p)) => Ok((p.clone(), None)),
            None => Err(ResolverError::BadRequest(
                "the request names no identity: set `token` or `principal`".to_string(),
            )
            .into()),
        }
    }

    fn decide_one(
        &self,
        active: &Active,
        req: &v1::DecideRequest,
    ) -> Result<v1::DecideResponse, Status> {
        let (principal, token) = self.identity(&req.identity)?;
        let mut request = strata_proto::request(req, &principal)
            .map_err(|e| Status::invalid_argument(format!("{}: {e}", e.code())))?;
        request.token_projects = bound_projects(token.as_deref());
        let mut resp =
            strata_proto::into_decide_response(strata_policy::decide(&active.snapshot, &request));
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        resp.decision_id = uuid::Uuid::now_v7()
            .hyphenated()
            .encode_lower(&mut id)
            .to_string();
        resp.principal = Some(principal);
        Ok(resp)
    }
}

/// The projects a token is bound to, as the core's request carries them (`None`: unbound)
fn bound_projects(token: Option<&v1::StoredToken>) -> Option<Vec<String>> {
    token
        .filter(|t| !t.projects.is_empty())
        .map(|t| t.projects.clone())
}

impl PolicySvc {
    /// `Decide` without a transport, for a gateway in the same process (which needs no service
    /// token: it holds the resolver itself). Decides exactly as the gRPC method does.
    pub fn decide_in_process(&self, req: &v1::DecideRequest) -> Result<v1::DecideResponse, Status> {
        let active = self
            .resolver
            .active()
            .ok_or_else(|| Status::from(ResolverError::NoPolicy))?;
        self.decide_one(&active, req)
    }
}

type WatchResult = Pin<Box<dyn Stream<Item = Result<v1::RevisionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl PolicyService for PolicySvc {
    async fn decide(
        &self,
        req: Request<v1::DecideRequest>,
    ) -> Result<Response<v1::DecideResponse>, Status> {
        let active = self.auth(&req)?;
        Ok(Response::new(self.decide_one(&active, req.get_ref())?))
    }

    async fn batch_decide(
        &self,
        req: Request<v1::BatchDecideRequest>,
    ) -> Result<Response<v1::BatchDecideResponse>, Status> {
        let active = self.auth(&req)?;
        let reqs = &req.get_ref().requests;
        if reqs.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "{} requests in one batch, more than the limit of {MAX_BATCH}",
                reqs.len()
            )));
        }
        if !req.get_ref().independent {
            let responses = reqs
                .iter()
                .map(|r| self.decide_one(&active, r))
                .collect::<Result<_, _>>()?;
            return Ok(Response::new(v1::BatchDecideResponse {
                responses,
                failures: Vec::new(),
            }));
        }
        let mut out = v1::BatchDecideResponse {
            responses: Vec::with_capacity(reqs.len()),
            failures: Vec::new(),
        };
        for (i, r) in reqs.iter().enumerate() {
            match self.decide_one(&active, r) {
                Ok(d) => out.responses.push(d),
                Err(s) => {
                    out.responses.push(v1::DecideResponse::default());
                    out.failures.push(v1::BatchFailure {
                        index: i as u32,
                        code: s.code() as i32,
                        message: s.message().to_string(),
                    });
                }
            }
        }
        Ok(Response::new(out))
    }

    async fn resolve_settings(
        &self,
        req: Request<v1::ResolveSettingsRequest>,
    ) -> Result<Response<v1::ResolveSettingsResponse>, Status> {
        let active = self.auth(&req)?;
        let r = req.get_ref();
        if r.candidate_models.len() > MAX_CANDIDATE_MODELS {
            return Err(ResolverError::BadRequest(format!(
                "{} candidate models, more than the limit of {MAX_CANDIDATE_MODELS}",
                r.candidate_models.len()
            ))
            .into());
        }
        let identity = r.identity.clone().map(|i| match i {
            v1::resolve_settings_request::Identity::Token(t) => Identity::Token(t),
            v1::resolve_settings_request::Identity::Principal(p) => Identity::Principal(p),
        });
        let (principal, token) = self.identity(&identity)?;
        let mut base = strata_policy::Request::scope(
            principal.user,
            principal.groups,
            (!r.project.is_empty()).then(|| r.project.clone()),
            (!r.folder.is_empty()).then(|| r.folder.clone()),
        );
        base.token_projects = bound_projects(token.as_deref());
        let settings = effective_settings(
            &active.snapshot,
            &base,
            (!r.base_url.is_empty()).then_some(r.base_url.as_str()),
            &r.candidate_models,
        );
        strata_proto::resolve_settings_response(active.snapshot.revision.to_string(), &settings)
            .map(Response::new)
            .map_err(|e| Status::internal(e.to_string()))
    }

    async fn droid_org_settings(
        &self,
        req: Request<v1::DroidOrgSettingsRequest>,
    ) -> Result<Response<v1::DroidOrgSettingsResponse>, Status> {
        let active = self.auth(&req)?;
        let r = req.get_ref();
        let identity = r.identity.clone().map(|i| match i {
            v1::droid_org_settings_request::Identity::Token(t) => Identity::Token(t),
            v1::droid_org_settings_request::Identity::Principal(p) => Identity::Principal(p),
        });
        let (principal, token) = self.identity(&identity)?;
        if r.gateway_url.is_empty() {
            return Err(ResolverError::BadRequest(
                "`gateway_url` is empty: the document points Droid's custom models at it".into(),
            )
            .into());
        }
        self.resolver
            .droid_docs
            .get(
                &active.snapshot,
                &principal,
                bound_projects(token.as_deref())
                    .or_else(|| (!r.projects.is_empty()).then(|| r.projects.clone())),
                &r.gateway_url,
            )
            .map(|d| Response::new((*d).clone()))
            .map_err(|e| {
                Status::failed_precondition(format!(
                    "the active revision cannot be rendered as Droid's org level: {e}"
                ))
            })
    }

    async fn explain(
        &self,
        req: Request<v1::ExplainRequest>,
    ) -> Result<Response<v1::ExplainResponse>, Status> {
        let active = self.auth(&req)?;
        let inner = req
            .get_ref()
            .request
            .clone()
            .ok_or_else(|| Status::invalid_argument("the explain request has no `request`"))?;
        let decision = self.decide_one(&active, &inner)?;
        let (principal, token) = self.identity(&inner.identity)?;
        let mut request = strata_proto::request(&inner, &principal)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        request.token_projects = bound_projects(token.as_deref());
        let x = explain(&active.snapshot, &request);
        strata_proto::explain_response(decision, &x)
            .map(Response::new)
            .map_err(|e| Status::internal(e.to_string()))
    }

    type WatchStream = WatchResult;

    async fn watch(&self, req: Request<v1::WatchRequest>) -> Result<Response<WatchResult>, Status> {
        match bearer(&req) {
            Some(t) if self.resolver.is_service(t) => {}
            _ => return Err(ResolverError::Unauthenticated.into()),
        }
        // every revision, until the server shuts down (`None` marks that)
        let events = WatchStream::new(self.resolver.subscribe()).filter_map(|e| e.map(Some));
        let stop = WatchStream::new(self.resolver.stopping())
            .filter(|stopping| *stopping)
            .map(|_| None);
        let stream = events
            .merge(stop)
            .take_while(Option::is_some)
            .filter_map(|e| e.map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }
}

impl AdminSvc {
    fn auth<T>(&self, req: &Request<T>) -> Result<(), Status> {
        match bearer(req) {
            Some(t) if self.resolver.is_admin(t) => Ok(()),
            _ => Err(ResolverError::Unauthenticated.into()),
        }
    }
}

fn published(
    (revision, changed, warnings): (String, bool, strata_policy::Problems),
) -> v1::PublishResponse {
    v1::PublishResponse {
        revision,
        changed,
        warnings: warnings.problems.iter().map(v1::Problem::from).collect(),
    }
}

#[tonic::async_trait]
impl AdminService for AdminSvc {
    async fn publish_org(
        &self,
        req: Request<v1::PublishOrgRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        self.auth(&req)?;
        let r = req.into_inner();
        Ok(Response::new(published(
            self.resolver.publish_org(r.files, r.message).await?,
        )))
    }

    async fn publish_project(
        &self,
        req: Request<v1::PublishProjectRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        self.auth(&req)?;
        let r = req.into_inner();
        Ok(Response::new(published(
            self.resolver
                .publish_project(r.project_id, r.files, r.folders, r.message)
                .await?,
        )))
    }

    async fn list_revisions(
        &self,
        req: Request<v1::ListRevisionsRequest>,
    ) -> Result<Response<v1::ListRevisionsResponse>, Status> {
        self.auth(&req)?;
        let (revs, active) = self.resolver.revisions().await?;
        let active = active.unwrap_or_default();
        let revisions = revs
            .into_iter()
            .map(|r| v1::RevisionInfo {
                active: r.revision == active,
                projects: r.project_blobs.keys().cloned().collect(),
                project_count: r.project_count.unwrap_or(0),
                changed_projects: r.changed_projects,
                revision: r.revision,
                created_at_unix_ms: r.created_at_unix_ms,
                kind: r.kind,
                message: r.message,
            })
            .collect();
        Ok(Response::new(v1::ListRevisionsResponse {
            revisions,
            active,
        }))
    }

    async fn rollback(
        &self,
        req: Request<v1::RollbackRequest>,
    ) -> Result<Response<v1::RollbackResponse>, Status> {
        self.auth(&req)?;
        let revision = self.resolver.rollback(&req.get_ref().revision).await?;
        Ok(Response::new(v1::RollbackResponse { revision }))
    }

    async fn create_token(
        &self,
        req: Request<v1::CreateTokenRequest>,
    ) -> Result<Response<v1::CreateTokenResponse>, Status> {
        self.auth(&req)?;
        let r = req.into_inner();
        let (token, rec) = self
            .resolver
            .create_token(r.user, r.groups, r.projects, r.description)
            .await?;
        Ok(Response::new(v1::CreateTokenResponse {
            token,
            token_id: rec.token_id,
        }))
    }

    async fn list_tokens(
        &self,
        req: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        self.auth(&req)?;
        let tokens = self
            .resolver
            .list_tokens()
            .await?
            .into_iter()
            .map(|t| v1::TokenInfo {
                token_id: t.token_id,
                user: t.user,
                groups: t.groups,
                projects: t.projects,
                description: t.description,
                created_at_unix_ms: t.created_at_unix_ms,
                revoked: t.revoked,
            })
            .collect();
        Ok(Response::new(v1::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        req: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        self.auth(&req)?;
        self.resolver.revoke_token(&req.get_ref().token_id).await?;
        Ok(Response::new(v1::RevokeTokenResponse {}))
    }
}
