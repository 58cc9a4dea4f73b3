//! Spine behaviour on both backends: operations run to completion, failed writes roll
//! back whole, readiness reflects migrations, tenant rules hold.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use aos_drivers::testing::TestDatabase;
use aos_schemas::ErrorCode;
use aos_schemas::tenants::{CreateTenantRequest, OnboardingState, TenantStatus, UpdateTenantRequest};
use aos_spine::op::OpFuture;
use aos_spine::ops::tenants::{Create, Get, List, Update};
use aos_spine::{AuthConfig, AuthContext, DatabaseConfig, Mode, Operation, OperationContext, Spine, SpineError};
use secrecy::SecretString;

aos_drivers::on_both_backends!(
    dropped_caller_does_not_cut_a_write_short,
    failed_write_operation_rolls_back_whole,
    readiness_is_ready_on_a_migrated_database,
    tenant_lifecycle_rules_hold,
    tenant_list_pages_with_opaque_cursors,
);

async fn spine_on(test_db: &TestDatabase) -> Spine {
    let database = DatabaseConfig {
        url: Some(test_db.url()),
        ..DatabaseConfig::default()
    };
    let auth = AuthConfig {
        operator_token: Some(SecretString::from("test-operator-token-0123456789")),
        ..AuthConfig::default()
    };
    Spine::open(&aos_spine::SpineConfig {
        database,
        auth,
        manifest: aos_spine::ManifestSettings {
            signing_key: Some(aos_engines::mcp::manifest::generate_pem().unwrap()),
            ..aos_spine::ManifestSettings::default()
        },
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn count(spine: &Spine) -> u64 {
    spine
        .execute(List {
            actor: AuthContext::Operator,
            limit: Some(1),
            cursor: None,
        })
        .await
        .unwrap()
        .meta
        .total
        .unwrap()
}

/// Creates one tenant, signals, waits, then creates a second: the caller hangs up in
/// between.
struct SlowTwoTenants {
    started: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Operation for SlowTwoTenants {
    const NAME: &'static str = "test.slow_two_tenants";
    const MODE: Mode = Mode::Write;
    type Output = ();

    fn run(mut self, cx: OperationContext<'_>) -> OpFuture<'_, ()> {
        Box::pin(async move {
            aos_engines::tenants::create(cx.conn, "first").await?;
            if let Some(tx) = self.started.take() {
                let _ = tx.send(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            aos_engines::tenants::create(cx.conn, "second").await?;
            Ok(())
        })
    }
}

async fn dropped_caller_does_not_cut_a_write_short(test_db: &TestDatabase) {
    let spine = spine_on(test_db).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let call = {
        let spine = spine.clone();
        tokio::spawn(async move { spine.execute(SlowTwoTenants { started: Some(tx) }).await })
    };
    rx.await.unwrap();
    call.abort(); // the client disconnected mid-operation
    assert!(call.await.unwrap_err().is_cancelled());
    // The operation finishes on its own and commits both rows.
    let mut total = 0;
    for _ in 0..50 {
        total = count(&spine).await;
        if total == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(total, 2);
}

struct CreateThenFail;

impl Operation for CreateThenFail {
    const NAME: &'static str = "test.create_then_fail";
    const MODE: Mode = Mode::Write;
    type Output = ();

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, ()> {
        Box::pin(async move {
            aos_engines::tenants::create(cx.conn, "doomed").await?;
            Err(SpineError::new(ErrorCode::Conflict, "changed my mind"))
        })
    }
}

async fn failed_write_operation_rolls_back_whole(test_db: &TestDatabase) {
    let spine = spine_on(test_db).await;
    let err = spine.execute(CreateThenFail).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(count(&spine).await, 0);
}

async fn readiness_is_ready_on_a_migrated_database(test_db: &TestDatabase) {
    let spine = spine_on(test_db).await;
    let readiness = spine.readiness().await;
    assert_eq!(readiness.status, "ready", "{readiness:?}");
    assert_eq!(readiness.backend, test_db.backend().as_str());
    assert!(readiness.checks.iter().all(|c| c.ok));
    assert_eq!(spine.migrate().await.unwrap(), Vec::<String>::new());
}

async fn tenant_lifecycle_rules_hold(test_db: &TestDatabase) {
    let spine = spine_on(test_db).await;
    let operator = AuthContext::Operator;
    let create = |name: &str| Create {
        actor: operator.clone(),
        request: CreateTenantRequest { name: name.into() },
    };

    let acme = spine.execute(create("  Acme  ")).await.unwrap();
    assert_eq!(acme.name, "Acme");
    assert_eq!(acme.status, TenantStatus::Active);
    assert_eq!(acme.onboarding_state, OnboardingState::Created);

    assert_eq!(
        spine.execute(create("acme")).await.unwrap_err().code,
        ErrorCode::Conflict
    );
    let invalid = spine.execute(create(" ")).await.unwrap_err();
    assert_eq!(invalid.code, ErrorCode::ValidationFailed);
    assert_eq!(invalid.field.as_deref(), Some("name"));

    let update = |request| Update {
        actor: operator.clone(),
        id: acme.id,
        request,
    };
    let moved = spine
        .execute(update(UpdateTenantRequest {
            onboarding_state: Some(OnboardingState::IntegrationConnected),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(moved.onboarding_state, OnboardingState::IntegrationConnected);
    let back = spine
        .execute(update(UpdateTenantRequest {
            onboarding_state: Some(OnboardingState::Created),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(back.code, ErrorCode::Conflict);

    for (status, ok) in [
        (TenantStatus::Suspended, true),
        (TenantStatus::Active, true),
        (TenantStatus::Terminated, true),
        (TenantStatus::Active, false),
    ] {
        let result = spine
            .execute(update(UpdateTenantRequest {
                status: Some(status),
                ..Default::default()
            }))
            .await;
        assert_eq!(result.is_ok(), ok, "{status:?}: {result:?}");
    }
    let got = spine
        .execute(Get {
            actor: operator.clone(),
            id: acme.id,
        })
        .await
        .unwrap();
    assert_eq!(got.status, TenantStatus::Terminated);
    let missing = spine
        .execute(Get {
            actor: operator,
            id: uuid::Uuid::now_v7(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
}

async fn tenant_list_pages_with_opaque_cursors(test_db: &TestDatabase) {
    let spine = spine_on(test_db).await;
    let mut created = Vec::new();
    for i in 0..5 {
        let t = spine
            .execute(Create {
                actor: AuthContext::Operator,
                request: CreateTenantRequest { name: format!("t{i}") },
            })
            .await
            .unwrap();
        created.push(t.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = spine
            .execute(List {
                actor: AuthContext::Operator,
                limit: Some(2),
                cursor,
            })
            .await
            .unwrap();
        assert_eq!(page.meta.total, Some(5));
        assert_eq!(page.meta.limit, 2);
        seen.extend(page.data.iter().map(|t| t.id));
        match page.meta.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, created);
    let bad = spine
        .execute(List {
            actor: AuthContext::Operator,
            limit: Some(0),
            cursor: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code, ErrorCode::ValidationFailed);
}
