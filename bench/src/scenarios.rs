//! The scenarios, once: what each sends, to which instance, and the target it is held to. The
//! runner walks this table in order, the report prints its rows in the same order, and
//! `BENCH_SCENARIOS` picks from its names.

/// Where a scenario's requests go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instance {
    /// `examples/bare_hyper.rs`: the ceiling.
    Bare,
    /// The service with its cache on, as it ships.
    Main,
    /// A second instance with `CACHE_TTL_SECONDS=0`.
    CacheOff,
    /// A second instance with `CACHE_LOCAL_ENTRIES` on.
    LocalCopies,
    /// A second instance as `Main` but checking bearer tokens (keys from a file), read with one.
    Authenticated,
    /// Two fresh instances sharing Postgres and Redis, with or without local copies.
    Pair { local_copies: bool },
}

/// What a scenario sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// One oha run.
    Oha {
        method: Method,
        path: Path,
        /// `None`: `BENCH_CONNECTIONS`.
        connections: Option<u32>,
    },
    /// Two oha runs at once: `get_hot`'s reads and `create`'s writes, connections split 9:1.
    Mixed,
    /// Writes through one instance, reads of the same user through the other until it shows them.
    InvalidationLag,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    /// `POST /v1/users` with `CREATE_BODY`.
    Create,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Health,
    /// `/v1/users/{id}` over the hot ids.
    HotUsers,
    /// `/v1/users/{id}` over every seeded id.
    AllUsers,
    /// `/v1/users?limit=20`.
    ListPage,
    Users,
}

/// A measurement a scenario is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// Another scenario of the same run.
    Scenario(&'static str),
    /// A physical limit measured in the same run.
    Limit(Limit),
    /// The same scenario in the `BENCH_BASELINE` run (an older binary).
    Baseline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    RedisGet,
    PgbenchSelect,
    PgbenchList,
    PgbenchInsert,
}

impl Limit {
    pub const ALL: [Limit; 4] = [
        Limit::RedisGet,
        Limit::PgbenchSelect,
        Limit::PgbenchList,
        Limit::PgbenchInsert,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Limit::RedisGet => "redis GET",
            Limit::PgbenchSelect => "pgbench -S",
            Limit::PgbenchList => "pgbench list",
            Limit::PgbenchInsert => "pgbench insert",
        }
    }

    /// The file in a run's folder that holds the tool's own output.
    pub fn file(self) -> &'static str {
        match self {
            Limit::RedisGet => "limit_redis.csv",
            Limit::PgbenchSelect => "limit_pgbench.txt",
            Limit::PgbenchList => "limit_pgbench_list.txt",
            Limit::PgbenchInsert => "limit_pgbench_insert.txt",
        }
    }
}

/// What a scenario must reach.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Requests per second at least `at_least` × the reference's.
    Throughput { reference: Reference, at_least: f64 },
    /// Median latency at most `at_most` × the reference's.
    MedianLatency { reference: Reference, at_most: f64 },
    /// Not one read that started after the write's response returned the old body.
    NoStaleReads,
}

pub struct Scenario {
    pub name: &'static str,
    /// What is sent, for people.
    pub request: &'static str,
    pub instance: Instance,
    pub load: Load,
    /// The physical limit shown beside it.
    pub limit: Option<Limit>,
    pub target: Option<Target>,
    /// A service setting the scenario needs; an instance whose `--help` does not name it reports
    /// the scenario as n/a.
    pub needs_setting: Option<&'static str>,
}

/// The body of every create: no email, so every request is valid and none collides.
pub const CREATE_BODY: &str = r#"{"name":"Bench Created"}"#;
/// The service setting that turns on in-process copies kept coherent by Redis.
pub const LOCAL_ENTRIES_SETTING: &str = "CACHE_LOCAL_ENTRIES";
/// The service setting that turns on bearer-token authentication.
pub const AUTH_SETTING: &str = "AUTH_ISSUER";
/// p99 every scenario at `BENCH_CONNECTIONS` must stay under.
pub const P99_CEILING_MS: f64 = 10.0;
pub const IDLE_RSS_MAX_MIB: f64 = 10.0;
pub const PEAK_RSS_MAX_MIB: f64 = 32.0;
pub const BINARY_MAX_MIB: f64 = 6.0;

const fn oha(method: Method, path: Path) -> Load {
    Load::Oha {
        method,
        path,
        connections: None,
    }
}

const fn at_least(reference: Reference, ratio: f64) -> Option<Target> {
    Some(Target::Throughput {
        reference,
        at_least: ratio,
    })
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "bare_hyper",
        request: "GET /health on a bare hyper server (the ceiling)",
        instance: Instance::Bare,
        load: oha(Method::Get, Path::Health),
        limit: None,
        target: None,
        needs_setting: None,
    },
    Scenario {
        name: "health",
        request: "GET /health",
        instance: Instance::Main,
        load: oha(Method::Get, Path::Health),
        limit: None,
        target: at_least(Reference::Scenario("bare_hyper"), 0.95),
        needs_setting: None,
    },
    Scenario {
        name: "get_hot",
        request: "GET /v1/users/{id}, hot ids, Redis warm, no local copies",
        instance: Instance::Main,
        load: oha(Method::Get, Path::HotUsers),
        limit: Some(Limit::RedisGet),
        target: at_least(Reference::Baseline, 1.0),
        needs_setting: None,
    },
    Scenario {
        name: "get_hot_auth",
        request: "GET /v1/users/{id}, hot ids, Redis warm, with a bearer token (authentication on)",
        instance: Instance::Authenticated,
        load: oha(Method::Get, Path::HotUsers),
        limit: None,
        target: at_least(Reference::Scenario("get_hot"), 0.90),
        needs_setting: Some(AUTH_SETTING),
    },
    Scenario {
        name: "get_hot_local",
        request: "GET /v1/users/{id}, hot ids, local copies warm",
        instance: Instance::LocalCopies,
        load: oha(Method::Get, Path::HotUsers),
        limit: None,
        target: at_least(Reference::Scenario("health"), 0.90),
        needs_setting: Some(LOCAL_ENTRIES_SETTING),
    },
    Scenario {
        name: "get_cold",
        request: "GET /v1/users/{id}, every id, cache off",
        instance: Instance::CacheOff,
        load: oha(Method::Get, Path::AllUsers),
        limit: Some(Limit::PgbenchSelect),
        target: at_least(Reference::Limit(Limit::PgbenchSelect), 1.0),
        needs_setting: None,
    },
    Scenario {
        name: "list",
        request: "GET /v1/users?limit=20",
        instance: Instance::Main,
        load: oha(Method::Get, Path::ListPage),
        limit: Some(Limit::PgbenchList),
        target: at_least(Reference::Scenario("health"), 0.20),
        needs_setting: None,
    },
    Scenario {
        name: "create_c1",
        request: "POST /v1/users at 1 connection",
        instance: Instance::Main,
        load: Load::Oha {
            method: Method::Create,
            path: Path::Users,
            connections: Some(1),
        },
        limit: None,
        target: Some(Target::MedianLatency {
            reference: Reference::Baseline,
            at_most: 1.10,
        }),
        needs_setting: None,
    },
    Scenario {
        name: "create",
        request: "POST /v1/users",
        instance: Instance::Main,
        load: oha(Method::Create, Path::Users),
        limit: Some(Limit::PgbenchInsert),
        target: at_least(Reference::Limit(Limit::PgbenchInsert), 2.0),
        needs_setting: None,
    },
    Scenario {
        name: "mixed",
        request: "get_hot's reads and create's writes at once, connections 9:1",
        instance: Instance::Main,
        load: Load::Mixed,
        limit: None,
        target: at_least(Reference::Scenario("health"), 0.60),
        needs_setting: None,
    },
    Scenario {
        name: "lag_local",
        request: "PATCH through A, GET through B until B shows it; both with local copies",
        instance: Instance::Pair { local_copies: true },
        load: Load::InvalidationLag,
        limit: None,
        target: None,
        needs_setting: Some(LOCAL_ENTRIES_SETTING),
    },
    Scenario {
        name: "lag_redis",
        request: "the same with local copies off (Redis only)",
        instance: Instance::Pair { local_copies: false },
        load: Load::InvalidationLag,
        limit: None,
        target: Some(Target::NoStaleReads),
        needs_setting: None,
    },
];

#[cfg(test)]
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|scenario| scenario.name == name)
}

impl Scenario {
    /// The oha connections, given the run's setting.
    pub fn connections(&self, setting: u32) -> u32 {
        match self.load {
            Load::Oha {
                connections: Some(connections),
                ..
            } => connections,
            _ => setting,
        }
    }
}

/// Connections of `mixed` as (reads, writes): writes get a tenth, rounded, at least one.
pub fn mixed_split(connections: u32) -> (u32, u32) {
    let writes = ((connections + 5) / 10).max(1);
    (connections.saturating_sub(writes).max(1), writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_references_point_at_earlier_scenarios() {
        for (index, scenario) in SCENARIOS.iter().enumerate() {
            assert_eq!(
                SCENARIOS.iter().filter(|other| other.name == scenario.name).count(),
                1,
                "{} is listed twice",
                scenario.name
            );
            if let Some(Target::Throughput {
                reference: Reference::Scenario(reference),
                ..
            }) = scenario.target
            {
                let position = SCENARIOS.iter().position(|other| other.name == reference);
                assert!(
                    position.is_some_and(|position| position < index),
                    "{} is compared with {reference}, which must run before it",
                    scenario.name
                );
            }
        }
    }

    #[test]
    fn mixed_gives_writes_a_tenth_of_the_connections() {
        assert_eq!(mixed_split(64), (58, 6));
        assert_eq!(mixed_split(10), (9, 1));
        assert_eq!(mixed_split(2), (1, 1));
        assert_eq!(mixed_split(1), (1, 1));
    }

    #[test]
    fn create_c1_runs_at_one_connection_whatever_the_setting() {
        assert_eq!(find("create_c1").unwrap().connections(64), 1);
        assert_eq!(find("create").unwrap().connections(64), 64);
    }
}
