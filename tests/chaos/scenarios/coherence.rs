//! The cache never contradicts an acknowledged write, under load, while Redis fills up (writes
//! refused for want of memory, `noeviction`) and is then freed. Reads never fail; a write is
//! acknowledged, or refused with "nothing was written" when Redis will not take its fence.
//!
//! Writers PATCH their own users over and over, each new name carrying a version number; readers
//! GET random users. A read is stale if it returns a version older than the newest one whose
//! PATCH had been acknowledged before the read was sent. The scenario counts them: there must be
//! none.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Harness;
use crate::report::Report;
use crate::scenarios::{RandomUsers, WriteCounts, version_in, write_versions};
use crate::support::http;
use crate::support::redis_server::OwnRedis;

const USERS: usize = 40;
const WRITERS: usize = 4;
const READERS: usize = 8;
/// Before filling, while full, after freeing.
const PHASE: Duration = Duration::from_secs(4);

/// What the readers and writers share.
struct Shared {
    ids: Vec<String>,
    /// Per user: the newest version whose PATCH was acknowledged.
    acknowledged: Vec<AtomicU64>,
    stop: AtomicBool,
    reads: AtomicU64,
    stale_reads: AtomicU64,
    hits: AtomicU64,
    writes: AtomicU64,
    failed_requests: AtomicU64,
    writes_not_acknowledged: WriteCounts,
}

pub async fn redis_full_then_freed(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("Writes and reads while Redis is full (noeviction), then freed");
    let redis = OwnRedis::start_with(
        crate::support::free_port(),
        &["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"],
    );
    let started = harness.start_service("redis_full", Some(&redis), &[]).await;
    let port = started.service.port;
    let ids = super::create_users(port, USERS, "v0").await;
    let shared = Arc::new(Shared {
        acknowledged: ids.iter().map(|_| AtomicU64::new(0)).collect(),
        ids,
        stop: AtomicBool::new(false),
        reads: AtomicU64::new(0),
        stale_reads: AtomicU64::new(0),
        hits: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        failed_requests: AtomicU64::new(0),
        writes_not_acknowledged: WriteCounts {
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        },
    });
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        tasks.spawn(write_loop(port, shared.clone(), writer));
    }
    for reader in 0..READERS {
        tasks.spawn(read_loop(port, shared.clone(), reader as u64));
    }

    tokio::time::sleep(PHASE).await;
    let hits_before = shared.hits.load(Ordering::Relaxed);
    let filler = tokio::task::spawn_blocking({
        let port = redis.port;
        move || fill_until_out_of_memory(port)
    })
    .await
    .expect("Redis is filled");
    let stale_before_full = shared.stale_reads.load(Ordering::Relaxed);
    tokio::time::sleep(PHASE).await;
    let hits_while_full = shared.hits.load(Ordering::Relaxed) - hits_before;
    let mut connection = redis.connection();
    for key in &filler {
        let _: () = redis::Commands::del(&mut connection, key).expect("the filler is removed");
    }
    let hits_at_free = shared.hits.load(Ordering::Relaxed);
    tokio::time::sleep(PHASE).await;
    shared.stop.store(true, Ordering::Relaxed);
    tasks.join_all().await;
    let hits_after = shared.hits.load(Ordering::Relaxed) - hits_at_free;

    let stale = shared.stale_reads.load(Ordering::Relaxed);
    report.figure("users", USERS);
    report.figure("acknowledged writes", shared.writes.load(Ordering::Relaxed));
    report.figure("reads", shared.reads.load(Ordering::Relaxed));
    report.figure("filler written until Redis refused (64 KiB keys)", filler.len());
    report.figure("cache hits before filling", hits_before);
    report.figure("cache hits while full", hits_while_full);
    report.figure(
        format!("cache hits in the {} s after freeing", PHASE.as_secs()),
        hits_after,
    );
    report.figure("stale reads (older than an acknowledged write)", stale);
    report.figure("failed reads", shared.failed_requests.load(Ordering::Relaxed));
    let counts = &shared.writes_not_acknowledged;
    report.figure(
        "writes refused (nothing written: Redis would not take the fence)",
        counts.refused.load(Ordering::Relaxed),
    );
    report.figure(
        "cache errors counted by the service",
        http::metric(port, "gravity_cache_errors_total").await.unwrap_or(-1.0),
    );
    report.check(
        hits_before > 0,
        "reads were served from the cache before Redis filled up",
    );
    report.check(stale == 0, "no read returned a user older than an acknowledged write");
    report.check(stale_before_full == 0, "no stale read before Redis filled up either");
    report.check(
        shared.failed_requests.load(Ordering::Relaxed) == 0,
        "every read succeeded (a full Redis never fails a read)",
    );
    report.check(
        counts.failed.load(Ordering::Relaxed) == 0,
        "every write was acknowledged or refused with nothing written",
    );
    report.check(hits_after > 0, "cache hits resumed after Redis was freed");
    report
}

async fn write_loop(port: u16, shared: Arc<Shared>, writer: usize) {
    let acknowledged = |user: usize, version| {
        shared.acknowledged[user].store(version, Ordering::Release);
        shared.writes.fetch_add(1, Ordering::Relaxed);
    };
    let pause = Duration::from_millis(20);
    let (stop, counts) = (&shared.stop, &shared.writes_not_acknowledged);
    write_versions(port, &shared.ids, (writer, WRITERS), pause, stop, counts, acknowledged).await;
}

async fn read_loop(port: u16, shared: Arc<Shared>, seed: u64) {
    let mut users = RandomUsers::new(seed, USERS);
    while !shared.stop.load(Ordering::Relaxed) {
        let user = users.next();
        let newest_acknowledged = shared.acknowledged[user].load(Ordering::Acquire);
        let response = http::get(port, &format!("/v1/users/{}", shared.ids[user])).await.ok();
        shared.reads.fetch_add(1, Ordering::Relaxed);
        let Some(response) = response.filter(|response| response.status == 200) else {
            shared.failed_requests.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if response.header("x-cache") == Some("HIT") {
            shared.hits.fetch_add(1, Ordering::Relaxed);
        }
        let version = version_in(&response);
        if version < newest_acknowledged {
            shared.stale_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes 64 KiB filler keys until Redis refuses one for want of memory; returns their names.
fn fill_until_out_of_memory(port: u16) -> Vec<String> {
    let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|client| client.get_connection())
        .expect("the scenario's Redis accepts connections");
    let chunk = vec![b'f'; 64 * 1024];
    let mut keys = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let key = format!("filler:{}", keys.len());
        match redis::Commands::set::<_, _, ()>(&mut connection, &key, &chunk) {
            Ok(()) => keys.push(key),
            Err(error) if error.code() == Some("OOM") => break,
            Err(error) => panic!("filling Redis failed: {error}"),
        }
    }
    keys
}
