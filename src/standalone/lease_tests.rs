//! The singleton guarantee of the standalone timers, in paused time over one in-memory store:
//! several instances, ticks slower than the lease, a lease taken away mid-tick.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;
use xdrsync_sim::fakes::MemoryStore;

use super::lease::{self, renewal_plan};
use super::timers::{lease_ttl, run, Timer};
use crate::domain::schedule::Schedule;
use crate::error::PortError;
use crate::ports::{Clock, ETag, Entity, StateStore, Table};
use crate::records::Lease;
use crate::state::{load, save, RowKey};
use crate::usecase::Ports;

/// Wall time that follows tokio's (paused) clock, so lease expiries and schedules move with it.
struct TokioClock {
    wall: OffsetDateTime,
    base: Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.wall + (Instant::now() - self.base)
    }
}

const JOB: &str = "TestJob";
/// Every 2 s: the lease lasts `lease_ttl(2 s)` = 15 s, far less than a tick.
const EVERY_2_S: &str = "*/2 * * * * *";
const TICK: Duration = Duration::from_secs(40);

fn ports(store: &Arc<MemoryStore>, clock: &Arc<TokioClock>) -> Arc<Ports> {
    let mut p = crate::usecase::test_ports();
    p.store = store.clone();
    p.clock = clock.clone();
    Arc::new(p)
}

/// What the ticks did: how many ran at once (at most), and the cursor values each "sent".
#[derive(Default)]
struct Journal {
    running: usize,
    max_running: usize,
    started: usize,
    cursor: u64,
    sent: Vec<u64>,
}

/// Counts a tick as running until it ends or is dropped.
struct Running(Arc<Mutex<Journal>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.lock().unwrap().running -= 1;
    }
}

/// A job in the shape of the poller: read the cursor, work for [`TICK`], send what was read,
/// advance the cursor. Two overlapping ticks send the same value twice.
fn slow_tick(
    journal: Arc<Mutex<Journal>>,
) -> impl Fn(Arc<Ports>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    move |_s| {
        let journal = journal.clone();
        Box::pin(async move {
            let cursor = {
                let mut j = journal.lock().unwrap();
                j.running += 1;
                j.started += 1;
                j.max_running = j.max_running.max(j.running);
                j.cursor
            };
            let _running = Running(journal.clone());
            tokio::time::sleep(TICK).await;
            let mut j = journal.lock().unwrap();
            j.sent.push(cursor);
            j.cursor = cursor + 1;
        })
    }
}

fn timer() -> Timer {
    Timer { lease: JOB, schedule: Schedule::parse(EVERY_2_S).unwrap(), label: "test job" }
}

async fn lease_row(s: &Ports) -> Option<Lease> {
    load::<Lease>(s.store.as_ref(), Table::Leases, &RowKey::new("leases", JOB).unwrap()).await.unwrap().map(|v| v.value)
}

#[tokio::test(start_paused = true)]
async fn three_instances_tick_one_at_a_time_with_ticks_slower_than_the_lease() {
    assert!(TICK > lease_ttl(Duration::from_secs(2)), "the test needs ticks longer than the lease");
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(TokioClock { wall: OffsetDateTime::now_utc(), base: Instant::now() });
    let journal = Arc::new(Mutex::new(Journal::default()));
    let (stop, stopped) = watch::channel(false);
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(run(
                ports(&store, &clock),
                timer(),
                format!("instance-{i}"),
                stopped.clone(),
                slow_tick(journal.clone()),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(600)).await;
    stop.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    {
        let j = journal.lock().unwrap();
        assert_eq!(j.max_running, 1, "two instances ticked at once");
        let mut sent = j.sent.clone();
        sent.sort_unstable();
        sent.dedup();
        assert_eq!(sent.len(), j.sent.len(), "a value was sent twice: {:?}", j.sent);
        assert!(j.sent.len() >= 10, "ticks kept running back to back: {:?}", j.sent);
    }
    // The stopping holder gave the lease up: it is expired now, not in 15 s.
    let s = ports(&store, &clock);
    let row = lease_row(&s).await.expect("a lease row");
    assert!(row.expires <= s.clock.now(), "the lease was not released on stop: {row:?}");
}

#[tokio::test(start_paused = true)]
async fn a_tick_whose_lease_is_taken_stops_before_it_writes() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(TokioClock { wall: OffsetDateTime::now_utc(), base: Instant::now() });
    let s = ports(&store, &clock);
    let journal = Arc::new(Mutex::new(Journal::default()));
    let ttl = lease_ttl(Duration::from_secs(2));
    let taken = Instant::now();
    assert!(lease::try_acquire(&s, JOB, "me", ttl).await.unwrap());
    let tick = slow_tick(journal.clone())(s.clone());
    let held = tokio::spawn({
        let s = s.clone();
        async move { lease::hold_while(&s, JOB, "me", ttl, taken, tick).await }
    });
    // Another instance takes the row over (as one would after an expiry the holder missed).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let key = RowKey::new("leases", JOB).unwrap();
    let intruder = Lease { owner: "other".into(), expires: s.clock.now() + time::Duration::minutes(10) };
    s.store.delete(Table::Leases, &key.pk, &key.rk).await.unwrap();
    save(s.store.as_ref(), Table::Leases, &key, &intruder, &[], None).await.unwrap();
    let outcome = held.await.unwrap();
    assert_eq!(outcome, Err(lease::Lost::Taken));
    let j = journal.lock().unwrap();
    assert_eq!((j.started, j.running), (1, 0), "the tick ran and was dropped");
    assert!(j.sent.is_empty(), "the dropped tick still wrote: {:?}", j.sent);
    assert!(Instant::now() - taken < ttl / 2, "noticed at the first renewal, not at expiry");
}

/// A store that fails every call while `down` is set (storage unreachable).
#[derive(Default)]
struct Outage {
    inner: MemoryStore,
    down: std::sync::atomic::AtomicBool,
}

impl Outage {
    fn check(&self) -> Result<(), PortError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::unavailable("table-storage", "connection refused"));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl StateStore for Outage {
    async fn ensure_tables(&self) -> Result<(), PortError> {
        self.check()?;
        self.inner.ensure_tables().await
    }
    async fn get(&self, table: Table, pk: &str, rk: &str) -> Result<Option<(Entity, ETag)>, PortError> {
        self.check()?;
        self.inner.get(table, pk, rk).await
    }
    async fn insert(&self, table: Table, entity: &Entity) -> Result<ETag, PortError> {
        self.check()?;
        self.inner.insert(table, entity).await
    }
    async fn replace(&self, table: Table, entity: &Entity, etag: &ETag) -> Result<ETag, PortError> {
        self.check()?;
        self.inner.replace(table, entity, etag).await
    }
    async fn upsert(&self, table: Table, entity: &Entity) -> Result<(), PortError> {
        self.check()?;
        self.inner.upsert(table, entity).await
    }
    async fn upsert_many(&self, table: Table, entities: &[Entity]) -> Result<(), PortError> {
        self.check()?;
        self.inner.upsert_many(table, entities).await
    }
    async fn delete(&self, table: Table, pk: &str, rk: &str) -> Result<(), PortError> {
        self.check()?;
        self.inner.delete(table, pk, rk).await
    }
    async fn query_partition(&self, table: Table, pk: &str) -> Result<Vec<Entity>, PortError> {
        self.check()?;
        self.inner.query_partition(table, pk).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_cannot_reach_storage_stops_its_tick_before_the_lease_expires() {
    let store = Arc::new(Outage::default());
    let clock = Arc::new(TokioClock { wall: OffsetDateTime::now_utc(), base: Instant::now() });
    let mut p = crate::usecase::test_ports();
    p.store = store.clone();
    p.clock = clock;
    let s = Arc::new(p);
    let journal = Arc::new(Mutex::new(Journal::default()));
    let ttl = lease_ttl(Duration::from_secs(2));
    let taken = Instant::now();
    assert!(lease::try_acquire(&s, JOB, "me", ttl).await.unwrap());
    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let tick = slow_tick(journal.clone())(s.clone());
    let outcome = lease::hold_while(&s, JOB, "me", ttl, taken, tick).await;
    assert_eq!(outcome, Err(lease::Lost::NotRenewed));
    let stopped_after = Instant::now() - taken;
    assert!(stopped_after < ttl, "ran on past the lease's expiry: {stopped_after:?}");
    assert!(stopped_after > ttl / 3, "gave up before trying to renew: {stopped_after:?}");
    let j = journal.lock().unwrap();
    assert!(j.sent.is_empty() && j.running == 0, "the tick went on: {:?}", j.sent);
}

#[test]
fn a_renewal_comes_well_before_the_holder_gives_up_and_that_before_expiry() {
    let sent = Instant::now();
    for secs in [15, 30, 60, 900] {
        let ttl = Duration::from_secs(secs);
        let (due, deadline) = renewal_plan(sent, ttl);
        assert!(sent < due && due < deadline && deadline < sent + ttl, "{secs} s");
        // A failed renewal leaves half the lease to try again before the holder gives up.
        assert!(deadline - due >= ttl / 2, "{secs} s");
    }
}
