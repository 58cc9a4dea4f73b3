//! Named operations and how the spine runs them.

use std::future::Future;
use std::pin::Pin;

use aos_drivers::Conn;

use crate::error::SpineError;

/// How an operation touches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain reads on a pooled connection, no transaction.
    Read,
    /// One transaction, committed if the operation returns `Ok`. On SQLite it takes the
    /// writer lock up front (`BEGIN IMMEDIATE`).
    Write,
}

/// What an operation receives: a connection in the mode it declared.
pub struct OperationContext<'c> {
    pub conn: &'c mut Conn,
}

pub type OpFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, SpineError>> + Send + 'c>>;

/// One named thing the spine can do. Implementations live in [`crate::ops`]; the name
/// appears on the tracing span of every run and is stable (dashboards key on it).
pub trait Operation: Send + 'static {
    /// `domain.verb`, e.g. `tenants.create`.
    const NAME: &'static str;
    const MODE: Mode;
    type Output: Send + 'static;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output>;
}
