//! The call log's background writer. The request path hands it records and moves on;
//! the writer inserts them in batches (one transaction per batch: call rows and the
//! spend settlements).
//!
//! - Call rows go through a bounded queue. A request that will be answered takes a
//!   [`Slot`] in it when it is admitted ([`Writer::admit`]), before anything goes
//!   upstream, and writes its row into that slot at the end: the row of an answered call
//!   is never dropped. When no slot is free (the database is slow or down) the request is
//!   refused at once, explicitly (503 with `Retry-After`), and nothing goes upstream.
//!   Rows submitted without a slot (refusals) wait up to `enqueue_timeout_ms` for room,
//!   or not at all with [`Writer::try_submit`]; past that they are dropped and counted.
//! - Spend settlements are never dropped: they are summed per counter in memory (one entry
//!   per tenant or key and period, so bounded by the active counters, not by traffic) and
//!   applied with each batch; a failed batch puts its sums back.
//! - A batch that fails for a transient reason (database busy or unreachable) is retried
//!   with backoff (up to 5 s between tries) until it lands. A batch the database refuses
//!   for good is written record by record, and only the records it refuses are dropped
//!   and counted (`rejected`), so one bad record cannot stall the log.
//! - [`Writer::shutdown`] flushes what is queued, within a deadline; what cannot be
//!   written by then is counted as dropped.
//!
//! [`WriterStats`] counts what was queued, written, retried, rejected and dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aos_drivers::{Database, DriverError, TxMode, proxy as db};
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
    /// Call rows accepted into the queue.
    pub queued: AtomicU64,
    /// Call rows stored.
    pub written: AtomicU64,
    /// Call rows lost: the queue stayed full past the timeout, or shutdown's deadline passed.
    pub dropped: AtomicU64,
    /// Records the database refused for good (dropped one by one, the rest written).
    pub rejected: AtomicU64,
    /// Counter updates applied (summed settlements).
    pub settled: AtomicU64,
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
    pub rejected: u64,
    pub settled: u64,
    /// Counters with settlements not yet applied.
    pub spend_pending: u64,
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
    spends: Arc<std::sync::Mutex<SpendSums>>,
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

/// A place in the call-log queue, reserved at admission (see the module docs).
pub struct Slot(mpsc::OwnedPermit<Record>);

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Writer {
    /// A slot for one call row, if the queue has room (else the caller refuses the
    /// request: overload is said, not hidden).
    pub fn admit(&self) -> Option<Slot> {
        self.tx.clone().try_reserve_owned().ok().map(Slot)
    }

    /// Writes a call's records, its row into the slot it was admitted with (never
    /// dropped); spend settlements as [`Writer::submit`] does.
    pub fn submit_in(&self, slot: Slot, records: Vec<Record>) {
        let mut slot = Some(slot);
        let mut rest = Vec::new();
        {
            let mut spends = self.spends.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for record in records {
                match record {
                    Record::Spend(row) => add_spend(&mut spends, row),
                    call => match slot.take() {
                        Some(Slot(permit)) => {
                            permit.send(call);
                            self.stats.queued.fetch_add(1, Ordering::Relaxed);
                        }
                        None => rest.push(call),
                    },
                }
            }
        }
        if !rest.is_empty() {
            self.try_submit(rest);
        }
    }

    /// Queues `records` without waiting: a call row that finds the queue full is dropped
    /// and counted (for refusals under overload, which must not queue behind it).
    pub fn try_submit(&self, records: Vec<Record>) {
        for record in records {
            match record {
                Record::Spend(row) => {
                    add_spend(
                        &mut self.spends.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                        row,
                    );
                }
                call => {
                    if self.tx.try_send(call).is_ok() {
                        self.stats.queued.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("proxy call log: queue full; a refusal's record was dropped");
                    }
                }
            }
        }
    }

    /// Starts the writer task on the current runtime.
    pub fn start(database: Database, config: &CallLogConfig) -> Self {
        let capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(WriterStats::default());
        let spends = Arc::new(std::sync::Mutex::new(SpendSums::new()));
        let stop = Stop::default();
        let handle = tokio::spawn(run(
            database,
            rx,
            Arc::clone(&spends),
            Arc::clone(&stats),
            config.batch_size.max(1),
            stop.clone(),
            Duration::from_millis(config.shutdown_flush_ms),
        ));
        Self {
            tx,
            spends,
            stats,
            enqueue_timeout: Duration::from_millis(config.enqueue_timeout_ms),
            capacity,
            done: Arc::new(Mutex::new(Some(handle))),
            stop,
        }
    }

    /// Queues `records`, waiting for room when the queue is full (see the module docs).
    /// Spend settlements are added to the in-memory sums at once and never wait.
    pub async fn submit(&self, records: Vec<Record>) {
        let mut calls = Vec::with_capacity(records.len());
        {
            let mut spends = self.spends.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for record in records {
                match record {
                    Record::Spend(row) => add_spend(&mut spends, row),
                    call => calls.push(call),
                }
            }
        }
        for record in calls {
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
            rejected: s.rejected.load(Ordering::Relaxed),
            settled: s.settled.load(Ordering::Relaxed),
            spend_pending: u64::try_from(
                self.spends
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len(),
            )
            .unwrap_or(0),
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
type SpendSums = HashMap<SpendKey, ProxySpendRow>;

fn add_spend(sums: &mut SpendSums, row: ProxySpendRow) {
    let key = (row.tenant_id, row.scope.clone(), row.period.clone());
    sums.entry(key)
        .and_modify(|acc| {
            acc.spent_micros = acc.spent_micros.saturating_add(row.spent_micros);
            acc.reserved_micros = acc.reserved_micros.saturating_add(row.reserved_micros);
            acc.updated_at = acc.updated_at.max(row.updated_at);
        })
        .or_insert(row);
}

fn take_spends(spends: &std::sync::Mutex<SpendSums>) -> Vec<ProxySpendRow> {
    let taken = std::mem::take(&mut *spends.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let mut rows: Vec<ProxySpendRow> = taken.into_values().collect();
    // One lock order for every writer and every reservation (replicas write concurrently).
    rows.sort_by(|a, b| (a.tenant_id, &a.scope, &a.period).cmp(&(b.tenant_id, &b.scope, &b.period)));
    rows
}

fn put_back(spends: &std::sync::Mutex<SpendSums>, rows: Vec<ProxySpendRow>) {
    let mut sums = spends.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for row in rows {
        add_spend(&mut sums, row);
    }
}

async fn write_batch(database: &Database, calls: &[ProxyCallRow], spends: &[ProxySpendRow]) -> Result<(), DriverError> {
    let (calls, spends) = (calls.to_vec(), spends.to_vec());
    database
        .transaction(TxMode::Write, move |conn| {
            Box::pin(async move {
                db::insert_calls(conn, &calls).await?;
                for spend in &spends {
                    db::apply_spend(conn, spend).await?;
                }
                Ok::<(), DriverError>(())
            })
        })
        .await
}

/// Writes a batch; `Err` only for a transient failure (the caller retries it all).
/// A batch refused for good is written record by record, and what the database still
/// refuses is dropped and counted.
async fn write_or_isolate(
    database: &Database,
    stats: &WriterStats,
    calls: &[ProxyCallRow],
    spends: &[ProxySpendRow],
) -> Result<(), DriverError> {
    let (mut rejected_calls, mut rejected_spends) = (0u64, 0u64);
    match write_batch(database, calls, spends).await {
        Ok(()) => {}
        Err(e) if e.is_transient() => return Err(e),
        Err(error) => {
            tracing::warn!(%error, "proxy call log: a batch was refused; writing its records one by one");
            for call in calls {
                match write_batch(database, std::slice::from_ref(call), &[]).await {
                    Ok(()) => {}
                    Err(e) if e.is_transient() => return Err(e),
                    Err(_) => rejected_calls += 1,
                }
            }
            for spend in spends {
                match write_batch(database, &[], std::slice::from_ref(spend)).await {
                    Ok(()) => {}
                    Err(e) if e.is_transient() => return Err(e),
                    Err(error) => {
                        tracing::error!(%error, tenant_id = %spend.tenant_id, scope = %spend.scope, "proxy spend settlement refused");
                        rejected_spends += 1;
                    }
                }
            }
            stats
                .rejected
                .fetch_add(rejected_calls + rejected_spends, Ordering::Relaxed);
        }
    }
    let count = |n: usize, rejected: u64| u64::try_from(n).unwrap_or(0).saturating_sub(rejected);
    stats
        .written
        .fetch_add(count(calls.len(), rejected_calls), Ordering::Relaxed);
    stats
        .settled
        .fetch_add(count(spends.len(), rejected_spends), Ordering::Relaxed);
    stats.batches.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// How often pending settlements are applied when no call rows arrive.
const SETTLE_EVERY: Duration = Duration::from_millis(100);

async fn run(
    database: Database,
    mut rx: mpsc::Receiver<Record>,
    spends: Arc<std::sync::Mutex<SpendSums>>,
    stats: Arc<WriterStats>,
    batch_size: usize,
    stop: Stop,
    flush_deadline: Duration,
) {
    let mut batch: Vec<Record> = Vec::with_capacity(batch_size);
    while !stop.is_set() {
        if batch.is_empty() {
            tokio::select! {
                n = rx.recv_many(&mut batch, batch_size) => {
                    if n == 0 {
                        break; // every sender is gone
                    }
                }
                () = tokio::time::sleep(SETTLE_EVERY) => {}
                () = stop.wait() => break,
            }
        }
        let calls: Vec<ProxyCallRow> = batch
            .drain(..)
            .filter_map(|r| match r {
                Record::Call(row) => Some(*row),
                Record::Spend(_) => None,
            })
            .collect();
        let sums = take_spends(&spends);
        if calls.is_empty() && sums.is_empty() {
            continue;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match write_or_isolate(&database, &stats, &calls, &sums).await {
                Ok(()) => {
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
                        // Shutting down: the flush below tries once more.
                        batch.extend(calls.into_iter().map(|c| Record::Call(Box::new(c))));
                        put_back(&spends, sums);
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    // Shutdown: everything still queued, and the pending sums, before the deadline.
    rx.close();
    while let Ok(record) = rx.try_recv() {
        batch.push(record);
    }
    let deadline = tokio::time::Instant::now() + flush_deadline;
    let mut calls: Vec<ProxyCallRow> = batch
        .drain(..)
        .filter_map(|r| match r {
            Record::Call(row) => Some(*row),
            Record::Spend(_) => None,
        })
        .collect();
    let mut sums = take_spends(&spends);
    while !calls.is_empty() || !sums.is_empty() {
        let take = calls.len().min(batch_size);
        let chunk: Vec<ProxyCallRow> = calls.drain(..take).collect();
        let chunk_sums = std::mem::take(&mut sums);
        let written = loop {
            match tokio::time::timeout_at(deadline, write_or_isolate(&database, &stats, &chunk, &chunk_sums)).await {
                Ok(Ok(())) => break true,
                Ok(Err(error)) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(%error, "proxy call log: flush failed; retrying until the deadline");
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break false,
            }
        };
        if !written {
            let lost = u64::try_from(chunk.len() + calls.len()).unwrap_or(0);
            stats.dropped.fetch_add(lost, Ordering::Relaxed);
            tracing::error!(
                dropped = lost,
                settlements = chunk_sums.len(),
                "proxy call log: shutdown flush deadline passed; records and settlements lost"
            );
            return;
        }
    }
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

    fn spend(tenant: DbUuid, micros: i64) -> Record {
        Record::Spend(ProxySpendRow {
            tenant_id: tenant,
            scope: "tenant".into(),
            period: "day:2026-11-21".into(),
            spent_micros: micros,
            reserved_micros: 0,
            updated_at: DbTime::now(),
        })
    }

    async fn tenant(database: &Database, name: &str) -> DbUuid {
        let mut conn = database.conn().await.unwrap();
        crate::tenants::create(&mut conn, name).await.unwrap().id
    }

    async fn stored_calls(database: &Database, tenant: DbUuid) -> usize {
        let mut conn = database.conn().await.unwrap();
        db::list_calls(&mut conn, tenant.into(), &Default::default(), None, 1000)
            .await
            .unwrap()
            .len()
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The database goes away (PostgreSQL refuses connections; SQLite's writer lock is
    /// held): the writer keeps its batch and retries, the queue fills, submitters wait
    /// and then drop, and everything queued lands once the database is back.
    async fn holds_on_through_an_outage(backend: Backend) {
        let test_db = testing::database(backend).await;
        let database = test_db.database().clone();
        let tenant = tenant(&database, "outage").await;
        let config = CallLogConfig {
            queue_capacity: 4,
            batch_size: 2,
            enqueue_timeout_ms: 50,
            shutdown_flush_ms: 3_000,
            ..CallLogConfig::default()
        };
        let writer = Writer::start(database.clone(), &config);
        let lock = match backend {
            Backend::Postgres => {
                test_db.set_reachable(false).await;
                None
            }
            Backend::Sqlite => {
                let (locked_tx, locked) = tokio::sync::oneshot::channel();
                let held = database.clone();
                let task = tokio::spawn(async move {
                    held.transaction(TxMode::Write, move |_| {
                        Box::pin(async move {
                            let _ = locked_tx.send(());
                            tokio::time::sleep(Duration::from_millis(1500)).await;
                            Ok::<(), DriverError>(())
                        })
                    })
                    .await
                    .unwrap();
                });
                locked.await.unwrap();
                Some(task)
            }
        };
        writer.submit(vec![call(tenant), spend(tenant, 7)]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = tokio::time::Instant::now();
        writer.submit((0..10).map(|_| call(tenant)).collect()).await;
        let stats = writer.stats();
        assert!(stats.queue_depth <= 4, "{stats:?}");
        assert!(stats.dropped >= 4, "backpressure, then drops: {stats:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "submitters waited for room"
        );
        assert_eq!(stats.written, 0);
        match lock {
            Some(task) => task.await.unwrap(),
            None => test_db.set_reachable(true).await,
        }
        let kept = writer.stats().queued;
        eventually("the queue drains", || writer.stats().written == kept).await;
        eventually("the settlement lands", || writer.stats().settled == 1).await;
        let stats = writer.stats();
        assert!(!stats.failing && stats.rejected == 0, "{stats:?}");
        if backend == Backend::Postgres {
            assert!(stats.retries >= 1, "the refused batch was retried: {stats:?}");
        }
        assert_eq!(stored_calls(&database, tenant).await as u64, kept);
        writer.shutdown().await;
    }

    /// A record the database refuses for good (here: a call of a tenant that does not
    /// exist) is dropped alone; the rest of its batch is written and the writer goes on.
    async fn a_refused_record_does_not_stall_the_log(backend: Backend) {
        let test_db = testing::database(backend).await;
        let database = test_db.database().clone();
        let tenant = tenant(&database, "poison").await;
        let writer = Writer::start(database.clone(), &CallLogConfig::default());
        writer
            .submit(vec![
                call(tenant),
                call(DbUuid::new_v7()),
                call(tenant),
                spend(tenant, 3),
            ])
            .await;
        eventually("the good records land", || {
            let s = writer.stats();
            s.written == 2 && s.rejected == 1 && s.settled == 1
        })
        .await;
        writer.submit(vec![call(tenant)]).await;
        eventually("the writer goes on", || writer.stats().written == 3).await;
        assert_eq!(stored_calls(&database, tenant).await, 3);
        assert!(!writer.stats().failing);
        writer.shutdown().await;
    }

    async fn shutdown_flushes_the_queue(backend: Backend) {
        let test_db = testing::database(backend).await;
        let database = test_db.database().clone();
        let tenant = tenant(&database, "flush").await;
        let writer = Writer::start(database.clone(), &CallLogConfig::default());
        let mut records: Vec<Record> = (0..50).map(|_| call(tenant)).collect();
        records.push(spend(tenant, 5));
        writer.submit(records).await;
        writer.shutdown().await;
        let stats = writer.stats();
        assert_eq!((stats.written, stats.dropped, stats.settled), (50, 0, 1), "{stats:?}");
        assert_eq!(stored_calls(&database, tenant).await, 50);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_writer_holds_on_through_an_outage() {
        holds_on_through_an_outage(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writer_holds_on_through_an_outage() {
        holds_on_through_an_outage(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_refused_record_does_not_stall_the_log() {
        a_refused_record_does_not_stall_the_log(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_refused_record_does_not_stall_the_log() {
        a_refused_record_does_not_stall_the_log(Backend::Sqlite).await;
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
