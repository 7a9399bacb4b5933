//! The fleet tells one truth: three replicas of the release binary on one Redis and one database,
//! PATCHes and DELETEs through one (the writer, whose own path to Redis runs through a proxy), reads
//! through the two others, while Redis and the writer fail in every way the service knows of: Redis
//! frozen; refusing writes (out of memory, no replicas, read-only, writes paused); the writer's path
//! to Redis stalled or cut while the readers still reach it; Redis restarted empty and with its
//! data; the writer's path to Postgres cut (every connection dropped on the writer's side, Postgres's
//! side left open) while writes wait on locked rows; the writer shut down, with a grace of 0 s and of 1 s, while writes wait on locked rows:
//! they are cancelled before it exits, and none may commit after its exit (its clients, seeing
//! their connections close, go on through the replacement).
//!
//! No read may return a user older than a write acknowledged before the read was sent, allowing
//! 5 ms for measurement, with in-process copies off and on. "Older" is Postgres's own order: a
//! trigger records each row's updates and deletes as they are made, and a row's next update is made
//! only after the one before has committed, so that record is the order of commits, whatever the
//! versions' numbers say (they differ if a write whose outcome is unknown commits after a later one
//! was acknowledged, as it still may when Postgres is out of its replica's reach: Postgres lets a
//! statement that finds a just-released row free update it before one still waking from its wait
//! for that row). A write that the service did not acknowledge but
//! the database committed counts as acknowledged from the moment the scenario sees it in the
//! database, and an unanswered DELETE from the moment a later write is answered 404.
//! Every read must succeed; every write must be acknowledged or get a 503 that says nothing was
//! written or that the outcome is unknown; and a write's outcome must be final once it is answered:
//! each user's writes are sent one at a time, the next only after the one before was answered, so
//! no write may commit after a later one to the same user (a 503 "outcome unknown" may mean it
//! committed, but not that it may still commit, overwriting what came after it); in the Postgres
//! cut, no write to the locked rows answered before their release may commit after it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Harness;
use crate::report::Report;
use crate::scenarios::{RandomUsers, version_in};
use crate::support::http::{self, Failure};
use crate::support::proxy::Proxy;
use crate::support::redis_server::OwnRedis;
use crate::support::service::Service;
use crate::support::signal;

const USERS: usize = 40;
const WRITERS: usize = 4;
const READERS: usize = 8;
/// How long each fault lasts, and how long the fleet runs well between two.
const FAULT_FOR: Duration = Duration::from_millis(2_500);
const SETTLE_FOR: Duration = Duration::from_millis(2_000);
/// The version of a deleted user (a read answered 404, a DELETE in the commit record).
const DELETED: u64 = u64::MAX;

/// The faults, in the order they are injected.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Frozen,
    OutOfMemory,
    NoReplicas,
    ReadOnly,
    WritesPaused,
    WriterPathStalled,
    WriterPathCut,
    RestartedEmpty,
    RestartedWithData,
    WriterDatabasePathCut,
    WriterShutDown { grace_seconds: u64 },
}

const FAULTS: [Fault; 12] = [
    Fault::Frozen,
    Fault::OutOfMemory,
    Fault::NoReplicas,
    Fault::ReadOnly,
    Fault::WritesPaused,
    Fault::WriterPathStalled,
    Fault::WriterPathCut,
    Fault::RestartedEmpty,
    Fault::RestartedWithData,
    Fault::WriterDatabasePathCut,
    Fault::WriterShutDown { grace_seconds: 0 },
    Fault::WriterShutDown { grace_seconds: 1 },
];

/// What every writer and reader shares.
struct Shared {
    ids: Vec<String>,
    /// Per user, its acknowledged versions with when each was known, oldest first.
    acks: Vec<Mutex<Vec<(u64, Instant)>>>,
    /// Per user, the next version to write.
    next_version: Vec<AtomicU64>,
    /// Per user, the latest version whose PATCH has been answered, whatever the answer.
    answered_through: Vec<AtomicU64>,
    /// The writer replica's port (it changes when the writer is replaced).
    writer_port: AtomicU16,
    reader_ports: [u16; 2],
    /// How late a read may still return an older user than an acknowledged write.
    bound: Duration,
    stop: AtomicBool,
    tally: Mutex<Tally>,
    /// The commits already counted late (by an earlier phase).
    late_commits_counted: Mutex<HashSet<i64>>,
    /// Per user, the latest version sent before its DELETE was.
    sent_before_delete: Vec<AtomicU64>,
}

/// A read that succeeded: whose user, the version it returned, when it was sent.
#[derive(Clone, Copy)]
struct Read {
    user: usize,
    version: u64,
    sent: Instant,
}

/// What happened during one phase.
#[derive(Default)]
struct Tally {
    acknowledged: u64,
    refused: u64,
    unknown: u64,
    unanswered_writes: u64,
    untruthful_writes: u64,
    /// The first few of those answers (method, status, detail), so a failure says what it saw.
    untruthful_answers: Vec<String>,
    /// The reads that succeeded, judged when the phase is recorded.
    reads: Vec<Read>,
    failed_reads: u64,
    /// In a shutdown phase: writes sent to the old writer that Postgres committed after its exit.
    committed_after_exit: Option<u64>,
    /// In the Postgres cut phase: writes to the locked rows that committed after their answer.
    committed_after_answer: Option<u64>,
    /// In the Postgres cut phase: the writes waiting on the locked rows when the cut was made.
    waiting_at_cut: Option<i64>,
}

/// The reads of a phase judged against the order in which Postgres committed the writes.
#[derive(Default)]
struct Judgement {
    stale_within_bound: u64,
    stale_beyond_bound: u64,
    latest_stale: Duration,
    /// The first few reads beyond the bound, described.
    examples: Vec<String>,
    /// Writes committed after a later write to the same user (sent only once they were answered).
    late_commits: u64,
    /// The first few of those, described.
    late_examples: Vec<String>,
}

pub async fn fleet_without_copies(harness: Arc<Harness>) -> Report {
    run(harness, "fleet", &[], Duration::from_millis(5)).await
}

pub async fn fleet_with_copies(harness: Arc<Harness>) -> Report {
    run(
        harness,
        "fleet_copies",
        &[("CACHE_LOCAL_ENTRIES", "1000")],
        Duration::from_millis(5),
    )
    .await
}

async fn run(harness: Arc<Harness>, scenario: &str, copies: &[(&str, &str)], bound: Duration) -> Report {
    let title = if copies.is_empty() {
        "A fleet of three: no replica contradicts an acknowledged write, under every Redis fault and shutdown"
    } else {
        "The same with in-process copies on (CACHE_LOCAL_ENTRIES)"
    };
    let mut report = Report::new(title);
    let mut redis = OwnRedis::start_with(
        crate::support::free_port(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let writer_path = Proxy::start(redis.port).await;
    let writer_database_path = Proxy::start(harness.cluster.port).await;
    let writer_env = |grace: u64| writer_settings(grace, writer_path.port, writer_database_path.port, copies);
    let started = harness
        .start_service(
            scenario,
            Some(&redis),
            &as_refs(&writer_env(shutdown_grace_after(None))),
        )
        .await;
    let mut writer = started.service;
    let readers = [
        harness.start_replica(scenario, "b", Some(&redis), copies).await,
        harness.start_replica(scenario, "c", Some(&redis), copies).await,
    ];
    let database = harness.cluster.client(&started.database).await;
    database
        .batch_execute(RECORD_COMMITS)
        .await
        .expect("the commit record is set up");
    let ids = super::create_users(writer.port, USERS, "v0").await;
    let shared = Arc::new(Shared {
        acks: ids.iter().map(|_| Mutex::new(Vec::new())).collect(),
        next_version: counters(ids.len(), 1),
        answered_through: counters(ids.len(), 0),
        sent_before_delete: counters(ids.len(), 0),
        ids,
        writer_port: AtomicU16::new(writer.port),
        reader_ports: [readers[0].port, readers[1].port],
        bound,
        stop: AtomicBool::new(false),
        tally: Mutex::new(Tally::default()),
        late_commits_counted: Mutex::new(HashSet::new()),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        tasks.spawn(write_loop(shared.clone(), writer));
    }
    for reader in 0..READERS {
        tasks.spawn(read_loop(shared.clone(), reader as u64));
    }

    tokio::time::sleep(SETTLE_FOR).await;
    record(&mut report, "before any fault", take_tally(&shared), &shared, &database).await;
    for (index, fault) in FAULTS.into_iter().enumerate() {
        match fault {
            Fault::WriterShutDown { .. } => {
                let settings = writer_env(shutdown_grace_after(Some(index)));
                writer = shut_down_the_writer(&harness, scenario, &redis, &shared, &database, writer, &settings).await;
            }
            Fault::WriterDatabasePathCut => {
                cut_the_writers_database_path(&harness, scenario, &shared, &database, &writer_database_path).await
            }
            fault => {
                inject(fault, &mut redis, &writer_path);
                tokio::time::sleep(FAULT_FOR).await;
                recover(fault, &mut redis, &writer_path);
            }
        }
        tokio::time::sleep(SETTLE_FOR).await;
        record(&mut report, &describe(fault), take_tally(&shared), &shared, &database).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    tasks.join_all().await;
    let mut local_hits = Vec::new();
    for reader in &readers {
        local_hits.push(
            http::metric(reader.port, "gravity_cache_local_hits_total")
                .await
                .unwrap_or(0.0),
        );
    }
    report.figure(
        "reads answered from an in-process copy, replica B / C",
        format!("{} / {}", local_hits[0], local_hits[1]),
    );
    if !copies.is_empty() {
        report.check(
            local_hits.iter().all(|&hits| hits > 0.0),
            "both reading replicas served reads from their in-process copies",
        );
    }
    drop(writer);
    drop(readers);
    report
}

/// The writer's settings: its Redis and its Postgres are behind proxies, its grace the one its
/// shutdown fault tests.
fn writer_settings(
    grace_seconds: u64,
    redis_proxy_port: u16,
    database_proxy_port: u16,
    copies: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut settings = vec![
        ("SHUTDOWN_GRACE_SECONDS".to_owned(), grace_seconds.to_string()),
        ("REDIS_PORT".to_owned(), redis_proxy_port.to_string()),
        ("DB_PORT".to_owned(), database_proxy_port.to_string()),
    ];
    settings.extend(
        copies
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    settings
}

/// The grace of the next shutdown fault after the fault at `index` (from the start: `None`), so
/// that each writer is started with the grace it will be shut down with.
fn shutdown_grace_after(index: Option<usize>) -> u64 {
    let from = index.map_or(0, |index| index + 1);
    FAULTS[from..]
        .iter()
        .find_map(|fault| match fault {
            Fault::WriterShutDown { grace_seconds } => Some(*grace_seconds),
            _ => None,
        })
        .unwrap_or(5)
}

fn as_refs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

fn inject(fault: Fault, redis: &mut OwnRedis, writer_path: &Proxy) {
    match fault {
        Fault::Frozen => signal(redis.pid(), "STOP"),
        Fault::OutOfMemory => config_set(redis, "maxmemory", "1"),
        Fault::NoReplicas => config_set(redis, "min-replicas-to-write", "1"),
        Fault::ReadOnly => {
            // A replica of a master that does not exist: it keeps its data and refuses writes.
            let nobody = crate::support::free_port().to_string();
            let _: () = redis::cmd("REPLICAOF")
                .arg("127.0.0.1")
                .arg(nobody)
                .query(&mut redis.connection())
                .expect("REPLICAOF");
        }
        Fault::WritesPaused => {
            let milliseconds = FAULT_FOR.as_millis().to_string();
            let _: () = redis::cmd("CLIENT")
                .arg(&["PAUSE", milliseconds.as_str(), "WRITE"][..])
                .query(&mut redis.connection())
                .expect("CLIENT PAUSE");
        }
        Fault::WriterPathStalled => writer_path.stall(),
        Fault::WriterPathCut => writer_path.cut(),
        Fault::RestartedEmpty | Fault::RestartedWithData => redis.kill(),
        Fault::WriterDatabasePathCut | Fault::WriterShutDown { .. } => unreachable!("handled apart"),
    }
}

fn recover(fault: Fault, redis: &mut OwnRedis, writer_path: &Proxy) {
    match fault {
        Fault::Frozen => signal(redis.pid(), "CONT"),
        Fault::OutOfMemory => config_set(redis, "maxmemory", "0"),
        Fault::NoReplicas => config_set(redis, "min-replicas-to-write", "0"),
        Fault::ReadOnly => {
            let _: () = redis::cmd("REPLICAOF")
                .arg(&["NO", "ONE"][..])
                .query(&mut redis.connection())
                .expect("REPLICAOF NO ONE");
        }
        Fault::WritesPaused => {}
        Fault::WriterPathStalled => writer_path.resume(),
        Fault::WriterPathCut => writer_path.restore(),
        Fault::RestartedEmpty => redis.restart_empty(),
        Fault::RestartedWithData => redis.restart(),
        Fault::WriterDatabasePathCut | Fault::WriterShutDown { .. } => unreachable!("handled apart"),
    }
}

fn describe(fault: Fault) -> String {
    match fault {
        Fault::Frozen => "Redis frozen (SIGSTOP)".into(),
        Fault::OutOfMemory => "Redis out of memory (maxmemory 1, noeviction: OOM)".into(),
        Fault::NoReplicas => "Redis refusing writes (min-replicas-to-write: NOREPLICAS)".into(),
        Fault::ReadOnly => "Redis read-only (a replica: READONLY)".into(),
        Fault::WritesPaused => "Redis pausing writes (CLIENT PAUSE WRITE)".into(),
        Fault::WriterPathStalled => "the writer's path to Redis stalled, the readers' not".into(),
        Fault::WriterPathCut => "the writer's path to Redis cut, the readers' not".into(),
        Fault::RestartedEmpty => "Redis killed, restarted empty".into(),
        Fault::RestartedWithData => "Redis killed, restarted with its data (AOF)".into(),
        Fault::WriterDatabasePathCut => {
            "the writer's path to Postgres cut (Postgres's side left open) with writes waiting on locked rows".into()
        }
        Fault::WriterShutDown { grace_seconds } => {
            format!("the writer shut down (SIGTERM, grace {grace_seconds} s) with writes waiting on locked rows")
        }
    }
}

fn config_set(redis: &OwnRedis, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", name, value][..])
        .query(&mut redis.connection())
        .expect("CONFIG SET");
}

/// Locks two users' rows, lets writes to them queue on the writer, drops the writer's side of every
/// connection between it and Postgres (refusing new ones for half a second) while Postgres's side
/// stays open and hears nothing, as behind a NAT or firewall that forgot the connections, so only
/// the writer can end the sessions it lost; then releases the rows once the writer has been
/// connected again for a while. The writes cut while waiting are answered "outcome
/// unknown", and the writer's clients send their next writes to those users, which wait in turn.
/// No write answered before the rows are released may commit after (counted in the phase's
/// tally): its answer came once its session had ended, and its commit could overwrite the next.
async fn cut_the_writers_database_path(
    harness: &Harness,
    scenario: &str,
    shared: &Shared,
    database: &tokio_postgres::Client,
    path: &Proxy,
) {
    let locker = lock_two_rows(harness, scenario, shared).await;
    let waiting = writes_waiting_on_locks(database, 2).await;
    path.cut_leaving_servers_connected();
    tokio::time::sleep(Duration::from_millis(500)).await;
    path.restore();
    tokio::time::sleep(FAULT_FOR).await;
    // Writes to the locked rows answered by now did not commit before: the rows were locked.
    let answered_before = [0, 1].map(|user| shared.answered_through[user].load(Ordering::Relaxed));
    let last_seq_before = last_commit(database).await;
    locker.batch_execute("COMMIT").await.expect("the rows are released");
    tokio::time::sleep(Duration::from_millis(500)).await;
    path.close_server_sides();
    let late = commits_since(database, shared, last_seq_before)
        .await
        .into_iter()
        .filter(|&(user, version)| version <= answered_before[user])
        .count();
    let mut tally = shared.tally.lock().unwrap();
    tally.committed_after_answer = Some(late as u64);
    tally.waiting_at_cut = Some(waiting);
}

/// The sessions of the scenario's database waiting on a lock, once there are `expected` of them
/// (or after 3 s, however many there are then).
async fn writes_waiting_on_locks(database: &tokio_postgres::Client, expected: i64) -> i64 {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let waiting: i64 = database
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("pg_stat_activity is read")
            .get(0);
        if waiting >= expected || Instant::now() >= until {
            return waiting;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sequence number of the latest commit recorded.
async fn last_commit(database: &tokio_postgres::Client) -> i64 {
    database
        .query_one("SELECT coalesce(max(seq), 0) FROM chaos_commits", &[])
        .await
        .expect("the commit record is read")
        .get(0)
}

/// The updates of users 0 and 1 (the locked rows) committed after commit `seq`: (user, version).
async fn commits_since(database: &tokio_postgres::Client, shared: &Shared, seq: i64) -> Vec<(usize, u64)> {
    database
        .query(
            "SELECT id::text, name FROM chaos_commits WHERE seq > $1 AND name IS NOT NULL",
            &[&seq],
        )
        .await
        .expect("the commit record is read")
        .iter()
        .filter_map(|row| {
            let user = [0, 1]
                .into_iter()
                .find(|&user| shared.ids[user] == row.get::<_, String>(0))?;
            Some((user, version_of(&row.get::<_, String>(1))))
        })
        .collect()
}

/// A session of its own holding the row locks of users 0 and 1 (never deleted) until it commits.
async fn lock_two_rows(harness: &Harness, scenario: &str, shared: &Shared) -> tokio_postgres::Client {
    let locker = harness.cluster.client(&format!("chaos_{scenario}")).await;
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM users WHERE id IN ('{}', '{}') FOR UPDATE",
            shared.ids[0], shared.ids[1]
        ))
        .await
        .expect("the rows are locked");
    locker
}

/// Locks two users' rows, lets writes to them queue on the writer, stops the writer (its grace
/// runs out with the writes still waiting), starts a new writer, then releases the rows. The old
/// writer must have ended its statements before exiting: none of its writes may commit after it
/// (counted in the phase's tally). Whatever the rows hold then counts as acknowledged from the
/// moment it is seen in the database.
async fn shut_down_the_writer(
    harness: &Harness,
    scenario: &str,
    redis: &OwnRedis,
    shared: &Shared,
    database: &tokio_postgres::Client,
    mut writer: Service,
    next_settings: &[(String, String)],
) -> Service {
    let locker = lock_two_rows(harness, scenario, shared).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(writer.pid(), "TERM");
    let exited = writer.wait_exit(Duration::from_secs(10)).await;
    assert!(exited.is_some_and(|status| status.success()), "the writer exits 0");
    // Every version the old writer was sent is below these; its commits are recorded by now.
    let versions_sent_before = [0, 1].map(|user| shared.next_version[user].load(Ordering::Relaxed));
    let last_seq_before = last_commit(database).await;
    let replacement = harness
        .start_replica(scenario, "writer", Some(redis), &as_refs(next_settings))
        .await;
    shared.writer_port.store(replacement.port, Ordering::Relaxed);
    locker.batch_execute("COMMIT").await.expect("the rows are released");
    // The statements sent before the exit commit now; from when they are seen, they count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for user in [0, 1] {
        let row = database
            .query_opt("SELECT name FROM users WHERE id = $1::text::uuid", &[&shared.ids[user]])
            .await
            .expect("the database answers");
        let version = match row {
            None => DELETED,
            Some(row) => version_of(&row.get::<_, String>(0)),
        };
        acknowledge(shared, user, version);
    }
    let committed_after_exit = commits_since(database, shared, last_seq_before)
        .await
        .into_iter()
        .filter(|&(user, version)| version < versions_sent_before[user])
        .count() as u64;
    shared.tally.lock().unwrap().committed_after_exit = Some(committed_after_exit);
    replacement
}

/// One counter per user, each starting at `start`.
fn counters(users: usize, start: u64) -> Vec<AtomicU64> {
    (0..users).map(|_| AtomicU64::new(start)).collect()
}

fn version_of(name: &str) -> u64 {
    name.strip_prefix('v')
        .and_then(|number| number.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn acknowledge(shared: &Shared, user: usize, version: u64) {
    let mut acks = shared.acks[user].lock().unwrap();
    acks.push((version, Instant::now()));
}

fn take_tally(shared: &Shared) -> Tally {
    std::mem::take(&mut *shared.tally.lock().unwrap())
}

/// Writes its share of the users over and over through the writer; one in twenty writes of a user
/// after the first round is a DELETE, after which the user is left alone.
async fn write_loop(shared: Arc<Shared>, writer: usize) {
    let mine: Vec<usize> = (writer..shared.ids.len()).step_by(WRITERS).collect();
    let mut deleted = vec![false; shared.ids.len()];
    // A DELETE that went unanswered (the writer exited as it ran) may have committed.
    let mut maybe_deleted = vec![false; shared.ids.len()];
    let mut round = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        round += 1;
        for &user in &mine {
            if deleted[user] || shared.stop.load(Ordering::Relaxed) {
                continue;
            }
            let port = shared.writer_port.load(Ordering::Relaxed);
            let path = format!("/v1/users/{}", shared.ids[user]);
            // Users 0 and 1 are the rows the Postgres cut and the shutdowns lock: never deleted.
            let delete = user > 1 && round > 3 && (round + user as u64).is_multiple_of(20);
            let (version, answer) = if delete {
                let sent_before = shared.next_version[user].load(Ordering::Relaxed) - 1;
                shared.sent_before_delete[user].store(sent_before, Ordering::Relaxed);
                (DELETED, http::request(port, "DELETE", &path, &[], None).await)
            } else {
                let version = shared.next_version[user].fetch_add(1, Ordering::Relaxed);
                let body = format!(r#"{{"name":"v{version}"}}"#);
                (version, http::request(port, "PATCH", &path, &[], Some(&body)).await)
            };
            if !delete {
                shared.answered_through[user].fetch_max(version, Ordering::Relaxed);
            }
            let detail = answer.as_ref().map_or(String::new(), http::Response::detail);
            let status = answer.as_ref().map_or(0, |response| response.status);
            let acknowledged = matches!(status, 200 | 204);
            // A 404 after a DELETE whose outcome is unknown is that DELETE's acknowledgement.
            let found_deleted = maybe_deleted[user] && status == 404;
            // Sent and then not answered (the writer exited as it ran), or a 503 that says so: it
            // may commit, now or later. A refused connection reached no service: nothing written.
            let outcome_unknown = match &answer {
                Err(Failure::Refused(_)) => false,
                Err(_) => true,
                Ok(_) => status == 503 && detail.contains("unknown"),
            };
            if acknowledged || found_deleted {
                acknowledge(&shared, user, if found_deleted { DELETED } else { version });
                deleted[user] = delete || found_deleted;
                maybe_deleted[user] = false;
            } else if outcome_unknown && delete {
                maybe_deleted[user] = true;
            }
            let mut tally = shared.tally.lock().unwrap();
            match answer {
                _ if acknowledged || found_deleted => tally.acknowledged += 1,
                // The writer went away (the shutdown faults).
                Err(_) => tally.unanswered_writes += 1,
                Ok(_) if status == 503 && detail.contains("nothing was written") => tally.refused += 1,
                Ok(_) if outcome_unknown => tally.unknown += 1,
                Ok(_) => {
                    tally.untruthful_writes += 1;
                    if tally.untruthful_answers.len() < 3 {
                        let method = if delete { "DELETE" } else { "PATCH" };
                        tally.untruthful_answers.push(format!("{method} {status}: {detail}"));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn read_loop(shared: Arc<Shared>, seed: u64) {
    let mut users = RandomUsers::new(seed, shared.ids.len());
    let port = shared.reader_ports[seed as usize % 2];
    while !shared.stop.load(Ordering::Relaxed) {
        let user = users.next();
        let sent = Instant::now();
        let response = http::get(port, &format!("/v1/users/{}", shared.ids[user])).await.ok();
        let version = match &response {
            Some(response) if response.status == 200 => Some(version_in(response)),
            Some(response) if response.status == 404 => Some(DELETED),
            _ => None,
        };
        let mut tally = shared.tally.lock().unwrap();
        match version {
            Some(version) => tally.reads.push(Read { user, version, sent }),
            None => tally.failed_reads += 1,
        }
    }
}

/// Records, in a table of the scenario's own, every update and delete of a user as it is made, in
/// order: a row's next update (or delete) is made only once the one before has committed, so per
/// user this is the order of commits.
const RECORD_COMMITS: &str = "
CREATE TABLE chaos_commits (seq bigserial PRIMARY KEY, id uuid NOT NULL, name text);
CREATE FUNCTION chaos_record_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO chaos_commits (id, name) VALUES (OLD.id, NULL);
  ELSE
    INSERT INTO chaos_commits (id, name) VALUES (NEW.id, NEW.name);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER chaos_record_commit AFTER UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION chaos_record_commit();";

/// Judges the reads: stale if Postgres committed a write acknowledged before the read was sent
/// after the one whose version the read returned.
async fn judge(shared: &Shared, database: &tokio_postgres::Client, reads: &[Read]) -> Judgement {
    // Per user, each version's place in its commits; the created user ("v0") comes before all.
    let mut place: Vec<HashMap<u64, i64>> = shared.ids.iter().map(|_| [(0, 0)].into_iter().collect()).collect();
    let user_of: HashMap<&str, usize> = shared
        .ids
        .iter()
        .enumerate()
        .map(|(user, id)| (id.as_str(), user))
        .collect();
    let rows = database
        .query("SELECT seq, id::text, name FROM chaos_commits ORDER BY seq", &[])
        .await
        .expect("the commit record is read");
    let mut judgement = Judgement::default();
    let mut counted = shared.late_commits_counted.lock().unwrap();
    // Per user, the latest version committed so far: a commit of an earlier one comes late, as
    // does a DELETE committed after a version sent after it.
    let mut latest = vec![0u64; shared.ids.len()];
    for row in rows {
        let Some(&user) = user_of.get(row.get::<_, String>(1).as_str()) else {
            continue;
        };
        let version = row
            .get::<_, Option<String>>(2)
            .map_or(DELETED, |name| version_of(&name));
        let seq: i64 = row.get(0);
        place[user].insert(version, seq);
        let sent_before = if version == DELETED {
            shared.sent_before_delete[user].load(Ordering::Relaxed)
        } else {
            version
        };
        if sent_before < latest[user] && counted.insert(seq) {
            judgement.late_commits += 1;
            if judgement.late_examples.len() < 3 {
                let write = if version == DELETED {
                    format!("a DELETE sent after version {sent_before}")
                } else {
                    format!("version {version}")
                };
                judgement.late_examples.push(format!(
                    "user {user}: {write} committed (commit {seq}) after version {}",
                    latest[user]
                ));
            }
        }
        latest[user] = latest[user].max(version);
    }
    drop(counted);
    for read in reads {
        let read_place = place[read.user].get(&read.version).copied();
        let acks = shared.acks[read.user].lock().unwrap();
        // The first acknowledgement, before the read was sent, of a write committed after the one
        // read (or of any, for a version Postgres never committed): how late the read was.
        let Some(&(acked, acknowledged_at)) = acks.iter().take_while(|(_, at)| *at <= read.sent).find(|(acked, _)| {
            let acked_place = place[read.user].get(acked).copied().unwrap_or(i64::MAX);
            read_place.is_none_or(|read_place| acked_place > read_place)
        }) else {
            continue;
        };
        let late_by = read.sent.saturating_duration_since(acknowledged_at);
        judgement.latest_stale = judgement.latest_stale.max(late_by);
        if late_by <= shared.bound {
            judgement.stale_within_bound += 1;
            continue;
        }
        judgement.stale_beyond_bound += 1;
        if judgement.examples.len() < 3 {
            let at = |version: u64| {
                place[read.user]
                    .get(&version)
                    .map_or("never".to_owned(), i64::to_string)
            };
            judgement.examples.push(format!(
                "user {}: version {} (commit {}) after version {acked} (commit {}) was acknowledged {:.1} ms before",
                read.user,
                read.version,
                at(read.version),
                at(acked),
                late_by.as_secs_f64() * 1e3
            ));
        }
    }
    judgement
}

async fn record(report: &mut Report, phase: &str, tally: Tally, shared: &Shared, database: &tokio_postgres::Client) {
    let judgement = judge(shared, database, &tally.reads).await;
    report.figure(
        format!("{phase}: writes acknowledged / refused (nothing written) / unknown / unanswered"),
        format!(
            "{} / {} / {} / {}",
            tally.acknowledged, tally.refused, tally.unknown, tally.unanswered_writes
        ),
    );
    report.figure(
        format!("{phase}: reads / stale within the bound / latest stale read after its acknowledgement"),
        format!(
            "{} / {} / {:.1} ms",
            tally.reads.len() as u64 + tally.failed_reads,
            judgement.stale_within_bound,
            judgement.latest_stale.as_secs_f64() * 1e3
        ),
    );
    report.check(
        judgement.stale_beyond_bound == 0,
        format!(
            "{phase}: no read returned a user older than a write acknowledged before it was sent ({} did)",
            judgement.stale_beyond_bound
        ),
    );
    report.check(
        tally.failed_reads == 0,
        format!("{phase}: every read succeeded ({} failed)", tally.failed_reads),
    );
    report.check(
        tally.untruthful_writes == 0,
        format!(
            "{phase}: every write was acknowledged or told its client nothing was written or the outcome is unknown ({} were not)",
            tally.untruthful_writes
        ),
    );
    report.check(
        judgement.late_commits == 0,
        format!(
            "{phase}: no write committed after a later write to the same user was sent ({} did)",
            judgement.late_commits
        ),
    );
    if let Some(waiting) = tally.waiting_at_cut {
        report.check(
            waiting >= 2,
            format!("{phase}: the cut found a write waiting on each locked row ({waiting} waiting)"),
        );
    }
    if let Some(late) = tally.committed_after_answer {
        report.check(
            late == 0,
            format!("{phase}: no write to the locked rows committed after it was answered ({late} did)"),
        );
    }
    if let Some(late) = tally.committed_after_exit {
        report.check(
            late == 0,
            format!("{phase}: no write sent to the writer that exited committed after its exit ({late} did)"),
        );
    }
    for read in &judgement.examples {
        report.figure(format!("{phase}: a read beyond the bound"), read);
    }
    for commit in &judgement.late_examples {
        report.figure(format!("{phase}: a late commit"), commit);
    }
    for answer in &tally.untruthful_answers {
        report.figure(format!("{phase}: an answer that was neither"), answer);
    }
}
