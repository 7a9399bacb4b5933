//! Measures the two-instance invalidation lag (see `lag` for what is recorded).
//!
//! One keep-alive connection to each instance, one request at a time, so the probe's own timing
//! is not disturbed by load it makes itself. For each write: B's cache is warmed until it answers
//! from its cache (so B holds the old body), the user is patched through A with a name no other
//! write uses, and from the moment A's 200 has been read, B is read again and again until its
//! body carries the new name.

use std::time::{Duration, Instant};

use crate::lag::LagRecord;
use crate::support::http::Connection;

/// Reads through B before a write, at most, to get it answering from its cache.
const WARMING_READS: usize = 5;
/// How long B may go on serving the old body before the probe gives up on that write.
const GIVE_UP: Duration = Duration::from_secs(10);

pub async fn measure(writer: &str, reader: &str, ids: &[String], writes: u32, tag: &str) -> Result<LagRecord, String> {
    if ids.is_empty() {
        return Err("no user ids to write".to_owned());
    }
    let mut to_writer = Connection::to_url(writer)?;
    let mut to_reader = Connection::to_url(reader)?;
    let mut record = LagRecord {
        give_up_ms: GIVE_UP.as_millis() as u64,
        ..LagRecord::default()
    };
    let report_every = (writes / 5).max(1);
    for number in 0..writes {
        let path = format!("/v1/users/{}", ids[number as usize % ids.len()]);
        if !warm(&mut to_reader, &path).await? {
            record.not_prewarmed += 1;
        }
        let name = format!("lag-{tag}-{number}");
        let body = format!(r#"{{"name":"{name}"}}"#);
        let needle = format!("\"{name}\"");
        record.writes += 1;
        let written = to_writer.send("PATCH", &path, &[], Some(&body)).await?;
        let acknowledged = Instant::now();
        if written.status != 200 {
            record.failed_writes += 1;
            continue;
        }
        let mut stale_here = false;
        loop {
            let started = Instant::now();
            let late = started - acknowledged;
            let read = to_reader.get(&path).await?;
            record.reads += 1;
            if read.status != 200 {
                record.failed_reads += 1;
            } else if contains(&read.body, needle.as_bytes()) {
                record.lags_us.push(late.as_micros() as u64);
                break;
            } else {
                record.stale_reads_us.push(late.as_micros() as u64);
                stale_here = true;
            }
            if late > GIVE_UP {
                record.unconverged += 1;
                break;
            }
        }
        record.writes_with_stale_reads += u64::from(stale_here);
        if (number + 1) % report_every == 0 {
            eprintln!(
                "    {} of {writes} writes, {} stale reads so far",
                number + 1,
                record.stale_reads_us.len()
            );
        }
    }
    Ok(record)
}

/// Reads through B until it answers from its cache, then once more so that a copy filled by
/// that answer (a local one) is in place. False if it never answered from its cache.
async fn warm(reader: &mut Connection, path: &str) -> Result<bool, String> {
    for _ in 0..WARMING_READS {
        let response = reader.get(path).await?;
        if response.status == 200 && response.answered_from_cache() {
            reader.get(path).await?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_a_quoted_name_and_not_a_longer_one() {
        let body = br#"{"id":"x","name":"lag-a-12","email":null}"#;
        assert!(contains(body, br#""lag-a-12""#));
        assert!(!contains(body, br#""lag-a-1""#));
        assert!(!contains(body, b""));
    }
}
