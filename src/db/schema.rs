//! Whether the database's schema is the one this release's statements need.
//!
//! A Postgres that answers but was never migrated (or is behind this release, or is dirty: a
//! migration under way, or cut off) is not an outage: waiting does not fix it, `gravity-bff migrate up`
//! does. So every connection checks the recorded migration version before preparing its
//! statements, and the answer is kept here for `/ready` and for the 503s of requests that found
//! no connection: they name the missing migration and the command instead of "not answering".

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use tokio_postgres::Client;

use super::migrate::{MIGRATIONS, Migration, dirty_advice, latest_version, recorded_version};

/// What the database lacks: the migrations after `applied` (none applied: `None`), or a repair
/// after a migration that failed part-way (`dirty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaGap {
    pub applied: Option<i64>,
    pub dirty: bool,
}

/// The last gap a connection found, shared by every keeper; cleared when one finds none.
#[derive(Clone, Default)]
pub(crate) struct SchemaWatch(Arc<RwLock<Option<SchemaGap>>>);

impl SchemaWatch {
    pub(crate) fn gap(&self) -> Option<SchemaGap> {
        *self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn record(&self, gap: Option<SchemaGap>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = gap;
    }
}

/// Reads the recorded version on a fresh connection: `Ok(Some(gap))` when this release cannot
/// run on it. A newer version is fine (migrations keep older statements working), dirty or not: a
/// newer release's migration, under way or failed part-way, has left all of this release's applied.
pub(crate) async fn check(client: &Client) -> Result<Option<SchemaGap>, tokio_postgres::Error> {
    let recorded = recorded_version(client).await?;
    let (applied, dirty) = recorded.map_or((None, false), |(version, dirty)| (Some(version), dirty));
    let newer = applied.is_some_and(|version| version > latest_version());
    let behind = applied.is_none_or(|version| version < latest_version());
    Ok((behind || (dirty && !newer)).then_some(SchemaGap { applied, dirty }))
}

impl fmt::Display for SchemaGap {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (true, Some(version)) = (self.dirty, self.applied) {
            return write!(
                formatter,
                "postgres answers, but the schema is dirty at version {version}: {}",
                dirty_advice(version)
            );
        }
        let applied = self.applied.unwrap_or(0);
        let mut missing = MIGRATIONS.iter().filter(|migration| migration.version > applied);
        let first = missing.next().map_or(String::new(), Migration::to_string);
        let more = match missing.count() {
            0 => String::new(),
            count => format!(" and {count} more"),
        };
        write!(
            formatter,
            "postgres answers, but the schema is behind this release: migration {first}{more} is not applied; \
             run `gravity-bff migrate up`"
        )
    }
}

impl std::error::Error for SchemaGap {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_database_names_the_first_migration_and_the_command() {
        let text = SchemaGap {
            applied: None,
            dirty: false,
        }
        .to_string();
        assert!(text.contains("0001_initial_schema"), "{text}");
        assert!(text.contains("gravity-bff migrate up"), "{text}");
    }

    #[test]
    fn a_database_one_behind_names_the_missing_one_only() {
        let latest = MIGRATIONS.last().unwrap();
        let text = SchemaGap {
            applied: Some(latest.version - 1),
            dirty: false,
        }
        .to_string();
        assert!(text.contains(&format!("{latest} is not applied")), "{text}");
    }

    #[test]
    fn a_dirty_database_asks_for_a_repair_not_for_migrate_up() {
        let text = SchemaGap {
            applied: Some(2),
            dirty: true,
        }
        .to_string();
        assert!(text.contains("migrate force 2"), "{text}");
    }
}
