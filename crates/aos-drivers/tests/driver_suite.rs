//! The driver suite: every test here runs once on PostgreSQL and once on SQLite, each
//! on a database of its own.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aos_drivers::{
    Backend, Database, DriverError, TxMode, api_keys, auth_epoch, governance, killswitch, mcp, proxy, tenants, usage,
};
use aos_models::api_key::NewApiKey;
use aos_models::governance::ApprovalStatus;
use aos_models::mcp::{McpInvocationRow, McpServerChanges, NewMcpServer, NewMcpTool};
use aos_models::tenant::{NewTenant, TenantChanges};
use aos_models::{DbJson, DbTime, DbUuid};
use serde_json::json;
use time::macros::datetime;

aos_drivers::on_both_backends!(
    tenant_round_trips_every_portable_type,
    unique_name_is_a_conflict_case_insensitively,
    check_constraint_is_a_constraint_error,
    update_changes_only_given_columns_and_missing_is_not_found,
    list_pages_by_keyset_in_creation_order,
    failed_transaction_rolls_back_everything,
    committed_transaction_persists,
    concurrent_write_transactions_all_commit,
    migrations_are_current_and_rerunning_applies_nothing,
    api_keys_are_scoped_to_their_tenant,
    revoking_is_idempotent_and_epoch_moves,
    api_key_for_unknown_tenant_is_a_constraint_error,
    mcp_servers_survive_a_reopen_and_stay_in_their_tenant,
    mcp_soft_delete_hides_but_keeps_and_frees_the_url,
    mcp_tools_are_unique_per_server_and_invocations_newest_first,
    mcp_health_scan_orders_by_last_check,
    killswitch_state_is_per_tenant_and_frozen_lists_every_tenant,
    budget_reservations_never_pass_the_limit_and_settlements_add_up,
    approvals_are_decided_once_expire_once_and_stay_in_their_tenant,
    the_audit_chain_appends_under_its_head_reads_per_tenant_and_refuses_edits,
    integration_keys_are_found_by_hash_and_listed_per_tenant,
    incidents_resolve_once_filter_by_status_and_stay_in_their_tenant,
    usage_records_are_idempotent_per_call_and_rollups_add_up,
    agents_have_live_unique_names_their_own_keys_and_versioned_manifests,
);

fn new_tenant(name: &str, created_at: DbTime) -> NewTenant {
    NewTenant {
        id: DbUuid::new_v7(),
        name: name.to_owned(),
        status: "ACTIVE".into(),
        onboarding_state: "CREATED".into(),
        settings: DbJson(json!({})),
        created_at,
        updated_at: created_at,
    }
}

async fn insert(db: &Database, new: NewTenant) -> Result<aos_models::tenant::TenantRow, DriverError> {
    let mut conn = db.conn().await?;
    tenants::insert(&mut conn, &new).await
}

async fn tenant_round_trips_every_portable_type(db: &Database) {
    let at = DbTime::from(datetime!(2026-05-06 07:08:09.123456789 +03:00));
    let mut new = new_tenant("Acme", at);
    new.settings = DbJson(json!({"limits": {"rps": 5}, "tags": ["a", "b"], "ratio": 0.5, "none": null}));
    let stored = insert(db, new.clone()).await.unwrap();

    let mut conn = db.conn().await.unwrap();
    let read = tenants::get(&mut conn, new.id.into()).await.unwrap();
    assert_eq!(read, stored);
    assert_eq!(read.id, new.id);
    assert_eq!(read.name, "Acme");
    assert_eq!(read.settings, new.settings);
    // Both backends keep microseconds, in UTC.
    assert_eq!(read.created_at.get(), datetime!(2026-05-06 04:08:09.123456 UTC));
}

async fn unique_name_is_a_conflict_case_insensitively(db: &Database) {
    insert(db, new_tenant("Acme", DbTime::now())).await.unwrap();
    let err = insert(db, new_tenant("ACME", DbTime::now())).await.unwrap_err();
    assert!(
        matches!(err, DriverError::Conflict(ref c) if c.contains("tenants_name_key") || c.contains("tenants")),
        "{err:?}"
    );
}

async fn check_constraint_is_a_constraint_error(db: &Database) {
    let err = insert(db, new_tenant("", DbTime::now())).await.unwrap_err();
    assert!(matches!(err, DriverError::Constraint(_)), "{err:?}");
}

async fn update_changes_only_given_columns_and_missing_is_not_found(db: &Database) {
    let stored = insert(db, new_tenant("Acme", DbTime::now())).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let changes = TenantChanges {
        status: Some("SUSPENDED".into()),
        ..Default::default()
    };
    let updated = tenants::update(&mut conn, stored.id.into(), &changes).await.unwrap();
    assert_eq!(updated.status, "SUSPENDED");
    assert_eq!(updated.name, stored.name);
    assert_eq!(updated.onboarding_state, stored.onboarding_state);

    let err = tenants::update(&mut conn, DbUuid::new_v7().into(), &changes)
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::NotFound), "{err:?}");
    let err = tenants::get(&mut conn, DbUuid::new_v7().into()).await.unwrap_err();
    assert!(matches!(err, DriverError::NotFound), "{err:?}");
}

async fn list_pages_by_keyset_in_creation_order(db: &Database) {
    let base = datetime!(2026-01-01 00:00:00 UTC);
    let mut expected = Vec::new();
    // Two share a timestamp, so the id breaks the tie.
    for (i, secs) in [(0, 5), (1, 1), (2, 3), (3, 3), (4, 9)] {
        let row = insert(
            db,
            new_tenant(&format!("t{i}"), DbTime::from(base + time::Duration::seconds(secs))),
        )
        .await
        .unwrap();
        expected.push(row);
    }
    expected.sort_by_key(|r| (r.created_at, r.id));

    let mut conn = db.conn().await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = tenants::list(&mut conn, cursor, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = Some((last.created_at, last.id));
        seen.extend(page);
    }
    assert_eq!(seen, expected);
    assert_eq!(tenants::count(&mut conn).await.unwrap(), 5);
}

async fn failed_transaction_rolls_back_everything(db: &Database) {
    let first = new_tenant("first", DbTime::now());
    let id = first.id;
    let result: Result<(), DriverError> = db
        .transaction(TxMode::Write, move |conn| {
            Box::pin(async move {
                tenants::insert(conn, &first).await?;
                // The second insert violates the name check: the whole unit must go.
                tenants::insert(conn, &new_tenant("", DbTime::now())).await?;
                Ok(())
            })
        })
        .await;
    assert!(matches!(result, Err(DriverError::Constraint(_))), "{result:?}");
    let mut conn = db.conn().await.unwrap();
    assert!(matches!(
        tenants::get(&mut conn, id.into()).await,
        Err(DriverError::NotFound)
    ));
    assert_eq!(tenants::count(&mut conn).await.unwrap(), 0);
}

async fn committed_transaction_persists(db: &Database) {
    let a = new_tenant("a", DbTime::now());
    let b = new_tenant("b", DbTime::now());
    let ids = (a.id, b.id);
    let names: Vec<String> = db
        .transaction(TxMode::Write, move |conn| {
            Box::pin(async move {
                let a = tenants::insert(conn, &a).await?;
                let b = tenants::insert(conn, &b).await?;
                // Reads inside the transaction see its own writes.
                assert_eq!(tenants::count(conn).await?, 2);
                Ok::<_, DriverError>(vec![a.name, b.name])
            })
        })
        .await
        .unwrap();
    assert_eq!(names, ["a", "b"]);
    let mut conn = db.conn().await.unwrap();
    assert_eq!(tenants::get(&mut conn, ids.0.into()).await.unwrap().name, "a");
    assert_eq!(tenants::get(&mut conn, ids.1.into()).await.unwrap().name, "b");
}

async fn concurrent_write_transactions_all_commit(db: &Database) {
    // On SQLite this exercises BEGIN IMMEDIATE + busy_timeout: writers queue, none fail.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.transaction(TxMode::Write, move |conn| {
                Box::pin(async move {
                    let n = tenants::count(conn).await?;
                    tenants::insert(conn, &new_tenant(&format!("w{i}"), DbTime::now())).await?;
                    Ok::<_, DriverError>(n)
                })
            })
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut conn = db.conn().await.unwrap();
    assert_eq!(tenants::count(&mut conn).await.unwrap(), 16);
}

async fn migrations_are_current_and_rerunning_applies_nothing(db: &Database) {
    let status = db.migration_status().await.unwrap();
    assert!(status.is_current(), "{status:?}");
    assert!(!status.known.is_empty());
    assert_eq!(db.run_migrations().await.unwrap(), Vec::<String>::new());
    assert!(db.backend() == Backend::Postgres || db.backend() == Backend::Sqlite);
}

fn new_key(tenant: DbUuid, hash: &str) -> NewApiKey {
    NewApiKey {
        id: DbUuid::new_v7(),
        tenant_id: tenant,
        name: "ci".into(),
        prefix: "aos_sk_abcd1234".into(),
        key_hash: hash.into(),
        scopes: DbJson(json!(["mcp:read", "admin"])),
        created_by: "founder".into(),
        created_at: DbTime::now(),
        expires_at: None,
        agent_id: None,
    }
}

async fn api_keys_are_scoped_to_their_tenant(db: &Database) {
    let a = insert(db, new_tenant("a", DbTime::now())).await.unwrap();
    let b = insert(db, new_tenant("b", DbTime::now())).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let ka = api_keys::insert(&mut conn, &new_key(a.id, "hash-a")).await.unwrap();
    let kb = api_keys::insert(&mut conn, &new_key(b.id, "hash-b")).await.unwrap();
    assert_eq!(ka.scope_names(), ["mcp:read", "admin"]);

    assert_eq!(
        api_keys::find_by_hash(&mut conn, "hash-a").await.unwrap().unwrap().id,
        ka.id
    );
    assert!(api_keys::find_by_hash(&mut conn, "nope").await.unwrap().is_none());
    assert_eq!(
        api_keys::get(&mut conn, a.id.into(), ka.id.into()).await.unwrap().id,
        ka.id
    );
    assert!(matches!(
        api_keys::get(&mut conn, b.id.into(), ka.id.into()).await,
        Err(DriverError::NotFound)
    ));
    assert!(matches!(
        api_keys::revoke(&mut conn, b.id.into(), ka.id.into(), DbTime::now()).await,
        Err(DriverError::NotFound)
    ));

    let listed = api_keys::list(&mut conn, a.id.into(), None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.id).collect::<Vec<_>>(), [ka.id]);
    assert_eq!(api_keys::count(&mut conn, b.id.into()).await.unwrap(), 1);
    assert_eq!(
        api_keys::get_any(&mut conn, kb.id.into()).await.unwrap().tenant_id,
        b.id
    );

    let dup = api_keys::insert(&mut conn, &new_key(a.id, "hash-a")).await.unwrap_err();
    assert!(matches!(dup, DriverError::Conflict(_)), "{dup:?}");
}

async fn revoking_is_idempotent_and_epoch_moves(db: &Database) {
    let a = insert(db, new_tenant("a", DbTime::now())).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let key = api_keys::insert(&mut conn, &new_key(a.id, "h")).await.unwrap();
    let first = DbTime::from(datetime!(2026-01-01 00:00:00 UTC));
    let revoked = api_keys::revoke(&mut conn, a.id.into(), key.id.into(), first)
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(first));
    let again = api_keys::revoke_any(&mut conn, key.id.into(), DbTime::now())
        .await
        .unwrap();
    assert_eq!(again.revoked_at, Some(first));

    let before = auth_epoch::current(&mut conn).await.unwrap();
    assert_eq!(auth_epoch::bump(&mut conn).await.unwrap(), before + 1);
    assert_eq!(auth_epoch::current(&mut conn).await.unwrap(), before + 1);
}

async fn api_key_for_unknown_tenant_is_a_constraint_error(db: &Database) {
    let mut conn = db.conn().await.unwrap();
    let err = api_keys::insert(&mut conn, &new_key(DbUuid::new_v7(), "h"))
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::Constraint(_)), "{err:?}");
}

fn new_server(tenant: DbUuid, url: &str) -> NewMcpServer {
    NewMcpServer {
        id: DbUuid::new_v7(),
        tenant_id: tenant,
        name: "files".into(),
        url: url.into(),
        description: None,
        transport: "HTTP".into(),
        status: "PENDING".into(),
        credential_ref: Some("env://FILES_TOKEN".into()),
        metadata: DbJson(json!({"team": "data"})),
        created_by: "founder".into(),
        created_at: DbTime::now(),
        updated_at: DbTime::now(),
        call_timeout_ms: Some(2_000),
        max_output_bytes: None,
        max_calls_per_minute: None,
    }
}

fn new_tool(tenant: DbUuid, server: DbUuid, name: &str) -> NewMcpTool {
    NewMcpTool {
        id: DbUuid::new_v7(),
        tenant_id: tenant,
        server_id: server,
        name: name.into(),
        title: None,
        description: Some("reads".into()),
        input_schema: DbJson(json!({"type": "object"})),
        output_schema: None,
        annotations: Some(DbJson(json!({"readOnlyHint": true}))),
        risk_level: "LOW".into(),
        risk_source: "auto".into(),
        risk_reasons: DbJson(json!(["name: read"])),
        flags: DbJson(json!([])),
        enabled: true,
        requires_approval: false,
        available: true,
        tool_hash: "h".into(),
        discovered_at: DbTime::now(),
        updated_at: DbTime::now(),
        approved_hash: Some("h".into()),
        quarantined: false,
        quarantine_reason: None,
    }
}

async fn mcp_servers_survive_a_reopen_and_stay_in_their_tenant(db: &Database) {
    let a = insert(db, new_tenant("a", DbTime::now())).await.unwrap();
    let b = insert(db, new_tenant("b", DbTime::now())).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let stored = mcp::insert_server(&mut conn, &new_server(a.id, "https://files.example/mcp"))
        .await
        .unwrap();
    drop(conn);

    // A fresh handle on the same database (a restarted process) sees the same row.
    let reopened = Database::connect(db.options().clone()).await.unwrap();
    let mut conn = reopened.conn().await.unwrap();
    let listed = mcp::list_servers(&mut conn, a.id.into(), false, None, 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![stored.clone()]);
    assert_eq!(listed[0].credential_ref.as_deref(), Some("env://FILES_TOKEN"));
    assert!(
        mcp::list_servers(&mut conn, b.id.into(), true, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        mcp::get_server(&mut conn, b.id.into(), stored.id.into()).await,
        Err(DriverError::NotFound)
    ));
    let changes = McpServerChanges {
        name: Some("stolen".into()),
        ..Default::default()
    };
    assert!(matches!(
        mcp::update_server(&mut conn, b.id.into(), stored.id.into(), &changes).await,
        Err(DriverError::NotFound)
    ));
    assert!(matches!(
        mcp::soft_delete_server(&mut conn, b.id.into(), stored.id.into(), DbTime::now()).await,
        Err(DriverError::NotFound)
    ));
    assert_eq!(
        mcp::get_server(&mut conn, a.id.into(), stored.id.into())
            .await
            .unwrap()
            .name,
        "files"
    );
}

async fn mcp_soft_delete_hides_but_keeps_and_frees_the_url(db: &Database) {
    let a = insert(db, new_tenant("a", DbTime::now())).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let url = "https://files.example/mcp";
    let first = mcp::insert_server(&mut conn, &new_server(a.id, url)).await.unwrap();
    let dup = mcp::insert_server(&mut conn, &new_server(a.id, url)).await.unwrap_err();
    assert!(matches!(dup, DriverError::Conflict(_)), "{dup:?}");

    let deleted = mcp::soft_delete_server(&mut conn, a.id.into(), first.id.into(), DbTime::now())
        .await
        .unwrap();
    assert_eq!(deleted.status, "DELETED");
    assert!(deleted.deleted_at.is_some());
    assert!(
        mcp::list_servers(&mut conn, a.id.into(), false, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(mcp::count_servers(&mut conn, a.id.into(), false).await.unwrap(), 0);
    assert_eq!(
        mcp::list_servers(&mut conn, a.id.into(), true, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        mcp::get_server(&mut conn, a.id.into(), first.id.into())
            .await
            .unwrap()
            .status,
        "DELETED"
    );
    assert!(
        mcp::get_live_server_by_url(&mut conn, a.id.into(), url)
            .await
            .unwrap()
            .is_none()
    );

    // The URL is free again.
    let second = mcp::insert_server(&mut conn, &new_server(a.id, url)).await.unwrap();
    assert_eq!(
        mcp::get_live_server_by_url(&mut conn, a.id.into(), url)
            .await
            .unwrap()
            .unwrap()
            .id,
        second.id
    );
}

async fn mcp_tools_are_unique_per_server_and_invocations_newest_first(db: &Database) {
    let a = insert(db, new_tenant("a", DbTime::now())).await.unwrap();
    let b = insert(db, new_tenant("b", DbTime::now())).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let server = mcp::insert_server(&mut conn, &new_server(a.id, "https://x/mcp"))
        .await
        .unwrap();
    let tool = mcp::insert_tool(&mut conn, &new_tool(a.id, server.id, "read_file"))
        .await
        .unwrap();
    assert!(tool.enabled && tool.available && !tool.requires_approval);
    let dup = mcp::insert_tool(&mut conn, &new_tool(a.id, server.id, "read_file"))
        .await
        .unwrap_err();
    assert!(matches!(dup, DriverError::Conflict(_)), "{dup:?}");
    mcp::insert_tool(&mut conn, &new_tool(a.id, server.id, "delete_file"))
        .await
        .unwrap();
    let names: Vec<_> = mcp::tools_of_server(&mut conn, a.id.into(), server.id.into())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["delete_file", "read_file"]);
    assert!(
        mcp::tools_of_server(&mut conn, b.id.into(), server.id.into())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        mcp::get_tool(&mut conn, b.id.into(), server.id.into(), tool.id.into()).await,
        Err(DriverError::NotFound)
    ));

    let base = datetime!(2026-01-01 00:00:00 UTC);
    for i in 0..3 {
        let row = McpInvocationRow {
            id: DbUuid::new_v7(),
            tenant_id: a.id,
            server_id: server.id,
            tool_id: tool.id,
            run_id: Some(format!("run-{i}")),
            step_index: Some(i),
            actor_id: None,
            actor_type: "machine".into(),
            trace_id: None,
            status: "SUCCESS".into(),
            error_code: None,
            error_message: None,
            policy_decision: None,
            policy_decision_id: None,
            input_hash: "in".into(),
            output_hash: Some("out".into()),
            invoked_at: DbTime::from(base + time::Duration::seconds(i64::from(i))),
            completed_at: None,
            duration_ms: Some(5),
            policy_id: Some("aos.invoke".into()),
            policy_revision: Some("aos.invoke@sha256:0".into()),
            policy_reasons: Some(DbJson(json!([]))),
            incident_id: None,
            approval_id: None,
            output_bytes: Some(3),
        };
        mcp::insert_invocation(&mut conn, &row).await.unwrap();
    }
    let newest: Vec<_> = mcp::invocations_of_server(&mut conn, a.id.into(), server.id.into(), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id.unwrap())
        .collect();
    assert_eq!(newest, ["run-2", "run-1"]);
    assert!(
        mcp::invocations_of_server(&mut conn, b.id.into(), server.id.into(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn mcp_health_scan_orders_by_last_check(db: &Database) {
    let a = insert(db, new_tenant("a", DbTime::now())).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let base = datetime!(2026-01-01 00:00:00 UTC);
    let mut ids = Vec::new();
    for (i, checked) in [(0, Some(30)), (1, None), (2, Some(10)), (3, Some(500))] {
        let server = mcp::insert_server(&mut conn, &new_server(a.id, &format!("https://s{i}/mcp")))
            .await
            .unwrap();
        let changes = McpServerChanges {
            status: Some("ACTIVE".into()),
            last_health_check_at: Some(checked.map(|s| DbTime::from(base + time::Duration::seconds(s)))),
            ..Default::default()
        };
        mcp::update_server(&mut conn, a.id.into(), server.id.into(), &changes)
            .await
            .unwrap();
        ids.push(server.id);
    }
    let pending = mcp::insert_server(&mut conn, &new_server(a.id, "https://pending/mcp"))
        .await
        .unwrap();
    let due = mcp::servers_due_for_health(&mut conn, DbTime::from(base + time::Duration::seconds(100)), 10)
        .await
        .unwrap();
    let due: Vec<_> = due.into_iter().map(|s| s.id).collect();
    // Never-checked first on both backends (NULLs sort first ascending on SQLite, last on
    // PostgreSQL), so compare as sets plus the order of the checked ones.
    assert_eq!(due.len(), 3);
    assert!(due.contains(&ids[1]));
    assert!(!due.contains(&ids[3]) && !due.contains(&pending.id));
    let checked: Vec<_> = due.iter().filter(|id| **id != ids[1]).collect();
    assert_eq!(checked, [&ids[2], &ids[0]]);
}

async fn killswitch_state_is_per_tenant_and_frozen_lists_every_tenant(db: &Database) {
    let now = DbTime::now();
    let acme = insert(db, new_tenant("ks-acme", now)).await.unwrap();
    let globex = insert(db, new_tenant("ks-globex", now)).await.unwrap();
    let key = DbUuid::new_v7();
    let row =
        |tenant: DbUuid, entity_type: &str, entity_id: DbUuid, frozen: bool| aos_models::killswitch::KillSwitchRow {
            entity_type: entity_type.into(),
            entity_id,
            tenant_id: tenant,
            frozen,
            reason: Some("drill".into()),
            changed_by: "founder".into(),
            changed_at: now,
        };
    let mut conn = db.conn().await.unwrap();
    killswitch::put(&mut conn, &row(acme.id, "tenant", acme.id, true))
        .await
        .unwrap();
    killswitch::put(&mut conn, &row(globex.id, "key", key, true))
        .await
        .unwrap();
    // put is an upsert: unfreezing acme replaces its row.
    killswitch::put(&mut conn, &row(acme.id, "tenant", acme.id, false))
        .await
        .unwrap();
    let acme_state = killswitch::get(&mut conn, acme.id.into(), "tenant", acme.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!acme_state.frozen);
    // Another tenant's entity is not found under this tenant.
    assert!(
        killswitch::get(&mut conn, acme.id.into(), "key", key)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        killswitch::of_tenant(&mut conn, globex.id.into()).await.unwrap().len(),
        1
    );
    let frozen = killswitch::frozen(&mut conn).await.unwrap();
    assert_eq!(frozen.len(), 1);
    assert_eq!((frozen[0].tenant_id, frozen[0].entity_id), (globex.id, key));
}

async fn budget_reservations_never_pass_the_limit_and_settlements_add_up(db: &Database) {
    let now = DbTime::now();
    let acme = insert(db, new_tenant("budget-acme", now)).await.unwrap();
    let (scope, period) = ("tenant", "day:2026-12-01");
    let mut conn = db.conn().await.unwrap();
    proxy::ensure_counter(&mut conn, acme.id.into(), scope, period, now)
        .await
        .unwrap();
    // 100 micro-dollars: 60 fits, another 60 does not, 40 does.
    assert!(
        proxy::reserve(&mut conn, acme.id.into(), scope, period, 60, 100, now)
            .await
            .unwrap()
    );
    assert!(
        !proxy::reserve(&mut conn, acme.id.into(), scope, period, 60, 100, now)
            .await
            .unwrap()
    );
    assert!(
        proxy::reserve(&mut conn, acme.id.into(), scope, period, 40, 100, now)
            .await
            .unwrap()
    );
    assert!(
        !proxy::reserve(&mut conn, acme.id.into(), scope, period, 1, 100, now)
            .await
            .unwrap()
    );
    // Settling the first call: its 60 reserved become 25 spent.
    let settle = aos_models::proxy::ProxySpendRow {
        tenant_id: acme.id,
        scope: scope.into(),
        period: period.into(),
        spent_micros: 25,
        reserved_micros: -60,
        updated_at: now,
    };
    proxy::apply_spend(&mut conn, &settle).await.unwrap();
    let counters = proxy::counters(&mut conn, acme.id.into(), &[scope.to_owned()], &[period.to_owned()])
        .await
        .unwrap();
    let counter = counters.iter().find(|c| c.period == period).unwrap();
    assert_eq!((counter.spent_micros, counter.reserved_micros), (25, 40));
    // Room again: 100 - 25 - 40 = 35.
    assert!(
        proxy::reserve(&mut conn, acme.id.into(), scope, period, 35, 100, now)
            .await
            .unwrap()
    );
    assert!(
        !proxy::reserve(&mut conn, acme.id.into(), scope, period, 1, 100, now)
            .await
            .unwrap()
    );
}

async fn approvals_are_decided_once_expire_once_and_stay_in_their_tenant(db: &Database) {
    let now = DbTime::now();
    let acme = insert(db, new_tenant("appr-acme", now)).await.unwrap();
    let globex = insert(db, new_tenant("appr-globex", now)).await.unwrap();
    let approval = |expires_at: DbTime| aos_models::governance::ApprovalRow {
        id: DbUuid::new_v7(),
        tenant_id: acme.id,
        subject_type: "deploy".into(),
        subject_id: "v1".into(),
        status: "PENDING".into(),
        reason: None,
        context: DbJson(json!({})),
        requested_by: "key:a".into(),
        created_at: now,
        expires_at,
        decided_at: None,
        decided_by: None,
        decision_reason: None,
    };
    let later = DbTime::from(now.get() + time::Duration::hours(1));
    let earlier = DbTime::from(now.get() - time::Duration::seconds(1));
    let mut conn = db.conn().await.unwrap();
    let open = governance::insert_approval(&mut conn, &approval(later)).await.unwrap();
    let stale = governance::insert_approval(&mut conn, &approval(earlier))
        .await
        .unwrap();
    // Another tenant can neither read nor decide it.
    assert!(matches!(
        governance::get_approval(&mut conn, globex.id.into(), open.id.into()).await,
        Err(DriverError::NotFound)
    ));
    let theirs = governance::decide_approval(
        &mut conn,
        globex.id.into(),
        open.id.into(),
        ApprovalStatus::Approved,
        "key:b",
        None,
        now,
    )
    .await
    .unwrap();
    assert!(theirs.is_none());
    // Decided exactly once.
    let first = governance::decide_approval(
        &mut conn,
        acme.id.into(),
        open.id.into(),
        ApprovalStatus::Approved,
        "key:b",
        Some("ok"),
        now,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (first.status(), first.decided_by.as_deref()),
        (ApprovalStatus::Approved, Some("key:b"))
    );
    let again = governance::decide_approval(
        &mut conn,
        acme.id.into(),
        open.id.into(),
        ApprovalStatus::Denied,
        "key:c",
        None,
        now,
    )
    .await
    .unwrap();
    assert!(again.is_none(), "a decided approval is not decided again");
    // An expired one cannot be decided, and the sweep expires it once.
    let late = governance::decide_approval(
        &mut conn,
        acme.id.into(),
        stale.id.into(),
        ApprovalStatus::Approved,
        "key:b",
        None,
        now,
    )
    .await
    .unwrap();
    assert!(late.is_none());
    let expired = governance::expire_due_approvals(&mut conn, now, 10).await.unwrap();
    assert_eq!(expired.iter().map(|a| a.id).collect::<Vec<_>>(), vec![stale.id]);
    assert_eq!(expired[0].status, "EXPIRED");
    assert!(
        governance::expire_due_approvals(&mut conn, now, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_audit_chain_appends_under_its_head_reads_per_tenant_and_refuses_edits(db: &Database) {
    let now = DbTime::now();
    let acme = insert(db, new_tenant("audit-acme", now)).await.unwrap();
    let globex = insert(db, new_tenant("audit-globex", now)).await.unwrap();
    let event = move |tenant: DbUuid, seq: i64, event_type: &str| aos_models::governance::AuditEventRow {
        id: DbUuid::new_v7(),
        tenant_id: tenant,
        seq,
        occurred_at: now,
        actor_type: "machine".into(),
        actor_id: Some("key:a".into()),
        event_type: event_type.into(),
        subject_type: "mcp_tool".into(),
        subject_id: Some("t1".into()),
        decision: None,
        policy_revision: None,
        details: DbJson(json!({"n": seq})),
        prev_hash: format!("h{}", seq - 1),
        event_hash: format!("h{seq}"),
    };
    let acme_id = acme.id;
    db.transaction(TxMode::Write, move |conn| {
        Box::pin(async move {
            let head = governance::lock_audit_head(conn, acme_id.into(), "h0").await?;
            assert_eq!(head.seq, 0);
            let events = [
                event(acme.id, 1, "TOOL_INVOCATION_REQUESTED"),
                event(acme.id, 2, "TOOL_INVOCATION_ALLOWED"),
            ];
            governance::append_audit_events(conn, &events).await?;
            Ok::<_, DriverError>(())
        })
    })
    .await
    .unwrap();
    let mut conn = db.conn().await.unwrap();
    let head = governance::get_audit_head(&mut conn, acme.id.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((head.seq, head.head_hash.as_str()), (2, "h2"));
    assert!(
        governance::get_audit_head(&mut conn, globex.id.into())
            .await
            .unwrap()
            .is_none()
    );
    let all = governance::list_audit_events(&mut conn, acme.id.into(), &governance::AuditFilter::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    let filter = governance::AuditFilter {
        event_type: Some("TOOL_INVOCATION_ALLOWED".into()),
        ..governance::AuditFilter::default()
    };
    let allowed = governance::list_audit_events(&mut conn, acme.id.into(), &filter, 0, 10)
        .await
        .unwrap();
    assert_eq!(allowed.len(), 1);
    let theirs = governance::list_audit_events(&mut conn, globex.id.into(), &governance::AuditFilter::default(), 0, 10)
        .await
        .unwrap();
    assert!(theirs.is_empty());
    // The chain is append-only: the database itself refuses an edit or a delete.
    let edited = aos_drivers::testing::execute_sql(db, "UPDATE audit_events SET event_type = 'X'").await;
    assert!(edited.is_err(), "an UPDATE of the audit chain went through");
    let deleted = aos_drivers::testing::execute_sql(db, "DELETE FROM audit_events").await;
    assert!(deleted.is_err(), "a DELETE of the audit chain went through");
}

async fn integration_keys_are_found_by_hash_and_listed_per_tenant(db: &Database) {
    let now = DbTime::now();
    let acme = insert(db, new_tenant("ik-acme", now)).await.unwrap();
    let globex = insert(db, new_tenant("ik-globex", now)).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let integration = insert_integration(&mut conn, acme.id, now).await;
    let key = usage::insert_integration_key(
        &mut conn,
        &aos_models::usage::IntegrationKeyRow {
            id: DbUuid::new_v7(),
            tenant_id: acme.id,
            integration_id: integration.id,
            prefix: "aos_ik_ab".into(),
            key_hash: "hash-of-the-key".into(),
            can_read: false,
            created_by: "key:a".into(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
        },
    )
    .await
    .unwrap();
    // Authentication finds it by hash alone (the tenant is not known yet) ...
    let found = usage::find_integration_key(&mut conn, "hash-of-the-key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.tenant_id), (key.id, acme.id));
    assert!(
        usage::find_integration_key(&mut conn, "no-such-hash")
            .await
            .unwrap()
            .is_none()
    );
    // ... every other read is the tenant's own.
    assert_eq!(
        usage::integration_keys(&mut conn, acme.id.into(), integration.id.into())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        usage::integration_keys(&mut conn, globex.id.into(), integration.id.into())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        usage::get_integration(&mut conn, globex.id.into(), integration.id.into()).await,
        Err(DriverError::NotFound)
    ));
    assert_eq!(
        usage::list_integrations(&mut conn, acme.id.into()).await.unwrap().len(),
        1
    );
    assert!(
        usage::list_integrations(&mut conn, globex.id.into())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn incidents_resolve_once_filter_by_status_and_stay_in_their_tenant(db: &Database) {
    use aos_types::IncidentStatus;
    let now = DbTime::now();
    let acme = insert(db, new_tenant("inc-acme", now)).await.unwrap();
    let globex = insert(db, new_tenant("inc-globex", now)).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let incident = |tenant_id: DbUuid, kind: &str, at: DbTime| aos_models::governance::IncidentRow {
        id: DbUuid::new_v7(),
        tenant_id,
        kind: kind.into(),
        severity: "HIGH".into(),
        status: IncidentStatus::Open.as_str().into(),
        title: "t".into(),
        details: DbJson(json!({"n": 1})),
        server_id: None,
        tool_id: None,
        invocation_id: None,
        created_at: at,
        resolved_at: None,
        resolved_by: None,
        resolution: None,
    };
    let later = DbTime::from(now.get() + time::Duration::seconds(1));
    let first = governance::insert_incident(&mut conn, &incident(acme.id, "TOOL_DRIFT", now))
        .await
        .unwrap();
    let second = governance::insert_incident(&mut conn, &incident(acme.id, "POLICY_ERROR", later))
        .await
        .unwrap();
    governance::insert_incident(&mut conn, &incident(globex.id, "TOOL_DRIFT", now))
        .await
        .unwrap();

    // Another tenant neither reads nor resolves it.
    assert!(matches!(
        governance::get_incident(&mut conn, globex.id.into(), first.id.into()).await,
        Err(DriverError::NotFound)
    ));
    assert!(
        governance::resolve_incident(&mut conn, globex.id.into(), first.id.into(), "key:g", None, later)
            .await
            .unwrap()
            .is_none()
    );
    // Resolved once; the second try finds nothing OPEN and changes nothing.
    let resolved = governance::resolve_incident(
        &mut conn,
        acme.id.into(),
        first.id.into(),
        "key:a",
        Some("fixed"),
        later,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resolved.status(), IncidentStatus::Resolved);
    assert_eq!(
        (resolved.resolved_by.as_deref(), resolved.resolution.as_deref()),
        (Some("key:a"), Some("fixed"))
    );
    assert!(
        governance::resolve_incident(
            &mut conn,
            acme.id.into(),
            first.id.into(),
            "key:b",
            Some("again"),
            later
        )
        .await
        .unwrap()
        .is_none()
    );
    let read = governance::get_incident(&mut conn, acme.id.into(), first.id.into())
        .await
        .unwrap();
    assert_eq!(read.resolved_by.as_deref(), Some("key:a"));
    assert_eq!(read.details, DbJson(json!({"n": 1})));

    // Lists: the tenant's own, oldest first, filtered by status and kind, paged by keyset.
    let all = governance::list_incidents(&mut conn, acme.id.into(), &Default::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(all.iter().map(|i| i.id).collect::<Vec<_>>(), vec![first.id, second.id]);
    let open = governance::IncidentFilter {
        status: Some(IncidentStatus::Open),
        ..Default::default()
    };
    let open = governance::list_incidents(&mut conn, acme.id.into(), &open, None, 10)
        .await
        .unwrap();
    assert_eq!(open.iter().map(|i| i.id).collect::<Vec<_>>(), vec![second.id]);
    let drift = governance::IncidentFilter {
        kind: Some("TOOL_DRIFT".into()),
        ..Default::default()
    };
    let drift = governance::list_incidents(&mut conn, acme.id.into(), &drift, None, 10)
        .await
        .unwrap();
    assert_eq!(drift.iter().map(|i| i.id).collect::<Vec<_>>(), vec![first.id]);
    let page2 = governance::list_incidents(
        &mut conn,
        acme.id.into(),
        &Default::default(),
        Some((first.created_at, first.id)),
        10,
    )
    .await
    .unwrap();
    assert_eq!(page2.iter().map(|i| i.id).collect::<Vec<_>>(), vec![second.id]);
}

async fn usage_records_are_idempotent_per_call_and_rollups_add_up(db: &Database) {
    let now = DbTime::now();
    let acme = insert(db, new_tenant("use-acme", now)).await.unwrap();
    let globex = insert(db, new_tenant("use-globex", now)).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let integration = insert_integration(&mut conn, acme.id, now).await;
    let record = |call_id: &str, at: DbTime| aos_models::usage::UsageRecordRow {
        id: DbUuid::new_v7(),
        tenant_id: acme.id,
        integration_id: integration.id,
        call_id: call_id.into(),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        input_tokens: 10,
        output_tokens: 5,
        cached_tokens: 0,
        cost_micros: 7,
        cost_source: "reported".into(),
        latency_ms: Some(12),
        status: "success".into(),
        error_code: None,
        session_id: None,
        run_id: None,
        trace_id: None,
        occurred_at: at,
        received_at: now,
        metadata: DbJson(json!({})),
    };
    let earlier = DbTime::from(now.get() - time::Duration::seconds(5));
    let inserted = usage::insert_new_records(&mut conn, &[record("c1", earlier), record("c2", now)])
        .await
        .unwrap();
    assert_eq!(inserted, vec!["c1".to_owned(), "c2".to_owned()]);
    // A retried batch: the known call id is skipped, the new one goes in.
    let again = usage::insert_new_records(&mut conn, &[record("c2", now), record("c3", now)])
        .await
        .unwrap();
    assert_eq!(again, vec!["c3".to_owned()]);

    let window = (
        DbTime::from(now.get() - time::Duration::hours(1)),
        DbTime::from(now.get() + time::Duration::hours(1)),
    );
    let mine = usage::records(&mut conn, acme.id.into(), None, window.0, window.1, None, 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 3);
    assert_eq!(mine.last().map(|r| r.call_id.as_str()), Some("c1"), "newest first");
    assert!(
        usage::records(&mut conn, globex.id.into(), None, window.0, window.1, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let cursor = mine.first().map(|r| (r.occurred_at, r.id));
    let rest = usage::records(
        &mut conn,
        acme.id.into(),
        Some(integration.id.into()),
        window.0,
        window.1,
        cursor,
        10,
    )
    .await
    .unwrap();
    assert_eq!(rest.len(), 2);

    // Rollups: two increments of the same day, provider and model add into one row.
    let increment = |calls: i64, cost: i64| aos_models::usage::DailyUsageRow {
        tenant_id: acme.id,
        integration_id: integration.id,
        day: "2026-12-01".into(),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        calls,
        errors: 1,
        input_tokens: 10 * calls,
        cost_micros: cost,
        latency_count: calls,
        latency_sum_ms: 12 * calls,
        lat_b03: calls,
        ..Default::default()
    };
    usage::add_to_daily(&mut conn, &[increment(2, 14)]).await.unwrap();
    usage::add_to_daily(&mut conn, &[increment(1, 7)]).await.unwrap();
    let rows = usage::daily_rows(&mut conn, acme.id.into(), None, "2026-12-01", "2026-12-01")
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].calls,
            rows[0].errors,
            rows[0].input_tokens,
            rows[0].cost_micros,
            rows[0].lat_b03
        ),
        (3, 2, 30, 21, 3)
    );
    assert!(
        usage::daily_rows(&mut conn, acme.id.into(), None, "2026-12-02", "2026-12-31")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        usage::daily_rows(&mut conn, globex.id.into(), None, "2026-12-01", "2026-12-01")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn agents_have_live_unique_names_their_own_keys_and_versioned_manifests(db: &Database) {
    use aos_drivers::agents;
    use aos_models::agent::{AgentChanges, AgentManifestRow, AgentRow};
    use aos_types::{AgentId, AgentStatus};
    let now = DbTime::now();
    let acme = insert(db, new_tenant("ag-acme", now)).await.unwrap();
    let globex = insert(db, new_tenant("ag-globex", now)).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let agent = |tenant_id: DbUuid, name: &str| AgentRow {
        id: DbUuid::new_v7(),
        tenant_id,
        name: name.into(),
        description: None,
        owner: Some("user:ops".into()),
        status: AgentStatus::Active.as_str().into(),
        capabilities: DbJson(json!([{"tool": "github.*", "max_risk": "MEDIUM"}])),
        manifest_pinned: false,
        created_by: "user:ops".into(),
        created_at: now,
        updated_at: now,
    };
    let bot = agents::insert(&mut conn, &agent(acme.id, "Support Bot")).await.unwrap();
    assert_eq!(
        bot.capabilities,
        DbJson(json!([{"tool": "github.*", "max_risk": "MEDIUM"}]))
    );
    // A live name is unique per tenant, case-insensitively; another tenant may reuse it.
    assert!(matches!(
        agents::insert(&mut conn, &agent(acme.id, "support bot")).await,
        Err(DriverError::Conflict(_))
    ));
    agents::insert(&mut conn, &agent(globex.id, "Support Bot"))
        .await
        .unwrap();
    // Another tenant neither reads nor changes it.
    let bot_id = AgentId::from(bot.id);
    assert!(matches!(
        agents::get(&mut conn, globex.id.into(), bot_id).await,
        Err(DriverError::NotFound)
    ));
    let disable = AgentChanges {
        status: Some(AgentStatus::Disabled.as_str().into()),
        ..Default::default()
    };
    assert!(matches!(
        agents::update(&mut conn, globex.id.into(), bot_id, &disable).await,
        Err(DriverError::NotFound)
    ));
    let disabled = agents::update(&mut conn, acme.id.into(), bot_id, &disable)
        .await
        .unwrap();
    assert_eq!(
        (disabled.status(), disabled.name.as_str()),
        (AgentStatus::Disabled, "Support Bot")
    );

    // Revoking the agent's keys leaves the tenant's other keys alone.
    let mut own = new_key(acme.id, "agent-key-hash");
    own.agent_id = Some(bot.id);
    aos_drivers::api_keys::insert(&mut conn, &own).await.unwrap();
    aos_drivers::api_keys::insert(&mut conn, &new_key(acme.id, "tenant-key-hash"))
        .await
        .unwrap();
    assert_eq!(
        agents::revoke_keys(&mut conn, globex.id.into(), bot_id, now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        agents::revoke_keys(&mut conn, acme.id.into(), bot_id, now)
            .await
            .unwrap(),
        1
    );
    let tenant_key = aos_drivers::api_keys::find_by_hash(&mut conn, "tenant-key-hash")
        .await
        .unwrap()
        .unwrap();
    assert!(tenant_key.revoked_at.is_none());
    let agent_key = aos_drivers::api_keys::find_by_hash(&mut conn, "agent-key-hash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((agent_key.revoked_at, agent_key.agent_id), (Some(now), Some(bot.id)));

    // Manifests: one row per version, newest first, the tenant's own.
    let manifest = |version: i64| AgentManifestRow {
        id: DbUuid::new_v7(),
        tenant_id: acme.id,
        agent_id: bot.id,
        version,
        jws: format!("jws-{version}"),
        payload: DbJson(json!({"version": version})),
        issued_by: "user:ops".into(),
        issued_at: now,
    };
    agents::insert_manifest(&mut conn, &manifest(1)).await.unwrap();
    agents::insert_manifest(&mut conn, &manifest(2)).await.unwrap();
    assert!(matches!(
        agents::insert_manifest(&mut conn, &manifest(2)).await,
        Err(DriverError::Conflict(_))
    ));
    let versions: Vec<i64> = agents::manifests(&mut conn, acme.id.into(), bot_id, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, vec![2, 1]);
    assert!(
        agents::manifests(&mut conn, globex.id.into(), bot_id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        agents::manifest(&mut conn, acme.id.into(), bot_id, 1)
            .await
            .unwrap()
            .jws,
        "jws-1"
    );
    assert!(matches!(
        agents::manifest(&mut conn, acme.id.into(), bot_id, 3).await,
        Err(DriverError::NotFound)
    ));

    // Deleted agents leave the list and free their name.
    let delete = AgentChanges {
        status: Some(AgentStatus::Deleted.as_str().into()),
        ..Default::default()
    };
    agents::update(&mut conn, acme.id.into(), bot_id, &delete)
        .await
        .unwrap();
    assert!(
        agents::list(&mut conn, acme.id.into(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        agents::list(&mut conn, globex.id.into(), None, 10).await.unwrap().len(),
        1
    );
    agents::insert(&mut conn, &agent(acme.id, "Support Bot")).await.unwrap();
    assert_eq!(
        agents::get(&mut conn, acme.id.into(), bot_id).await.unwrap().status(),
        AgentStatus::Deleted,
        "kept for audit"
    );
}

async fn insert_integration(
    conn: &mut aos_drivers::Conn,
    tenant_id: DbUuid,
    now: DbTime,
) -> aos_models::usage::IntegrationRow {
    usage::insert_integration(
        conn,
        &aos_models::usage::IntegrationRow {
            id: DbUuid::new_v7(),
            tenant_id,
            name: "prod".into(),
            provider: "openai".into(),
            status: "ACTIVE".into(),
            created_by: "key:a".into(),
            created_at: now,
            updated_at: now,
        },
    )
    .await
    .unwrap()
}
