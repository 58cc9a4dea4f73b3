//! Rollups maintained at ingestion equal what a scan of the raw records gives, on random
//! data with duplicates (within a batch, across batches, and racing retries), on both
//! backends.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use aos_drivers::{Database, TxMode, usage};
use aos_engines::EngineError;
use aos_engines::telemetry::{self, DayRange, Outcome, TelemetrySettings, Totals, UsageInput};
use aos_models::usage::DailyUsageRow;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{Duration, OffsetDateTime};

aos_drivers::on_both_backends!(
    rollups_equal_a_scan_of_the_raw_records,
    a_bad_record_is_rejected_alone_and_limits_hold
);

async fn write<T: Send + 'static>(
    db: &Database,
    f: impl for<'c> FnOnce(&'c mut aos_drivers::Conn) -> aos_drivers::TxFuture<'c, Result<T, EngineError>> + Send,
) -> Result<T, EngineError> {
    db.transaction(TxMode::Write, f).await
}

fn random_record(rng: &mut StdRng, now: OffsetDateTime, call: u32) -> UsageInput {
    let providers = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4"),
        ("acme", "llm-x"),
    ];
    let (provider, model) = providers[rng.random_range(0..providers.len())];
    let error = rng.random_bool(0.1);
    UsageInput {
        call_id: format!("call-{call}"),
        provider: provider.into(),
        model: model.into(),
        input_tokens: rng.random_range(0..5_000),
        output_tokens: rng.random_range(0..2_000),
        cached_tokens: rng.random_range(0..100),
        cost_usd: rng
            .random_bool(0.3)
            .then(|| f64::from(rng.random_range(0..10_000_u32)) / 1e4),
        latency_ms: rng.random_bool(0.9).then(|| rng.random_range(1..25_000)),
        status: if error { "error".into() } else { "success".into() },
        error_code: error.then(|| "rate_limit".into()),
        occurred_at: Some(now - Duration::minutes(rng.random_range(0..(60 * 24 * 10)))),
        ..UsageInput::default()
    }
}

async fn rollups_equal_a_scan_of_the_raw_records(db: &Database) {
    let mut conn = db.conn().await.unwrap();
    let tenant: uuid::Uuid = aos_engines::tenants::create(&mut conn, "t").await.unwrap().id.into();
    let a: uuid::Uuid = telemetry::create_integration(&mut conn, tenant, "a", "openai", "test")
        .await
        .unwrap()
        .id
        .into();
    let b: uuid::Uuid = telemetry::create_integration(&mut conn, tenant, "b", "mixed", "test")
        .await
        .unwrap()
        .id
        .into();
    drop(conn);
    let settings = TelemetrySettings::default();
    let now = OffsetDateTime::now_utc();
    let mut rng = StdRng::seed_from_u64(8_512);

    let mut accepted = 0;
    for batch in 0..12 {
        let integration = if batch % 3 == 0 { b } else { a };
        let mut records: Vec<UsageInput> = (0..150)
            .map(|_| {
                let call = rng.random_range(0..1_200);
                random_record(&mut rng, now, call)
            })
            .collect();
        // A retry inside the same request.
        records.push(records[0].clone());
        let settings = settings.clone();
        let outcomes = write(db, move |conn| {
            Box::pin(async move { telemetry::ingest(conn, &settings, tenant, integration, records).await })
        })
        .await
        .unwrap();
        assert_eq!(outcomes.len(), 151);
        assert!(matches!(outcomes.last(), Some(Outcome::Duplicate { index: 150, .. })));
        accepted += outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Accepted { .. }))
            .count();
    }
    // Two retries of the same fresh records racing each other: each record counts once.
    let fresh: Vec<UsageInput> = (0..50).map(|i| random_record(&mut rng, now, 10_000 + i)).collect();
    let (s1, s2, f1, f2) = (settings.clone(), settings.clone(), fresh.clone(), fresh);
    let (r1, r2) = tokio::join!(
        write(db, move |conn| Box::pin(async move {
            telemetry::ingest(conn, &s1, tenant, a, f1).await
        })),
        write(db, move |conn| Box::pin(async move {
            telemetry::ingest(conn, &s2, tenant, a, f2).await
        })),
    );
    let raced: Vec<Outcome> = r1.unwrap().into_iter().chain(r2.unwrap()).collect();
    assert_eq!(
        raced.iter().filter(|o| matches!(o, Outcome::Accepted { .. })).count(),
        50
    );
    assert_eq!(
        raced.iter().filter(|o| matches!(o, Outcome::Duplicate { .. })).count(),
        50
    );
    accepted += 50;

    // The scan: every raw record, summed the same way.
    let mut conn = db.conn().await.unwrap();
    let raw = usage::records(
        &mut conn,
        tenant.into(),
        None,
        (now - Duration::days(30)).into(),
        (now + Duration::days(1)).into(),
        None,
        100_000,
    )
    .await
    .unwrap();
    assert_eq!(raw.len(), accepted, "no record stored twice");
    let mut scan_total = DailyUsageRow::default();
    let mut scan_by: BTreeMap<(String, String), DailyUsageRow> = BTreeMap::new();
    let mut scan_days: BTreeMap<String, DailyUsageRow> = BTreeMap::new();
    for record in &raw {
        telemetry::accumulate(&mut scan_total, record);
        telemetry::accumulate(
            scan_by
                .entry((record.provider.clone(), record.model.clone()))
                .or_default(),
            record,
        );
        telemetry::accumulate(
            scan_days.entry(telemetry::day_of(record.occurred_at)).or_default(),
            record,
        );
    }
    let as_totals = |row: &DailyUsageRow| {
        let mut t = Totals::default();
        t.add(row);
        t
    };

    let range = DayRange::new((now - Duration::days(12)).date(), now.date(), 366).unwrap();
    let (total, by) = telemetry::summary(&mut conn, tenant, None, range).await.unwrap();
    assert_eq!(total, as_totals(&scan_total));
    assert_eq!(total.calls as usize, accepted);
    assert_eq!(total.latency_p95_ms(), telemetry::p95(&scan_total.buckets()));
    let by: BTreeMap<_, _> = by.into_iter().collect();
    assert_eq!(by.len(), scan_by.len());
    for (key, row) in &scan_by {
        assert_eq!(by[key], as_totals(row), "{key:?}");
    }
    let days = telemetry::daily(&mut conn, tenant, None, range).await.unwrap();
    assert_eq!(days.len(), 13, "every day of the range, zeros included");
    for (day, totals) in &days {
        let expected = scan_days.get(&day.to_string()).map(as_totals).unwrap_or_default();
        assert_eq!(*totals, expected, "{day}");
    }
    // Filtering by integration matches a filtered scan.
    let (only_b, _) = telemetry::summary(&mut conn, tenant, Some(b), range).await.unwrap();
    let mut scan_b = DailyUsageRow::default();
    raw.iter()
        .filter(|r| r.integration_id == b.into())
        .for_each(|r| telemetry::accumulate(&mut scan_b, r));
    assert_eq!(only_b, as_totals(&scan_b));
}

async fn a_bad_record_is_rejected_alone_and_limits_hold(db: &Database) {
    let mut conn = db.conn().await.unwrap();
    let tenant: uuid::Uuid = aos_engines::tenants::create(&mut conn, "t").await.unwrap().id.into();
    let a: uuid::Uuid = telemetry::create_integration(&mut conn, tenant, "a", "openai", "test")
        .await
        .unwrap()
        .id
        .into();
    drop(conn);
    let settings = TelemetrySettings {
        max_batch: 5,
        ..TelemetrySettings::default()
    };
    let good = |id: &str| UsageInput {
        call_id: id.into(),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        input_tokens: 1_000_000,
        output_tokens: 100_000,
        status: "success".into(),
        ..UsageInput::default()
    };
    let records = vec![
        good("ok-1"),
        UsageInput {
            input_tokens: -1,
            ..good("bad-tokens")
        },
        UsageInput {
            status: "maybe".into(),
            ..good("bad-status")
        },
        UsageInput {
            occurred_at: Some(OffsetDateTime::now_utc() - Duration::days(900)),
            ..good("too-old")
        },
        good("ok-2"),
    ];
    let s = settings.clone();
    let outcomes = write(db, move |conn| {
        Box::pin(async move { telemetry::ingest(conn, &s, tenant, a, records).await })
    })
    .await
    .unwrap();
    assert!(matches!(&outcomes[0], Outcome::Accepted { index: 0, .. }));
    assert!(matches!(
        &outcomes[1],
        Outcome::Rejected {
            index: 1,
            field: "input_tokens",
            ..
        }
    ));
    assert!(matches!(
        &outcomes[2],
        Outcome::Rejected {
            index: 2,
            field: "status",
            ..
        }
    ));
    assert!(matches!(
        &outcomes[3],
        Outcome::Rejected {
            index: 3,
            field: "occurred_at",
            ..
        }
    ));
    assert!(matches!(&outcomes[4], Outcome::Accepted { index: 4, .. }));

    // Cost computed from the price table: 1M input at $2.50 + 100k output at $10 = $3.50.
    let mut conn = db.conn().await.unwrap();
    let now = OffsetDateTime::now_utc();
    let raw = usage::records(
        &mut conn,
        tenant.into(),
        None,
        (now - Duration::days(1)).into(),
        (now + Duration::days(1)).into(),
        None,
        10,
    )
    .await
    .unwrap();
    assert!(
        raw.iter()
            .all(|r| r.cost_micros == 3_500_000 && r.cost_source == "computed"),
        "{raw:?}"
    );
    drop(conn);

    // Too many records, or an unknown integration: refused whole, nothing written.
    let s = settings.clone();
    let too_many = (0..6).map(|i| good(&format!("n-{i}"))).collect();
    let err = write(db, move |conn| {
        Box::pin(async move { telemetry::ingest(conn, &s, tenant, a, too_many).await })
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::Invalid { field, .. } if field == "records"),
        "{err:?}"
    );
    let (s, records) = (settings.clone(), vec![good("x")]);
    let err = write(db, move |conn| {
        Box::pin(async move { telemetry::ingest(conn, &s, tenant, uuid::Uuid::now_v7(), records).await })
    })
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)), "{err:?}");
    let mut conn = db.conn().await.unwrap();
    let raw = usage::records(
        &mut conn,
        tenant.into(),
        None,
        (now - Duration::days(1)).into(),
        (now + Duration::days(1)).into(),
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(raw.len(), 2);
}
