//! The load: a fixed request rate spread over keep-alive connections, every outcome recorded.
//!
//! Each worker owns one keep-alive HTTP/1.1 connection (tests/support/http.rs) and sends on a
//! fixed tick. A tick that finds no connection opens one; a refused
//! connect, a broken connection and a client-side timeout are outcomes of their own, so nothing a
//! fault does to a request goes uncounted. The rate is fixed rather than "as fast as possible" so
//! the service is under steady, comparable load and the two cores stay free for the faults.

use std::time::{Duration, Instant};

use hyper::Method;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::mix::{Draw, Intent, Mix, Planned};
use crate::support::http::{Connection, Failure};

/// Longer than the service's own 10 s request deadline: a request still unanswered by then hangs.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(12);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status {
        code: u16,
        cache_hit: bool,
        /// `Content-Type: application/problem+json`.
        problem: bool,
    },
    /// The TCP connect failed: the service was not accepting.
    Refused,
    /// The connection failed after the request was sent, with no response.
    Broken,
    /// No answer within `CLIENT_TIMEOUT`.
    TimedOut,
}

#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Sent as `X-Request-Id: chaos-{worker}-{sequence}`, so the service's log can be matched.
    pub worker: usize,
    pub sequence: u64,
    /// When the request was sent, since the load started.
    pub sent: Duration,
    pub latency: Duration,
    pub intent: Intent,
    pub answer: Answer,
}

/// A running load; `stop` ends it and hands back every outcome.
pub struct Load {
    started: Instant,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<Vec<Outcome>>>,
}

struct Worker {
    index: usize,
    mix: Mix,
    random: u64,
    sequence: u64,
    /// Users this worker created and may patch or delete (soak only).
    created: Vec<String>,
    connection: Connection,
}

impl Load {
    /// Starts `connections` workers sending `rate` requests per second in all.
    pub fn start(port: u16, connections: usize, rate: u32, mix: Mix) -> Load {
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let period = Duration::from_secs_f64(connections as f64 / f64::from(rate.max(1)));
        let workers = (0..connections)
            .map(|index| {
                let worker = Worker {
                    index,
                    mix: mix.clone(),
                    random: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
                    sequence: 0,
                    created: Vec::new(),
                    connection: Connection::to("127.0.0.1", port).with_timeout(CLIENT_TIMEOUT),
                };
                // Workers start spread over one period, so the rate is smooth rather than bursty.
                let offset = period.mul_f64(index as f64 / connections as f64);
                tokio::spawn(worker.run(started, offset, period, stopped.clone()))
            })
            .collect();
        Load { started, stop, workers }
    }

    /// Time since the load started, on the same clock as `Outcome::sent`.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub async fn stop(self) -> Vec<Outcome> {
        let _ = self.stop.send(true);
        let mut outcomes = Vec::new();
        for worker in self.workers {
            outcomes.extend(worker.await.expect("a load worker does not panic"));
        }
        outcomes.sort_by_key(|outcome| outcome.sent);
        outcomes
    }
}

impl Worker {
    async fn run(
        mut self,
        started: Instant,
        offset: Duration,
        period: Duration,
        mut stopped: watch::Receiver<bool>,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::from_std(started + offset), period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.changed() => break,
            }
            if *stopped.borrow() {
                break;
            }
            self.sequence += 1;
            let draw = Draw {
                roll: self.next_random() % 100,
                pick: self.next_random() as usize,
                worker: self.index,
                sequence: self.sequence,
            };
            let planned = self.mix.plan(&draw, &mut self.created);
            let sent = started.elapsed();
            let clock = Instant::now();
            let (answer, location) = self.send(&planned).await;
            outcomes.push(Outcome {
                worker: self.index,
                sequence: self.sequence,
                sent,
                latency: clock.elapsed(),
                intent: planned.intent,
                answer,
            });
            self.remember(&planned, answer, location);
        }
        outcomes
    }

    /// xorshift64*: enough randomness to mix requests, and the same sequence on every run.
    fn next_random(&mut self) -> u64 {
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn remember(&mut self, planned: &Planned, answer: Answer, location: Option<String>) {
        if planned.method == Method::POST
            && matches!(answer, Answer::Status { code: 201, .. })
            && let Some(location) = location
            && let Some(id) = location.strip_prefix("/v1/users/")
        {
            self.created.push(id.to_owned());
        }
    }

    async fn send(&mut self, planned: &Planned) -> (Answer, Option<String>) {
        let request_id = format!("chaos-{}-{}", self.index, self.sequence);
        let body = planned
            .body
            .as_deref()
            .map(|body| (planned.content_type.unwrap_or_default(), body.as_bytes()));
        let sent = self
            .connection
            .send_body(
                planned.method.as_str(),
                &planned.path,
                &[("x-request-id", &request_id)],
                body,
            )
            .await;
        match sent {
            Ok(response) => {
                let answer = Answer::Status {
                    code: response.status,
                    cache_hit: response.header("x-cache") == Some("HIT"),
                    problem: response.header("content-type") == Some("application/problem+json"),
                };
                (answer, response.header("location").map(str::to_owned))
            }
            Err(Failure::Refused(_)) => (Answer::Refused, None),
            Err(Failure::Broken(_)) => (Answer::Broken, None),
            Err(Failure::TimedOut) => (Answer::TimedOut, None),
        }
    }
}

impl Outcome {
    pub fn request_id(&self) -> String {
        format!("chaos-{}-{}", self.worker, self.sequence)
    }

    pub fn is_status(&self, wanted: u16) -> bool {
        matches!(self.answer, Answer::Status { code, .. } if code == wanted)
    }

    /// When the answer (or the failure) arrived, since the load started.
    pub fn finished(&self) -> Duration {
        self.sent + self.latency
    }
}
