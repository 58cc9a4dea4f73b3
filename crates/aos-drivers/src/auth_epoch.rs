//! The credential-change counter (see the `auth_epoch` migration).

use aos_models::schema::auth_epoch;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::Conn;
use crate::error::DriverResult;

/// The current epoch.
pub async fn current(conn: &mut Conn) -> DriverResult<i64> {
    let epoch = on_backend!(conn, |c| auth_epoch::table
        .find(1)
        .select(auth_epoch::epoch)
        .first(c)
        .await)?;
    Ok(epoch)
}

/// Moves the epoch on; call inside the transaction that makes the change.
pub async fn bump(conn: &mut Conn) -> DriverResult<i64> {
    let epoch = on_backend!(conn, |c| diesel::update(auth_epoch::table.find(1))
        .set(auth_epoch::epoch.eq(auth_epoch::epoch + 1))
        .returning(auth_epoch::epoch)
        .get_result(c)
        .await)?;
    Ok(epoch)
}
