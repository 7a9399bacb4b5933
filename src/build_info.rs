//! What was built: the version from Cargo.toml and the source revision `build.rs` recorded.
//!
//! Both show in `--version` and in the `gravity_build_info` metric, so an operator can tell which
//! build each replica runs (and see a rollout finish, or stall halfway).

/// The crate's version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The source revision: the `REVISION` given to the build, else the git commit it was built
/// from, else `unknown`. Only `[A-Za-z0-9._+-]`, so it needs no escaping anywhere.
pub const REVISION: &str = env!("GRAVITY_REVISION");
