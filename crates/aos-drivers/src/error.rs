//! The one error type of the driver layer. Callers match on the variant, never on
//! database-specific codes or messages.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub type DriverResult<T> = Result<T, DriverError>;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The row asked for does not exist (or is not visible to the caller's tenant).
    #[error("record not found")]
    NotFound,
    /// A unique constraint rejected the write; carries the constraint name when known.
    #[error("conflicts with an existing record ({0})")]
    Conflict(String),
    /// A foreign-key, check or not-null constraint rejected the write.
    #[error("constraint violated ({0})")]
    Constraint(String),
    /// SQLite's writer lock stayed taken past `busy_timeout`, or PostgreSQL aborted a
    /// serialization. Safe to retry.
    #[error("database is busy, retry")]
    Busy,
    /// No connection could be had (database down, pool exhausted, timeout).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(String),
    /// A stored value could not be decoded.
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
    /// The connection options are unusable (bad URL, `:memory:` with a pool, ...).
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// A migration failed to apply or its state could not be read.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl DriverError {
    /// True when the same call may succeed if simply retried.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Busy | Self::Unavailable(_))
    }
}

impl From<DieselError> for DriverError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => Self::NotFound,
            DieselError::DatabaseError(kind, info) => {
                let name = info
                    .constraint_name()
                    .map(str::to_owned)
                    .unwrap_or_else(|| info.message().to_owned());
                match kind {
                    DatabaseErrorKind::UniqueViolation => Self::Conflict(name),
                    DatabaseErrorKind::ForeignKeyViolation
                    | DatabaseErrorKind::CheckViolation
                    | DatabaseErrorKind::NotNullViolation => Self::Constraint(name),
                    DatabaseErrorKind::SerializationFailure => Self::Busy,
                    DatabaseErrorKind::ClosedConnection => Self::Unavailable(info.message().to_owned()),
                    _ => {
                        let message = info.message();
                        if message.contains("database is locked")
                            || message.contains("database is busy")
                            || message.contains("deadlock detected")
                        {
                            Self::Busy
                        } else if connection_lost(message) {
                            Self::Unavailable(message.to_owned())
                        } else {
                            Self::Database(message.to_owned())
                        }
                    }
                }
            }
            DieselError::DeserializationError(e) => Self::Corrupt(e.to_string()),
            DieselError::BrokenTransactionManager => {
                Self::Unavailable("connection left in a broken transaction state".into())
            }
            other => Self::Database(other.to_string()),
        }
    }
}

/// PostgreSQL going away under a query (a restart, a failover, a killed backend): the
/// server's own words (SQLSTATE class 57P and the client's view of a closed socket).
/// Transient: the same call succeeds once the database is back.
fn connection_lost(message: &str) -> bool {
    const SIGNS: [&str; 8] = [
        "terminating connection",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "server closed the connection",
        "connection closed",
        "could not receive data from server",
        "no connection to the server",
    ];
    SIGNS.iter().any(|sign| message.contains(sign))
}

impl From<diesel::ConnectionError> for DriverError {
    fn from(err: diesel::ConnectionError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for DriverError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::connection_lost;

    #[test]
    fn postgres_going_away_is_transient() {
        assert!(connection_lost("terminating connection due to administrator command"));
        assert!(connection_lost(
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally"
        ));
        assert!(connection_lost("FATAL: the database system is shutting down"));
        assert!(!connection_lost("relation \"x\" does not exist"));
    }
}
