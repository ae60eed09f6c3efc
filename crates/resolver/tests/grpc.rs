//! The resolver over real gRPC on 127.0.0.1:0, with a real sled store on disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_policy::FileTree;
use strata_proto::v1::{self};
use tonic::{Code, Request};

#[path = "support/server.rs"]
mod server;
use server::{ADMIN, SERVICE, Server, auth};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/examples/acme")
}

fn files(dir: &Path) -> Vec<v1::File> {
    strata_proto::files(&FileTree::read_path(dir).unwrap())
}

fn org_files(settings: &str) -> Vec<v1::File> {
    vec![v1::File {
        path: "settings.json".into(),
        content: settings.as_bytes().to_vec(),
    }]
}

fn model_req(user: &str, groups: &[&str], project: &str, model: &str) -> v1::DecideRequest {
    v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Principal(v1::Principal {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        })),
        project: project.into(),
        target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
            model: model.into(),
            base_url: "http://127.0.0.1:8787/v1".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

async fn publish_examples(s: &Server) -> String {
    let mut admin = s.admin().await;
    admin
        .publish_org(auth(
            ADMIN,
            v1::PublishOrgRequest {
                files: files(&examples().join("org")),
                message: "acme".into(),
            },
        ))
        .await
        .unwrap();
    let r = admin
        .publish_project(auth(
            ADMIN,
            v1::PublishProjectRequest {
                project_id: "web".into(),
                files: files(&examples().join("project/.factory")),
                folders: vec![v1::FolderLayer {
                    path: "services/billing".into(),
                    files: files(&examples().join("project/services/billing/.factory")),
                }],
                message: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.changed);
    r.revision
}

/// (effect, determining rule ids, revision) for a few fixed requests
async fn decisions(s: &Server) -> Vec<(i32, Vec<String>, String)> {
    let mut p = s.policy().await;
    let mut out = Vec::new();
    for (user, groups, project, model) in [
        ("alice", &["leads"][..], "web", "gpt-4o"),
        ("alice", &["leads"][..], "web", "claude-opus-4-1"),
        ("bob", &[][..], "web", "claude-opus-4-1"),
        ("bob", &[][..], "web", "acme-ft-codereview-v3"),
        ("bob", &[][..], "", "acme-ft-codereview-v3"),
        ("ivan", &[][..], "web", "claude-sonnet-4-5"),
    ] {
        let d = p
            .decide(auth(SERVICE, model_req(user, groups, project, model)))
            .await
            .unwrap()
            .into_inner();
        out.push((
            d.effect,
            d.determined_by.iter().map(|r| r.rule.clone()).collect(),
            d.revision,
        ));
    }
    out
}

#[tokio::test]
async fn publish_decide_restart_same_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let rev = publish_examples(&s).await;
    let before = decisions(&s).await;
    assert!(
        before.iter().all(|(_, _, r)| *r == rev),
        "every decision names the active revision"
    );
    assert_eq!(
        before[0].0,
        v1::Effect::Deny as i32,
        "a banned model is denied"
    );
    assert_eq!(
        before[0].1,
        vec!["org#modelPolicy.blockedModelIds".to_string()]
    );
    assert_eq!(
        before[3].0,
        v1::Effect::Allow as i32,
        "the project's fine-tune is allowed in the project"
    );
    assert_eq!(before[4].0, v1::Effect::Deny as i32, "and not outside it");
    s.stop().await;

    let s = Server::start(dir.path()).await;
    let after = decisions(&s).await;
    assert_eq!(
        before, after,
        "a restart serves the same revision and the same decisions"
    );
    s.stop().await;
}

#[tokio::test]
async fn decide_by_token_resolves_identity_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    publish_examples(&s).await;
    let mut admin = s.admin().await;
    let created = admin
        .create_token(auth(
            ADMIN,
            v1::CreateTokenRequest {
                user: "alice".into(),
                groups: vec!["leads".into()],
                projects: vec!["web".into()],
                description: "laptop".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        created.token.len() >= 64,
        "at least 256 bits of randomness, hex"
    );

    let mut req = model_req("ignored", &[], "web", "claude-opus-4-1");
    req.identity = Some(v1::decide_request::Identity::Token(created.token.clone()));
    let mut p = s.policy().await;
    let d = p
        .decide(auth(SERVICE, req.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.principal.as_ref().map(|p| p.user.as_str()), Some("alice"));
    assert_eq!(
        d.effect,
        v1::Effect::Allow as i32,
        "alice is in leads: {}",
        d.reason
    );
    assert!(!d.decision_id.is_empty());

    // a token bound to `web` does not work elsewhere
    let mut other = req.clone();
    other.project = "payments".into();
    let d = p.decide(auth(SERVICE, other)).await.unwrap().into_inner();
    assert_eq!(d.effect, v1::Effect::Deny as i32);
    assert_eq!(d.determined_by[0].rule, "token#projects");
    assert!(d.reason.contains("`payments`"), "{}", d.reason);
    // the binding is the core's: a request that names no project is refused too, and the
    // listings and explanations for the token honour it (no model for `payments`, some for `web`)
    let mut none = req.clone();
    none.project = String::new();
    let d = p.decide(auth(SERVICE, none)).await.unwrap().into_inner();
    assert_eq!(d.effect, v1::Effect::Deny as i32);
    assert_eq!(d.determined_by[0].rule, "token#projects");
    for (project, any) in [("payments", false), ("web", true)] {
        let r = p
            .resolve_settings(auth(
                SERVICE,
                v1::ResolveSettingsRequest {
                    identity: Some(v1::resolve_settings_request::Identity::Token(
                        created.token.clone(),
                    )),
                    project: project.into(),
                    folder: String::new(),
                    base_url: String::new(),
                    candidate_models: Vec::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let v: serde_json::Value = serde_json::from_str(&r.settings_json).unwrap();
        let models = v["models"].as_array().cloned().unwrap_or_default();
        assert_eq!(!models.is_empty(), any, "{project}: {models:?}");
        // the typed answer is the JSON one
        let typed: Vec<&str> = r.models.iter().map(|m| m.model.as_str()).collect();
        let json: Vec<&str> = models
            .iter()
            .map(|m| m["model"].as_str().unwrap())
            .collect();
        assert_eq!(typed, json);
        assert_eq!(
            r.hidden_models.len(),
            v["hiddenModels"].as_array().map_or(0, Vec::len)
        );
        if !any {
            let hidden = v["hiddenModels"].as_array().cloned().unwrap_or_default();
            assert!(
                !hidden.is_empty()
                    && hidden.iter().all(|m| m["reason"]
                        .as_str()
                        .unwrap_or("")
                        .contains("token#projects")),
                "{hidden:?}"
            );
        }
    }
    let mut elsewhere = req.clone();
    elsewhere.project = "payments".into();
    let x = p
        .explain(auth(
            SERVICE,
            v1::ExplainRequest {
                request: Some(elsewhere),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let v: serde_json::Value = serde_json::from_str(&x.explanation_json).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["determinedBy"][0]["rule"], "token#projects");

    // the token is stored only as a hash
    let listed = admin
        .list_tokens(auth(ADMIN, v1::ListTokensRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tokens.len(), 1);
    let raw = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect::<Vec<_>>();
    assert!(
        raw.iter().all(|bytes| !bytes
            .windows(created.token.len())
            .any(|w| w == created.token.as_bytes())),
        "the token is not on disk in clear"
    );

    admin
        .revoke_token(auth(
            ADMIN,
            v1::RevokeTokenRequest {
                token_id: created.token_id.clone(),
            },
        ))
        .await
        .unwrap();
    let err = p.decide(auth(SERVICE, req)).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "a revoked token is rejected"
    );
    s.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_unauthenticated_without_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    publish_examples(&s).await;
    let mut admin = s.admin().await;
    let e1 = admin
        .list_revisions(Request::new(v1::ListRevisionsRequest {}))
        .await
        .unwrap_err();
    let e2 = admin
        .list_revisions(auth("wrong", v1::ListRevisionsRequest {}))
        .await
        .unwrap_err();
    let e3 = admin
        .list_revisions(auth(SERVICE, v1::ListRevisionsRequest {}))
        .await
        .unwrap_err();
    for e in [&e1, &e2, &e3] {
        assert_eq!(e.code(), Code::Unauthenticated);
        assert_eq!(e.message(), "invalid credentials");
    }
    let mut p = s.policy().await;
    let e = p
        .decide(auth("wrong", model_req("a", &[], "", "m")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut req = model_req("a", &[], "", "m");
    req.identity = Some(v1::decide_request::Identity::Token("strata_gw_nope".into()));
    let e = p.decide(auth(SERVICE, req)).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::Unauthenticated, "invalid credentials")
    );
    s.stop().await;
}

#[tokio::test]
async fn no_policy_yet_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let e = s
        .policy()
        .await
        .decide(auth(SERVICE, model_req("a", &[], "", "m")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    let e = s
        .admin()
        .await
        .publish_project(auth(
            ADMIN,
            v1::PublishProjectRequest {
                project_id: "web".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    s.stop().await;
}

#[tokio::test]
async fn invalid_bundle_keeps_the_active_revision_and_lists_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let rev = publish_examples(&s).await;
    let before = decisions(&s).await;
    let bad = vec![
        v1::File {
            path: "settings.json".into(),
            content: br#"{"modelPolicy": {"blockedModelIds": "x", "allowCustomModels": 1}}"#
                .to_vec(),
        },
        v1::File {
            path: "policy.json".into(),
            content: br#"{"surprise": true}"#.to_vec(),
        },
        v1::File {
            path: "policies/a.cedar".into(),
            content: b"permit (principal, action, resource) when { context.nope };".to_vec(),
        },
    ];
    let e = s
        .admin()
        .await
        .publish_org(auth(
            ADMIN,
            v1::PublishOrgRequest {
                files: bad,
                message: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    use prost::Message;
    let problems = v1::Problems::decode(e.details()).unwrap();
    let codes: HashSet<&str> = problems.problems.iter().map(|p| p.code.as_str()).collect();
    assert!(
        codes.contains("json.type")
            && codes.contains("json.unknown_field")
            && codes.contains("cedar.schema"),
        "{codes:?}"
    );
    assert!(
        problems
            .problems
            .iter()
            .filter(|p| p.code == "json.type")
            .count()
            == 2,
        "both wrong types are reported"
    );
    assert!(
        e.message().contains("settings.json"),
        "grpcurl users see the problems too: {}",
        e.message()
    );

    let traversal = vec![v1::File {
        path: "../etc/passwd".into(),
        content: b"{}".to_vec(),
    }];
    let e = s
        .admin()
        .await
        .publish_org(auth(
            ADMIN,
            v1::PublishOrgRequest {
                files: traversal,
                message: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let after = decisions(&s).await;
    assert_eq!(before, after, "nothing active changed");
    assert!(after.iter().all(|(_, _, r)| *r == rev));
    s.stop().await;
}

#[tokio::test]
async fn rollback_restores_an_earlier_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let mut admin = s.admin().await;
    let r1 = admin
        .publish_org(auth(
            ADMIN,
            v1::PublishOrgRequest {
                files: org_files(r#"{"modelPolicy": {"blockedModelIds": ["m1"]}}"#),
                message: "one".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let r2 = admin
        .publish_org(auth(
            ADMIN,
            v1::PublishOrgRequest {
                files: org_files(r#"{"modelPolicy": {"blockedModelIds": ["m2"]}}"#),
                message: "two".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_ne!(r1, r2);
    let mut p = s.policy().await;
    let effect = |d: v1::DecideResponse| (d.effect, d.revision);
    assert_eq!(
        effect(
            p.decide(auth(SERVICE, model_req("u", &[], "", "m1")))
                .await
                .unwrap()
                .into_inner()
        ),
        (v1::Effect::Allow as i32, r2.clone())
    );
    let back = admin
        .rollback(auth(
            ADMIN,
            v1::RollbackRequest {
                revision: r1[..10].to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.revision, r1);
    assert_eq!(
        effect(
            p.decide(auth(SERVICE, model_req("u", &[], "", "m1")))
                .await
                .unwrap()
                .into_inner()
        ),
        (v1::Effect::Deny as i32, r1.clone())
    );
    let listed = admin
        .list_revisions(auth(ADMIN, v1::ListRevisionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.active, r1);
    assert_eq!(listed.revisions.len(), 2);
    let e = admin
        .rollback(auth(
            ADMIN,
            v1::RollbackRequest {
                revision: "ffffffff".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // the rollback survives a restart
    s.stop().await;
    let s = Server::start(dir.path()).await;
    let d = s
        .policy()
        .await
        .decide(auth(SERVICE, model_req("u", &[], "", "m1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((d.effect, d.revision), (v1::Effect::Deny as i32, r1));
    s.stop().await;
}

#[tokio::test]
async fn watch_sees_every_publish() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let mut stream = s
        .policy()
        .await
        .watch(auth(SERVICE, v1::WatchRequest {}))
        .await
        .unwrap()
        .into_inner();
    let mut admin = s.admin().await;
    let mut published = Vec::new();
    for i in 0..3 {
        let r = admin
            .publish_org(auth(
                ADMIN,
                v1::PublishOrgRequest {
                    files: org_files(&format!(
                        r#"{{"modelPolicy": {{"blockedModelIds": ["m{i}"]}}}}"#
                    )),
                    message: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        published.push(r.revision);
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        if seen.last() != Some(&ev.revision) {
            seen.push(ev.revision);
        }
    }
    // a watch channel keeps the latest value: a subscriber sees the last revision for sure
    assert_eq!(seen.last(), published.last());
    assert!(seen.iter().all(|r| published.contains(r)));
    // a shutdown ends the stream at once (a gateway follows revisions on one for as long as it
    // runs; the drain must not wait for it), and the server stops well within its grace period
    let started = std::time::Instant::now();
    let ended = tokio::spawn(async move {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                _ => return std::time::Instant::now(),
            }
        }
    });
    s.stop().await;
    let ended = tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(
        ended - started < strata_resolver::DRAIN_GRACE / 2,
        "{:?}",
        ended - started
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_and_decides_never_tear() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let mut admin = s.admin().await;
    // revision of bundle i blocks model `m{i}` only: a decision for m{i} under revision R is
    // consistent iff R is the revision that was published as bundle i (deny) or another (allow)
    let first = admin
        .publish_org(auth(
            ADMIN,
            v1::PublishOrgRequest {
                files: org_files(r#"{"modelPolicy": {"blockedModelIds": ["m0"]}}"#),
                message: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let publisher = {
        let mut admin = s.admin().await;
        tokio::spawn(async move {
            let mut revs = vec![(0usize, first)];
            for i in 1..=20 {
                let r = admin
                    .publish_org(auth(
                        ADMIN,
                        v1::PublishOrgRequest {
                            files: org_files(&format!(
                                r#"{{"modelPolicy": {{"blockedModelIds": ["m{i}"]}}}}"#
                            )),
                            message: String::new(),
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                revs.push((i, r.revision));
            }
            revs
        })
    };
    let mut deciders = Vec::new();
    for w in 0..4 {
        let mut p = s.policy().await;
        deciders.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for n in 0..600 {
                let i = (n + w) % 21;
                let d = p
                    .decide(auth(SERVICE, model_req("u", &[], "", &format!("m{i}"))))
                    .await
                    .unwrap()
                    .into_inner();
                seen.push((i, d.effect, d.revision));
            }
            seen
        }));
    }
    let revs = publisher.await.unwrap();
    let mut total = 0;
    for d in deciders {
        for (i, effect, rev) in d.await.unwrap() {
            total += 1;
            let bundle = revs.iter().find(|(_, r)| *r == rev).map(|(b, _)| *b);
            let bundle = bundle
                .unwrap_or_else(|| panic!("decision names revision {rev}, which was never active"));
            let expect = if bundle == i {
                v1::Effect::Deny
            } else {
                v1::Effect::Allow
            };
            assert_eq!(
                effect, expect as i32,
                "model m{i} under the revision of bundle {bundle}"
            );
        }
    }
    assert_eq!(total, 2400);
    s.stop().await;
}

#[tokio::test]
async fn health_and_reflection_answer_like_grpcurl_expects() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let mut health = HealthClient::new(s.channel().await);
    for service in ["", "strata.v1.PolicyService", "strata.v1.AdminService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            ServingStatus::Serving as i32,
            "service `{service}`"
        );
    }
    let mut refl = ServerReflectionClient::new(s.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("not a list: {msg:?}")
    };
    let names: HashSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "strata.v1.PolicyService",
        "strata.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    // grpcurl describes a method by asking for the file that holds the symbol
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "strata.v1.PolicyService".into(),
        )),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    assert!(
        matches!(msg.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{msg:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn explain_and_resolve_settings_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    publish_examples(&s).await;
    let mut p = s.policy().await;
    let x = p
        .explain(auth(
            SERVICE,
            v1::ExplainRequest {
                request: Some(model_req("alice", &["leads"], "web", "gpt-4o")),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let v: serde_json::Value = serde_json::from_str(&x.explanation_json).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(
        v["determinedBy"][0]["rule"],
        "org#modelPolicy.blockedModelIds"
    );
    assert!(v["considered"].as_array().is_some_and(|c| !c.is_empty()));
    // the effective settings for alice in project web, as a gateway at `base_url` asks for them
    let request = |base_url: &str, candidate_models: Vec<String>| v1::ResolveSettingsRequest {
        identity: Some(v1::resolve_settings_request::Identity::Principal(
            v1::Principal {
                user: "alice".into(),
                groups: vec!["leads".into()],
            },
        )),
        project: "web".into(),
        folder: String::new(),
        base_url: base_url.into(),
        candidate_models,
    };
    let listed_with = |base_url: &'static str, candidates: &[&str]| {
        let mut p = p.clone();
        let req = request(base_url, candidates.iter().map(|c| c.to_string()).collect());
        async move {
            let r = p
                .resolve_settings(auth(SERVICE, req))
                .await
                .unwrap()
                .into_inner();
            serde_json::from_str::<serde_json::Value>(&r.settings_json).unwrap()
        }
    };
    let listed = |base_url: &'static str| listed_with(base_url, &[]);
    let v = listed("").await;
    assert!(v["settings"]["modelPolicy"].is_object());

    // the models listed for a gateway are the ones that gateway would let through: through one
    // of the org's required gateways, alice's frontier model (whose own baseUrl is that gateway)
    // and the org's models; through any other URL, none, each with the requirement as the reason
    let ids = |v: &serde_json::Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|m| m["model"].as_str().unwrap().to_string())
            .collect()
    };
    let through = listed("http://127.0.0.1:8787").await;
    assert!(
        ids(&through, "models").contains(&"claude-opus-4-1".to_string()),
        "{through}"
    );
    let elsewhere = listed("http://127.0.0.1:9999").await;
    assert_eq!(
        ids(&elsewhere, "models"),
        Vec::<String>::new(),
        "{elsewhere}"
    );
    let hidden = elsewhere["hiddenModels"].as_array().unwrap();
    for model in ["claude-opus-4-1", "claude-sonnet-4-5", "gpt-5-codex"] {
        let m = hidden.iter().find(|m| m["model"] == model);
        assert!(
            m.is_some_and(|m| m["reason"]
                .as_str()
                .unwrap()
                .contains("gateway.requiredBaseUrls")),
            "{model}: {elsewhere}"
        );
    }

    // ids from an upstream's catalogue: listed when the policy allows them (the org allows
    // `claude-sonnet-4-*`, which names no model), hidden with the reason when it bans them
    // (`gpt-4o*`); the same ids unasked are in neither list
    let dated = "claude-sonnet-4-5-20250929";
    assert!(!ids(&through, "models").contains(&dated.to_string()));
    let known = listed_with(
        "http://127.0.0.1:8787",
        &[dated, "gpt-4o", "claude-opus-4-1"],
    )
    .await;
    let shown = ids(&known, "models");
    assert!(shown.contains(&dated.to_string()), "{known}");
    assert_eq!(
        shown.iter().filter(|m| *m == "claude-opus-4-1").count(),
        1,
        "{known}"
    );
    let banned = known["hiddenModels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "gpt-4o")
        .unwrap_or_else(|| panic!("gpt-4o is not hidden: {known}"));
    assert!(
        banned["reason"]
            .as_str()
            .unwrap()
            .contains("blockedModelIds"),
        "{banned}"
    );
    // more candidates than a request may carry: INVALID_ARGUMENT, saying so
    let many = vec!["m".to_string(); strata_resolver::service::MAX_CANDIDATE_MODELS + 1];
    let e = p
        .clone()
        .resolve_settings(auth(SERVICE, request("", many)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("candidate models"), "{}", e.message());
    s.stop().await;
}

/// A corpus of broken bundles, each published through the real API: every one is refused with
/// INVALID_ARGUMENT naming the problem (and its file and line where there is one); the active
/// revision and the decisions stay exactly as they were
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bundles_never_change_what_is_active() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let rev = publish_examples(&s).await;
    let before = decisions(&s).await;
    let deep = format!("{{\"a\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let file = |path: &str, content: &[u8]| v1::File {
        path: path.into(),
        content: content.to_vec(),
    };
    // (case, files, the problem's code, its file, its line; 0 = no line)
    let cases: Vec<(&str, Vec<v1::File>, &str, &str, u32)> = vec![
        (
            "malformed JSON",
            vec![file("settings.json", b"{\n  \"modelPolicy\": {\n    \"allowedModelIds\": [\"a\",,]\n")],
            "json.syntax",
            "settings.json",
            3,
        ),
        (
            "wrong type",
            vec![file("settings.json", b"{\"modelPolicy\": {\"allowedModelIds\": \"gpt-5\"}}")],
            "json.type",
            "settings.json",
            1,
        ),
        (
            "unknown provider",
            vec![file(
                "settings.json",
                b"{\"customModels\": [\n {\"model\": \"m\", \"baseUrl\": \"https://x\", \"provider\": \"azure\"}\n]}",
            )],
            "settings.invalid_provider",
            "settings.json",
            2,
        ),
        (
            "invalid Cedar",
            vec![file("policies/a.cedar", b"permit (principal, action, resource)\nwhen { principal.name == };")],
            "cedar.syntax",
            "policies/a.cedar",
            2,
        ),
        (
            "Cedar against the schema",
            vec![file("policies/a.cedar", b"forbid (principal, action, resource)\nwhen { principal.nosuch == 1 };")],
            "cedar.schema",
            "policies/a.cedar",
            0,
        ),
        (
            "unknown field in policy.json",
            vec![file("policy.json", b"{\"version\": 1,\n \"modelCategoriez\": {}}")],
            "json.unknown_field",
            "policy.json",
            2,
        ),
        (
            "the same path twice",
            vec![file("settings.json", b"{}"), file("settings.json", b"{}")],
            "bundle.duplicate_path",
            "settings.json",
            0,
        ),
        (
            "deep nesting",
            vec![file("settings.json", deep.as_bytes())],
            "json.syntax",
            "settings.json",
            1,
        ),
        (
            "not UTF-8",
            vec![file("settings.json", b"{\"modelPolicy\": \"\xff\xfe\"}")],
            "file.not_utf8",
            "settings.json",
            1,
        ),
        (
            "two Cedar rules with one id",
            vec![file(
                "policies/a.cedar",
                b"@id(\"r\")\nforbid (principal, action, resource);\n@id(\"r\")\nforbid (principal, action, resource);",
            )],
            "cedar.duplicate_id",
            "policies/a.cedar",
            3,
        ),
        (
            "a path with ..",
            vec![file("policies/../../etc/passwd", b"{}")],
            "bundle.bad_path",
            "policies/../../etc/passwd",
            0,
        ),
        (
            "an absolute path",
            vec![file("/etc/settings.json", b"{}")],
            "bundle.bad_path",
            "/etc/settings.json",
            0,
        ),
        (
            "a file past the size limit",
            vec![file(
                "settings.json",
                &vec![b' '; strata_policy::layer::MAX_TREE_BYTES + 1],
            )],
            "bundle.too_large",
            "",
            0,
        ),
    ];
    let mut admin = s
        .admin()
        .await
        .max_encoding_message_size(strata_resolver::MAX_ADMIN_MESSAGE);
    for (case, files, code, file, line) in cases {
        let e = admin
            .publish_org(auth(
                ADMIN,
                v1::PublishOrgRequest {
                    files,
                    message: case.into(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{case}: {}", e.message());
        use prost::Message;
        let problems = v1::Problems::decode(e.details()).unwrap().problems;
        let p = problems
            .iter()
            .find(|p| p.code == code)
            .unwrap_or_else(|| panic!("{case}: no `{code}` in {problems:#?}"));
        assert_eq!(p.severity, "error", "{case}");
        assert!(p.file.ends_with(file), "{case}: {p:?}");
        if line > 0 {
            assert_eq!(p.line, line, "{case}: {p:?}");
        }
        assert!(!p.message.is_empty(), "{case}");
        assert!(
            e.message().contains(&p.message),
            "{case}: the status message lists the problem: {}",
            e.message()
        );
    }
    let after = decisions(&s).await;
    assert_eq!(before, after, "nothing active changed");
    assert!(after.iter().all(|(_, _, r)| *r == rev));
    s.stop().await;
}

#[tokio::test]
async fn batch_decide_answers_each_request_or_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    publish_examples(&s).await;
    let token = s
        .admin()
        .await
        .create_token(auth(
            ADMIN,
            v1::CreateTokenRequest {
                user: "alice".into(),
                groups: vec!["leads".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut by_token = model_req("", &[], "web", "claude-sonnet-4-5");
    by_token.identity = Some(v1::decide_request::Identity::Token(token));
    let mut forged = by_token.clone();
    forged.identity = Some(v1::decide_request::Identity::Token("strata_gw_nope".into()));
    let requests = vec![by_token, forged, model_req("bob", &[], "web", "gpt-4o")];
    let mut p = s.policy().await;
    let r = p
        .batch_decide(auth(
            SERVICE,
            v1::BatchDecideRequest {
                requests: requests.clone(),
                independent: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.responses.len(), 3);
    assert_eq!(r.responses[0].effect, v1::Effect::Allow as i32);
    assert_eq!(r.responses[0].principal.as_ref().unwrap().user, "alice");
    assert_eq!(r.responses[2].effect, v1::Effect::Deny as i32);
    assert_eq!(
        r.responses[2].determined_by[0].rule,
        "org#modelPolicy.blockedModelIds"
    );
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].index, 1);
    assert_eq!(r.failures[0].code, Code::Unauthenticated as i32);
    assert!(r.responses[1].decision_id.is_empty());
    // without `independent`, one bad request fails the call
    let e = p
        .batch_decide(auth(
            SERVICE,
            v1::BatchDecideRequest {
                requests,
                independent: false,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    s.stop().await;
}
