//! How many client connections the process may hold: the descriptor limit, raised to its hard
//! maximum at start-up, less what the process needs for itself.

use std::io;

/// Descriptors kept back from clients: standard streams, the listener, the runtime's epoll and
/// wake-up descriptors, Redis (the cache and its tracking connection), the health probe's own
/// connection, a migration or two, and headroom. Postgres connections are added on top.
pub(crate) const RESERVED_DESCRIPTORS: u64 = 64;

/// The default is never above this: past it, memory (hyper's buffers, kernel socket buffers) runs
/// out before descriptors do in the pod sizes the service is deployed with.
pub(crate) const DEFAULT_MAX_CONNECTIONS_CEILING: usize = 16_384;

/// Nor below this, however low the descriptor limit: a service that cannot hold a handful of
/// connections is no use, and `accept` errors are survived anyway.
const DEFAULT_MAX_CONNECTIONS_FLOOR: usize = 16;

/// Linux refuses a soft limit above `fs.nr_open` (1,048,576 by default) even when the hard limit
/// says "unlimited".
const HIGHEST_DESCRIPTOR_LIMIT: u64 = 1 << 20;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit now in force.
/// Containers often start with a soft limit of 1,024 under a hard one of 1,048,576: the soft one
/// is a default for programs that use `select(2)`, which this one does not.
pub(crate) fn raise_descriptor_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (soft, wanted) = (limit.rlim_cur, limit.rlim_max.min(HIGHEST_DESCRIPTOR_LIMIT));
    if soft >= wanted {
        return Ok(soft);
    }
    limit.rlim_cur = wanted;
    // SAFETY: setrlimit only reads the struct it is given, which lives for the call.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0;
    Ok(if raised { wanted } else { soft })
}

/// The contract's default `MAX_CONNECTIONS` for a descriptor limit and the most Postgres
/// connections the process opens.
pub(crate) fn default_max_connections(descriptor_limit: u64, postgres_connections: usize) -> usize {
    let available = descriptors_for_clients(descriptor_limit, postgres_connections);
    usize::try_from(available)
        .unwrap_or(usize::MAX)
        .clamp(DEFAULT_MAX_CONNECTIONS_FLOOR, DEFAULT_MAX_CONNECTIONS_CEILING)
}

/// The most connections a descriptor limit leaves room for, to warn about a setting above it.
pub(crate) fn descriptors_for_clients(descriptor_limit: u64, postgres_connections: usize) -> u64 {
    descriptor_limit.saturating_sub(RESERVED_DESCRIPTORS + postgres_connections as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_the_reserve_and_stays_within_bounds() {
        let cases = [
            (256, 4, 188),
            (1_024, 4, 956),
            (1_024, 64, 896),
            (65_536, 4, DEFAULT_MAX_CONNECTIONS_CEILING),
            (1 << 20, 4, DEFAULT_MAX_CONNECTIONS_CEILING),
            (64, 4, DEFAULT_MAX_CONNECTIONS_FLOOR),
            (0, 4, DEFAULT_MAX_CONNECTIONS_FLOOR),
        ];
        for (limit, pool, expected) in cases {
            assert_eq!(
                default_max_connections(limit, pool),
                expected,
                "limit {limit}, pool {pool}"
            );
        }
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let soft = raise_descriptor_limit().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_descriptor_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!(limit.rlim_cur, soft);
        assert!(soft >= limit.rlim_max.min(HIGHEST_DESCRIPTOR_LIMIT));
    }
}
