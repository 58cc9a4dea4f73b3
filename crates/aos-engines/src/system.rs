//! Readiness: can this replica serve traffic?

use aos_drivers::Database;

/// One readiness probe result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: Option<String>,
}

/// Checks that the database answers and that every embedded migration is applied.
/// Failures are reported, never raised: readiness is itself the answer.
pub async fn readiness(db: &Database) -> Vec<Check> {
    let database = match db.ping().await {
        Ok(()) => Check {
            name: "database",
            ok: true,
            detail: None,
        },
        Err(e) => Check {
            name: "database",
            ok: false,
            detail: Some(e.to_string()),
        },
    };
    let migrations = if database.ok {
        match db.migration_status().await {
            Ok(status) if status.is_current() => Check {
                name: "migrations",
                ok: true,
                detail: None,
            },
            Ok(status) => Check {
                name: "migrations",
                ok: false,
                detail: Some(format!(
                    "{} pending: {}",
                    status.pending.len(),
                    status.pending.join(", ")
                )),
            },
            Err(e) => Check {
                name: "migrations",
                ok: false,
                detail: Some(e.to_string()),
            },
        }
    } else {
        Check {
            name: "migrations",
            ok: false,
            detail: Some("database unreachable".into()),
        }
    };
    vec![database, migrations]
}
