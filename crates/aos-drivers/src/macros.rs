/// Runs one query body against whichever backend a [`crate::Conn`] holds.
///
/// `on_backend!(conn, |c| body)` expands `body` once per backend with `c` bound to
/// `&mut AsyncPgConnection` or `&mut SyncConnectionWrapper<SqliteConnection>`, so the
/// query is written once and type-checked twice. The body's error type must convert
/// into [`crate::DriverError`] with `?` or be mapped by the caller.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn.backend_mut() {
            $crate::db::BackendConn::Pg($c) => $body,
            $crate::db::BackendConn::Sqlite($c) => $body,
        }
    };
}
