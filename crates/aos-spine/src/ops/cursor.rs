//! Keyset cursors, opaque to clients: hex of `created_at|id`.

use aos_engines::tenants::{DbTime, DbUuid};
use uuid::Uuid;

use crate::error::SpineError;

pub fn encode(created_at: DbTime, id: DbUuid) -> String {
    let plain = format!("{}|{}", created_at.to_sortable_text(), id);
    plain.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode(text: &str) -> Result<(DbTime, DbUuid), SpineError> {
    let bad = || SpineError::bad_request("cursor: not a cursor returned by this API");
    if !text.len().is_multiple_of(2) || text.len() > 256 {
        return Err(bad());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let plain = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = plain.split_once('|').ok_or_else(bad)?;
    let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at.into(), id.into()))
}

/// Validates a requested page size.
pub fn limit(requested: Option<u32>, default: u32, max: u32) -> Result<u32, SpineError> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(SpineError::new(
            aos_schemas::ErrorCode::ValidationFailed,
            format!("limit: must be between 1 and {max}"),
        )
        .on_field("limit")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_a_bad_request() {
        let (at, id) = (DbTime::now(), DbUuid::from(Uuid::now_v7()));
        assert_eq!(decode(&encode(at, id)).unwrap(), (at, id));
        for garbage in ["", "zz", "abc", "00", &"41".repeat(200)] {
            let err = decode(garbage).unwrap_err();
            assert_eq!(err.code, aos_schemas::ErrorCode::BadRequest, "{garbage}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None, 50, 200).unwrap(), 50);
        assert_eq!(limit(Some(200), 50, 200).unwrap(), 200);
        assert!(limit(Some(0), 50, 200).is_err());
        assert!(limit(Some(201), 50, 200).is_err());
    }
}
