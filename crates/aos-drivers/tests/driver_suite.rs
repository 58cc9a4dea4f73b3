//! The driver suite: every test here runs once on PostgreSQL and once on SQLite, each
//! on a database of its own.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aos_drivers::{Backend, Database, DriverError, TxMode, api_keys, auth_epoch, tenants};
use aos_models::api_key::NewApiKey;
use aos_models::tenant::{NewTenant, TenantChanges};
use aos_models::{DbJson, DbTime, DbUuid};
use serde_json::json;
use time::macros::datetime;

/// Generates `postgres::NAME` and `sqlite::NAME` for each async fn `NAME(&Database)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test_db = aos_drivers::testing::postgres().await;
                    assert_eq!(test_db.backend(), aos_drivers::Backend::Postgres);
                    super::$name(test_db.database()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test_db = aos_drivers::testing::sqlite().await;
                    assert_eq!(test_db.backend(), aos_drivers::Backend::Sqlite);
                    super::$name(test_db.database()).await;
                }
            )*
        }
    };
}

on_both_backends!(
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
    let read = tenants::get(&mut conn, new.id).await.unwrap();
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
    let updated = tenants::update(&mut conn, stored.id, &changes).await.unwrap();
    assert_eq!(updated.status, "SUSPENDED");
    assert_eq!(updated.name, stored.name);
    assert_eq!(updated.onboarding_state, stored.onboarding_state);

    let err = tenants::update(&mut conn, DbUuid::new_v7(), &changes)
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::NotFound), "{err:?}");
    let err = tenants::get(&mut conn, DbUuid::new_v7()).await.unwrap_err();
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
    assert!(matches!(tenants::get(&mut conn, id).await, Err(DriverError::NotFound)));
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
    assert_eq!(tenants::get(&mut conn, ids.0).await.unwrap().name, "a");
    assert_eq!(tenants::get(&mut conn, ids.1).await.unwrap().name, "b");
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
    assert_eq!(api_keys::get(&mut conn, a.id, ka.id).await.unwrap().id, ka.id);
    assert!(matches!(
        api_keys::get(&mut conn, b.id, ka.id).await,
        Err(DriverError::NotFound)
    ));
    assert!(matches!(
        api_keys::revoke(&mut conn, b.id, ka.id, DbTime::now()).await,
        Err(DriverError::NotFound)
    ));

    let listed = api_keys::list(&mut conn, a.id, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.id).collect::<Vec<_>>(), [ka.id]);
    assert_eq!(api_keys::count(&mut conn, b.id).await.unwrap(), 1);
    assert_eq!(api_keys::get_any(&mut conn, kb.id).await.unwrap().tenant_id, b.id);

    let dup = api_keys::insert(&mut conn, &new_key(a.id, "hash-a")).await.unwrap_err();
    assert!(matches!(dup, DriverError::Conflict(_)), "{dup:?}");
}

async fn revoking_is_idempotent_and_epoch_moves(db: &Database) {
    let a = insert(db, new_tenant("a", DbTime::now())).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let key = api_keys::insert(&mut conn, &new_key(a.id, "h")).await.unwrap();
    let first = DbTime::from(datetime!(2026-01-01 00:00:00 UTC));
    let revoked = api_keys::revoke(&mut conn, a.id, key.id, first).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(first));
    let again = api_keys::revoke_any(&mut conn, key.id, DbTime::now()).await.unwrap();
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
