//! The service as a process of the cargo-built binary (tests/support/service.rs runs it), for what
//! only a process shows: its stdout and stderr lines, its descriptor limit, how it takes signals,
//! and its exit code.

use crate::support::service::Launch;
pub use crate::support::service::Service;

use crate::helpers::TestDatabase;
use crate::shutdown::BINARY;

/// Starts the binary with exactly `vars` (plus a free `API_PORT`) and waits until it serves.
pub async fn start(vars: Vec<(String, String)>) -> Service {
    Launch::new(BINARY, vars)
        .start()
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Starts the binary on `database` with the settings adjusted by `extra`, under
/// `sh -c 'ulimit -n N; exec …'` when a descriptor limit is given, and waits until it serves.
pub async fn on(database: &TestDatabase, extra: &[(&str, &str)], descriptor_limit: Option<u32>) -> Service {
    Launch {
        descriptor_limit,
        ..launch(database, extra)
    }
    .start()
    .await
    .unwrap_or_else(|error| panic!("{error}"))
}

/// The launch `on` starts, for a test that sets more of it (where the output goes, say).
pub fn launch(database: &TestDatabase, extra: &[(&str, &str)]) -> Launch {
    let mut vars = database.services.vars(&database.name, &database.name);
    vars.retain(|(name, _)| !extra.iter().any(|(extra, _)| extra == name));
    vars.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    Launch::new(BINARY, vars)
}
