//! The call log's background writer. The request path hands it records and moves on;
//! the writer inserts them in batches (one transaction per batch: call rows and the
//! aggregated spend settlements).
//!
//! - The queue is bounded. When it is full (the database is slow or down) a submitter
//!   waits up to `enqueue_timeout_ms` for room, which slows callers down instead of
//!   growing memory; past that the record is dropped and counted.
//! - A failed batch is retried with backoff (up to 5 s between tries) until it lands;
//!   meanwhile the queue fills and the backpressure above applies.
//! - [`Writer::shutdown`] flushes what is queued, within a deadline; what cannot be
//!   written by then is counted as dropped.
//!
//! [`WriterStats`] counts what was queued, written, retried and dropped (should be zero).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aos_drivers::{Database, TxMode, proxy as db};
use aos_models::proxy::{ProxyCallRow, ProxySpendRow};
use aos_models::{DbTime, DbUuid};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};
use tokio_util_like::Stop;

/// `[proxy.log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallLogConfig {
    /// Records waiting to be written, at most.
    pub queue_capacity: usize,
    /// Records per transaction, at most.
    pub batch_size: usize,
    /// How long a request waits for room in a full queue before its record is dropped.
    pub enqueue_timeout_ms: u64,
    /// How long shutdown may take to flush the queue.
    pub shutdown_flush_ms: u64,
    /// Days a call stays in the log (0 keeps calls forever).
    pub retention_days: u32,
    /// Request and response bodies longer than this (serialised) are not kept; such a
    /// call cannot be replayed.
    pub max_body_bytes: usize,
    /// Keep request and response bodies (secrets and PII removed) at all.
    pub store_bodies: bool,
}

impl Default for CallLogConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            batch_size: 500,
            enqueue_timeout_ms: 2_000,
            shutdown_flush_ms: 5_000,
            retention_days: 30,
            max_body_bytes: 64 * 1024,
            store_bodies: true,
        }
    }
}

/// What the writer persists.
#[derive(Debug, Clone)]
pub enum Record {
    Call(Box<ProxyCallRow>),
    /// Deltas added to a spend counter.
    Spend(ProxySpendRow),
}

/// The writer's counters.
#[derive(Debug, Default, Serialize)]
pub struct WriterStats {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
    pub batches: AtomicU64,
    pub failing: AtomicBool,
}

/// A point-in-time copy of [`WriterStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterSnapshot {
    pub queued: u64,
    pub written: u64,
    pub dropped: u64,
    pub retries: u64,
    pub batches: u64,
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub failing: bool,
}

/// The submitting side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Record>,
    stats: Arc<WriterStats>,
    enqueue_timeout: Duration,
    capacity: usize,
    done: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    stop: Stop,
}

/// A tiny stop flag with a notifier (the writer must drain, not abort, on shutdown).
mod tokio_util_like {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::sync::Notify;

    #[derive(Debug, Clone, Default)]
    pub struct Stop {
        flag: Arc<AtomicBool>,
        notify: Arc<Notify>,
    }

    impl Stop {
        pub fn set(&self) {
            self.flag.store(true, Ordering::SeqCst);
            self.notify.notify_waiters();
            self.notify.notify_one();
        }

        pub fn is_set(&self) -> bool {
            self.flag.load(Ordering::SeqCst)
        }

        pub async fn wait(&self) {
            while !self.is_set() {
                self.notify.notified().await;
            }
        }
    }
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub fn start(database: Database, config: &CallLogConfig) -> Self {
        let capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(WriterStats::default());
        let stop = Stop::default();
        let handle = tokio::spawn(run(
            database,
            rx,
            Arc::clone(&stats),
            config.batch_size.max(1),
            stop.clone(),
            Duration::from_millis(config.shutdown_flush_ms),
        ));
        Self {
            tx,
            stats,
            enqueue_timeout: Duration::from_millis(config.enqueue_timeout_ms),
            capacity,
            done: Arc::new(Mutex::new(Some(handle))),
            stop,
        }
    }

    /// Queues `records`, waiting for room when the queue is full (see the module docs).
    pub async fn submit(&self, records: Vec<Record>) {
        for record in records {
            let sent = match self.tx.try_send(record) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
                Err(mpsc::error::TrySendError::Full(record)) => {
                    matches!(
                        tokio::time::timeout(self.enqueue_timeout, self.tx.send(record)).await,
                        Ok(Ok(()))
                    )
                }
            };
            if sent {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("proxy call log: queue full or closed; a record was dropped");
            }
        }
    }

    pub fn stats(&self) -> WriterSnapshot {
        let s = &self.stats;
        WriterSnapshot {
            queued: s.queued.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            queue_depth: u64::try_from(self.capacity - self.tx.capacity()).unwrap_or(0),
            queue_capacity: u64::try_from(self.capacity).unwrap_or(u64::MAX),
            failing: s.failing.load(Ordering::Relaxed),
        }
    }

    /// Flushes what is queued (within `[proxy.log] shutdown_flush_ms`) and stops.
    pub async fn shutdown(&self) {
        self.stop.set();
        let handle = self.done.lock().await.take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

type SpendKey = (DbUuid, String, String);

async fn write_batch(database: &Database, calls: Vec<ProxyCallRow>, spends: Vec<ProxySpendRow>) -> Result<(), String> {
    database
        .transaction(TxMode::Write, move |conn| {
            Box::pin(async move {
                db::insert_calls(conn, &calls).await?;
                for spend in &spends {
                    db::apply_spend(conn, spend).await?;
                }
                Ok::<(), aos_drivers::DriverError>(())
            })
        })
        .await
        .map_err(|e| e.to_string())
}

fn split(batch: &mut Vec<Record>) -> (Vec<ProxyCallRow>, Vec<ProxySpendRow>) {
    let mut calls = Vec::new();
    let mut spends: HashMap<SpendKey, ProxySpendRow> = HashMap::new();
    for record in batch.drain(..) {
        match record {
            Record::Call(row) => calls.push(*row),
            Record::Spend(row) => {
                let key = (row.tenant_id, row.scope.clone(), row.period.clone());
                spends
                    .entry(key)
                    .and_modify(|acc| {
                        acc.spent_micros += row.spent_micros;
                        acc.reserved_micros += row.reserved_micros;
                        acc.updated_at = acc.updated_at.max(row.updated_at);
                    })
                    .or_insert(row);
            }
        }
    }
    let mut spends: Vec<ProxySpendRow> = spends.into_values().collect();
    // One lock order for every writer (replicas write concurrently).
    spends.sort_by(|a, b| (a.tenant_id, &a.scope, &a.period).cmp(&(b.tenant_id, &b.scope, &b.period)));
    (calls, spends)
}

async fn run(
    database: Database,
    mut rx: mpsc::Receiver<Record>,
    stats: Arc<WriterStats>,
    batch_size: usize,
    stop: Stop,
    flush_deadline: Duration,
) {
    let mut batch: Vec<Record> = Vec::with_capacity(batch_size);
    loop {
        if batch.is_empty() {
            tokio::select! {
                n = rx.recv_many(&mut batch, batch_size) => {
                    if n == 0 {
                        return; // every sender is gone and the queue is empty
                    }
                }
                () = stop.wait() => break,
            }
        }
        let count = u64::try_from(batch.len()).unwrap_or(0);
        let (calls, spends) = split(&mut batch);
        let mut backoff = Duration::from_millis(100);
        loop {
            match write_batch(&database, calls.clone(), spends.clone()).await {
                Ok(()) => {
                    stats.written.fetch_add(count, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    if stats.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("proxy call log: writing again");
                    }
                    break;
                }
                Err(error) => {
                    if !stats.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%error, "proxy call log: batch not written; retrying");
                    }
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    if stop.is_set() {
                        // Shutting down: one more try in the flush below.
                        batch_restore(&mut batch, calls, spends);
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if stop.is_set() {
            break;
        }
    }
    // Shutdown: take everything still queued and write it before the deadline.
    rx.close();
    while let Ok(record) = rx.try_recv() {
        batch.push(record);
    }
    let deadline = tokio::time::Instant::now() + flush_deadline;
    while !batch.is_empty() {
        let take = batch.len().min(batch_size);
        let mut chunk: Vec<Record> = batch.drain(..take).collect();
        let count = u64::try_from(chunk.len()).unwrap_or(0);
        let (calls, spends) = split(&mut chunk);
        let written = loop {
            match tokio::time::timeout_at(deadline, write_batch(&database, calls.clone(), spends.clone())).await {
                Ok(Ok(())) => break true,
                Ok(Err(error)) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(%error, "proxy call log: flush failed; retrying until the deadline");
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break false,
            }
        };
        if written {
            stats.written.fetch_add(count, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
        } else {
            let lost = count + u64::try_from(batch.len()).unwrap_or(0);
            stats.dropped.fetch_add(lost, Ordering::Relaxed);
            tracing::error!(
                dropped = lost,
                "proxy call log: shutdown flush deadline passed; records dropped"
            );
            return;
        }
    }
}

fn batch_restore(batch: &mut Vec<Record>, calls: Vec<ProxyCallRow>, spends: Vec<ProxySpendRow>) {
    batch.extend(calls.into_iter().map(|c| Record::Call(Box::new(c))));
    batch.extend(spends.into_iter().map(Record::Spend));
}

/// The retention cut-off for `days` (none when calls are kept forever).
pub fn retention_cutoff(days: u32) -> Option<DbTime> {
    (days > 0).then(|| DbTime::from(time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aos_drivers::Backend;
    use aos_drivers::testing;
    use aos_models::DbJson;
    use aos_models::tenant::NewTenant;
    use serde_json::json;

    fn call(tenant: DbUuid) -> Record {
        Record::Call(Box::new(ProxyCallRow {
            id: DbUuid::new_v7(),
            tenant_id: tenant,
            key_id: None,
            actor: "key:test".into(),
            endpoint: "chat.completions".into(),
            model: "m".into(),
            provider: Some("p".into()),
            stream: false,
            status: "ok".into(),
            http_status: 200,
            error_code: None,
            latency_ms: 1,
            input_tokens: 1,
            cached_input_tokens: 0,
            output_tokens: 1,
            token_source: "upstream".into(),
            cost_micros: 3,
            killswitch: "passed".into(),
            guardrails: DbJson(json!([])),
            request_hash: "h".into(),
            request_body: None,
            response_body: None,
            replay_eligible: false,
            replayed_from_id: None,
            created_at: DbTime::now(),
        }))
    }

    async fn waits_retries_drops_and_recovers(backend: Backend) {
        let test_db = testing::database(backend).await;
        let database = test_db.database().clone();
        let config = CallLogConfig {
            queue_capacity: 4,
            batch_size: 2,
            enqueue_timeout_ms: 50,
            shutdown_flush_ms: 3_000,
            ..CallLogConfig::default()
        };
        let writer = Writer::start(database.clone(), &config);
        // The tenant does not exist yet: every batch fails its foreign key, as if the
        // database refused writes.
        let tenant = DbUuid::new_v7();
        writer.submit(vec![call(tenant)]).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while writer.stats().retries == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the failing batch is retried");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(writer.stats().failing);
        // The writer holds one batch; the queue takes 4 more; the rest wait 50 ms and drop.
        let started = tokio::time::Instant::now();
        writer.submit((0..10).map(|_| call(tenant)).collect()).await;
        let stats = writer.stats();
        assert!(stats.queue_depth <= 4, "{stats:?}");
        assert!(stats.dropped >= 4, "backpressure, then drops: {stats:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "submitters waited for room"
        );
        let kept = stats.queued;
        // The database comes back: everything queued lands.
        let mut conn = database.conn().await.unwrap();
        let now = DbTime::now();
        aos_drivers::tenants::insert(
            &mut conn,
            &NewTenant {
                id: tenant,
                name: "recovered".into(),
                status: "ACTIVE".into(),
                onboarding_state: "CREATED".into(),
                settings: DbJson(json!({})),
                created_at: now,
                updated_at: now,
            },
        )
        .await
        .unwrap();
        drop(conn);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while writer.stats().written < kept {
            assert!(
                tokio::time::Instant::now() < deadline,
                "recovered: {:?}",
                writer.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!writer.stats().failing);
        let mut conn = database.conn().await.unwrap();
        let rows = aos_drivers::proxy::list_calls(&mut conn, tenant, &Default::default(), None, 100)
            .await
            .unwrap();
        assert_eq!(rows.len() as u64, kept);
        drop(conn);
        writer.shutdown().await;
        assert_eq!(writer.stats().written, kept);
    }

    async fn shutdown_flushes_the_queue(backend: Backend) {
        let test_db = testing::database(backend).await;
        let database = test_db.database().clone();
        let mut conn = database.conn().await.unwrap();
        let tenant = crate::tenants::create(&mut conn, "flush").await.unwrap().id;
        drop(conn);
        let writer = Writer::start(database.clone(), &CallLogConfig::default());
        writer.submit((0..50).map(|_| call(tenant)).collect()).await;
        writer.shutdown().await;
        let stats = writer.stats();
        assert_eq!((stats.written, stats.dropped), (50, 0), "{stats:?}");
        let mut conn = database.conn().await.unwrap();
        let rows = aos_drivers::proxy::list_calls(&mut conn, tenant, &Default::default(), None, 100)
            .await
            .unwrap();
        assert_eq!(rows.len(), 50);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_writer_waits_retries_drops_and_recovers() {
        waits_retries_drops_and_recovers(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writer_waits_retries_drops_and_recovers() {
        waits_retries_drops_and_recovers(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_writer_shutdown_flushes_the_queue() {
        shutdown_flushes_the_queue(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writer_shutdown_flushes_the_queue() {
        shutdown_flushes_the_queue(Backend::Sqlite).await;
    }
}
