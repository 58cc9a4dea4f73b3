//! The Rust SDK (`aos-client`) against a real AOS over loopback, on both backends, in
//! front of a real rmcp server; and its retry rules against a scripted HTTP server.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aos_client::schemas::ErrorCode;
use aos_client::schemas::governance::{
    ApprovalStatus, DecideApprovalRequest, InvocationStatus, InvokeToolRequest, ListApprovalsQuery, ListAuditQuery,
};
use aos_client::schemas::mcp::{ListServersQuery, RegisterMcpServerRequest, RiskLevel, SetToolRiskRequest};
use aos_client::schemas::tenants::CreateTenantRequest;
use aos_client::{Client, Error};
use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::{Backend, Options, TestApp, spawn_opts};
use serde_json::json;
use uuid::Uuid;

aos_tests::for_each_backend!(
    the_sdk_drives_the_governed_flow_end_to_end,
    server_errors_arrive_typed_and_tenants_stay_apart,
    the_sdk_manages_agents_and_an_agent_key_is_bounded_by_its_capabilities,
);

use aos_tests::actors::{AgentKey, TenantAdmin, client};

/// A tenant with an admin key (and its id) made through the SDK as the operator.
async fn tenant(app: &TestApp, name: &str, scopes: &[&str]) -> (Uuid, Client) {
    let admin = TenantAdmin::new(app, name, scopes).await;
    (admin.tenant_id, admin.client)
}

async fn the_sdk_drives_the_governed_flow_end_to_end(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let (tenant_id, admin) = tenant(&app, "sdk-acme", &["mcp:read", "mcp:admin", "mcp:invoke"]).await;
    let context = admin.session_context().await.unwrap();
    assert_eq!(context.tenant_id, Some(tenant_id));
    assert!(context.scopes.iter().any(|s| s == "mcp:invoke"), "{context:?}");

    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let registration = admin
        .register_mcp_server(&RegisterMcpServerRequest::new("gov", upstream.url.clone()))
        .await
        .unwrap();
    assert_eq!(
        registration.discovery.as_ref().unwrap().tools_found,
        5,
        "{registration:?}"
    );
    let server_id = registration.server.id;
    assert_eq!(admin.get_mcp_server(server_id).await.unwrap().name, "gov");
    assert!(admin.check_mcp_health(server_id).await.unwrap().healthy);
    assert_eq!(admin.discover_mcp_tools(server_id).await.unwrap().tools_added, 0);

    let tools = admin.list_mcp_tools(server_id, false).await.unwrap();
    let id_of = |name: &str| tools.iter().find(|t| t.name == name).unwrap().id;
    let (echo, wipe) = (id_of("echo"), id_of("wipe"));
    assert_eq!(
        admin.get_mcp_tool(server_id, echo).await.unwrap(),
        tools.iter().find(|t| t.id == echo).unwrap().clone()
    );

    // A LOW tool runs; the SDK's request type carries run and trace ids.
    let mut request = InvokeToolRequest::new(json!({"text": "hi"}));
    request.run_id = Some("run-sdk".into());
    let result = admin.invoke_mcp_tool(echo, &request).await.unwrap();
    assert_eq!(result.status, InvocationStatus::Success, "{result:?}");
    assert_eq!(result.output.as_ref().unwrap()["content"][0]["text"], "hi");
    let recorded = admin.list_mcp_invocations(server_id, Some(5)).await.unwrap();
    assert_eq!(recorded[0].id, result.invocation_id);
    assert_eq!(recorded[0].run_id.as_deref(), Some("run-sdk"));

    // Disable, then enable: the toggles round-trip and gate calls.
    assert!(!admin.disable_mcp_tool(echo).await.unwrap().enabled);
    let blocked = admin.invoke_mcp_tool(echo, &request).await.unwrap();
    assert_eq!(blocked.status, InvocationStatus::Blocked);
    assert!(admin.enable_mcp_tool(echo).await.unwrap().enabled);

    // A CRITICAL tool waits for an approver with another key, then runs once.
    assert!(admin.enable_mcp_tool(wipe).await.unwrap().enabled);
    let risk = SetToolRiskRequest {
        risk_level: RiskLevel::Critical,
        requires_approval: None,
    };
    assert_eq!(
        admin.set_mcp_tool_risk(wipe, &risk).await.unwrap().risk_level,
        RiskLevel::Critical
    );
    let pending = admin
        .invoke_mcp_tool(wipe, &InvokeToolRequest::new(json!({"table": "t"})))
        .await
        .unwrap();
    assert_eq!(pending.status, InvocationStatus::PendingApproval);
    let approval_id = pending.approval_id.unwrap();
    assert_eq!(gov.calls_of("wipe"), 0);
    let queue = admin
        .list_approvals(&ListApprovalsQuery {
            status: Some(ApprovalStatus::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(queue.data.iter().map(|a| a.id).collect::<Vec<_>>(), vec![approval_id]);
    let (_, approver_key) = app.create_key(&tenant_id.to_string(), &["approvals:decide"]).await;
    let approver = client(&app, &approver_key);
    let decision = approver
        .approve(
            approval_id,
            &DecideApprovalRequest {
                reason: Some("ok".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(decision.approval.status, ApprovalStatus::Approved);
    assert_eq!(decision.invocation.unwrap().status, InvocationStatus::Success);
    assert_eq!(gov.calls_of("wipe"), 1);
    let again = approver
        .approve(approval_id, &DecideApprovalRequest::default())
        .await
        .unwrap_err();
    assert_eq!((again.status(), again.code()), (Some(409), Some(ErrorCode::Conflict)));
    assert_eq!(
        admin.get_approval(approval_id).await.unwrap().status,
        ApprovalStatus::Approved
    );

    // A second request, denied.
    let pending = admin
        .invoke_mcp_tool(wipe, &InvokeToolRequest::new(json!({"table": "u"})))
        .await
        .unwrap();
    let denied = approver
        .deny(pending.approval_id.unwrap(), &DecideApprovalRequest::default())
        .await
        .unwrap();
    assert_eq!(denied.approval.status, ApprovalStatus::Denied);
    assert_eq!(gov.calls_of("wipe"), 1);

    // The audit chain holds all of it and verifies.
    let verification = admin.verify_audit().await.unwrap();
    assert!(verification.valid, "{verification:?}");
    let events = admin
        .list_audit_events(&ListAuditQuery {
            event_type: Some("APPROVAL_GRANTED".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.data.len(), 1, "{events:?}");

    // Paging: one per page, and the helper that follows the cursor sees them all.
    let second = admin
        .register_mcp_server(&RegisterMcpServerRequest {
            discover: false,
            ..RegisterMcpServerRequest::new("second", "http://127.0.0.1:9/mcp")
        })
        .await
        .unwrap();
    let page = admin
        .list_mcp_servers(&ListServersQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    assert!(page.meta.next_cursor.is_some());
    assert_eq!(admin.list_all_mcp_servers(false).await.unwrap().len(), 2);
    assert_eq!(
        admin.disable_mcp_server(second.server.id).await.unwrap().id,
        second.server.id
    );
    assert_eq!(admin.list_all_mcp_servers(false).await.unwrap().len(), 1);
    assert_eq!(admin.list_all_mcp_servers(true).await.unwrap().len(), 2);
    assert!(admin.get_mcp_manifest(server_id).await.unwrap().manifest.contains('.'));
}

async fn server_errors_arrive_typed_and_tenants_stay_apart(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let (_, acme) = tenant(&app, "sdk-a", &["mcp:read", "mcp:admin", "mcp:invoke"]).await;
    let (_, other) = tenant(&app, "sdk-b", &["mcp:read", "mcp:admin", "mcp:invoke"]).await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let server = acme
        .register_mcp_server(&RegisterMcpServerRequest::new("gov", upstream.url.clone()))
        .await
        .unwrap()
        .server;

    // Not found: typed code, the status and the request id of the failed request.
    let err = acme.get_mcp_server(Uuid::new_v4()).await.unwrap_err();
    assert!(err.is_not_found() && err.code() == Some(ErrorCode::NotFound), "{err}");
    assert!(err.request_id().is_some_and(|id| !id.is_empty()), "{err:?}");

    // Another tenant's server is not found, not forbidden: nothing leaks.
    let err = other.get_mcp_server(server.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    assert!(other.list_all_mcp_servers(true).await.unwrap().is_empty());

    // Input that breaks the tool's schema: 400 with the dedicated code.
    let tools = acme.list_mcp_tools(server.id, false).await.unwrap();
    let echo = tools.iter().find(|t| t.name == "echo").unwrap().id;
    let err = acme
        .invoke_mcp_tool(echo, &InvokeToolRequest::new(json!({"text": 5})))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(400), Some(ErrorCode::InvalidToolInput)),
        "{err}"
    );
    assert_eq!(gov.calls_of("echo"), 0);

    // A wrong key and a key without the scope.
    let err = client(&app, "aos_k_not_a_real_key")
        .session_context()
        .await
        .unwrap_err();
    assert!(err.is_auth() && err.code() == Some(ErrorCode::Unauthenticated), "{err}");
    let (_, reader_key) = app
        .create_key(
            &acme.session_context().await.unwrap().tenant_id.unwrap().to_string(),
            &["mcp:read"],
        )
        .await;
    let err = client(&app, &reader_key)
        .invoke_mcp_tool(echo, &InvokeToolRequest::new(json!({"text": "x"})))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(403), Some(ErrorCode::InsufficientScope)),
        "{err}"
    );

    // A tenant key may not act as the operator.
    let err = acme
        .create_tenant(&CreateTenantRequest { name: "nope".into() })
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err}");

    // Nothing listens: a transport error, after the retries.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dead = Client::builder(format!("http://127.0.0.1:{port}"))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    assert!(matches!(dead.session_context().await, Err(Error::Transport(_))));
}

/// A scripted server: answers `status` to the first `failures` requests, then 200.
async fn flaky(status: u16, failures: usize) -> (String, Arc<AtomicUsize>, tokio_util::sync::CancellationToken) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let handler = move || {
        let counter = counter.clone();
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < failures {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [("retry-after", "0")],
                    axum::Json(json!({"error": {"code": "service_unavailable", "message": "busy", "request_id": format!("r{n}")}})),
                )
                    .into_response()
            } else {
                axum::Json(json!({"data": {"auth_type": "machine", "actor_id": "k", "roles": [], "scopes": []}}))
                    .into_response()
            }
        }
    };
    // Every path and method: the tests choose the call.
    let router = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
            .await;
    });
    (url, hits, stop)
}

#[tokio::test]
async fn idempotent_requests_retry_with_backoff_and_the_rest_do_not() {
    // GET: two 503s, then success within the default two retries.
    let (url, hits, _stop) = flaky(503, 2).await;
    let client = Client::builder(url.clone())
        .backoff(Duration::from_millis(1), Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(client.session_context().await.unwrap().actor_id, "k");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Three 503s exhaust two retries: the last answer comes back, typed.
    let (url, hits, _stop) = flaky(503, 3).await;
    let client = Client::builder(url)
        .backoff(Duration::from_millis(1), Duration::from_millis(10))
        .build()
        .unwrap();
    let err = client.session_context().await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(503), Some(ErrorCode::ServiceUnavailable))
    );
    assert_eq!(err.request_id(), Some("r2"));
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Retries off: one attempt.
    let (url, hits, _stop) = flaky(503, 1).await;
    let client = Client::builder(url).max_retries(0).build().unwrap();
    assert!(client.session_context().await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // 500 is not retried: the server may have done the work.
    let (url, hits, _stop) = flaky(500, 1).await;
    let client = Client::builder(url)
        .backoff(Duration::from_millis(1), Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(client.session_context().await.unwrap_err().status(), Some(500));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_post_is_never_resent_after_it_reached_the_server() {
    // A tool call is not idempotent: a 503 after the server received it comes back as is.
    let (url, hits, _stop) = flaky(503, 1).await;
    let client = Client::builder(url)
        .backoff(Duration::from_millis(1), Duration::from_millis(10))
        .build()
        .unwrap();
    let err = client
        .invoke_mcp_tool(Uuid::nil(), &InvokeToolRequest::new(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

async fn the_sdk_manages_agents_and_an_agent_key_is_bounded_by_its_capabilities(backend: Backend) {
    use aos_client::schemas::agents::{Capability, CreateAgentRequest, UpdateAgentRequest};
    use aos_client::schemas::envelope::PageQuery;
    use aos_client::schemas::killswitch::FreezeRequest;
    let app = spawn_opts(backend, Options::default()).await;
    let (_, admin) = tenant(&app, "sdk-agents", &["admin"]).await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let registration = admin
        .register_mcp_server(&RegisterMcpServerRequest::new("gov", &upstream.url))
        .await
        .unwrap();
    let server = registration.server.id;
    let tools = admin.list_mcp_tools(server, false).await.unwrap();
    let tool = |name: &str| tools.iter().find(|t| t.name == name).unwrap().id;

    // The typed actor of an agent key: its calls are bounded by the capabilities.
    let agent = AgentKey::new(
        &app,
        &admin,
        &CreateAgentRequest {
            name: "reader".into(),
            description: None,
            owner: Some("user:ops".into()),
            capabilities: vec![Capability {
                tool: "gov.echo".into(),
                max_risk: None,
                requires_approval: false,
            }],
            manifest_pinned: false,
        },
    )
    .await;
    assert_eq!(admin.list_agents(&PageQuery::default()).await.unwrap().data.len(), 1);
    let bot = &agent.client;
    let context = bot.session_context().await.unwrap();
    assert_eq!(
        (context.auth_type, context.agent_id, context.actor_id),
        (
            aos_client::schemas::session::AuthType::Agent,
            Some(agent.agent_id),
            agent.key_id.to_string()
        )
    );
    let agent = admin.get_agent(agent.agent_id).await.unwrap();
    let done = bot
        .invoke_mcp_tool(tool("echo"), &InvokeToolRequest::new(json!({"text": "hi"})))
        .await
        .unwrap();
    assert_eq!(done.status, InvocationStatus::Success);
    match bot
        .invoke_mcp_tool(tool("fail"), &InvokeToolRequest::new(json!({})))
        .await
    {
        Err(Error::Api(err)) => {
            assert_eq!(
                (err.status, err.code.as_str()),
                (403, ErrorCode::CapabilityNotGranted.as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gov.calls_of("fail"), 0);

    let manifest = admin.issue_agent_manifest(agent.id).await.unwrap();
    assert_eq!(manifest.payload.capabilities.len(), 1);
    assert!(bot.verify_agent_manifest(&manifest.manifest).await.unwrap().valid);
    assert_eq!(admin.get_agent_manifest(agent.id, None).await.unwrap().version, 1);
    assert_eq!(admin.list_agent_manifests(agent.id).await.unwrap().len(), 1);

    admin
        .freeze_agent(
            agent.id,
            &FreezeRequest {
                reason: Some("why".into()),
            },
        )
        .await
        .unwrap();
    assert!(admin.get_agent(agent.id).await.unwrap().frozen);
    admin.unfreeze_agent(agent.id).await.unwrap();
    let renamed = admin
        .update_agent(
            agent.id,
            &UpdateAgentRequest {
                name: Some("reader-2".into()),
                ..UpdateAgentRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.owner.as_deref()),
        ("reader-2", Some("user:ops"))
    );
    assert_eq!(admin.list_agent_keys(agent.id).await.unwrap().len(), 1);
    admin.delete_agent(agent.id).await.unwrap();
    match admin.get_agent(agent.id).await {
        Err(Error::Api(err)) => assert_eq!(err.status, 404),
        other => panic!("{other:?}"),
    }
}
