//! Keyset pages: queries fetch one row more than the page size to learn whether another
//! page exists; this turns that into the page and the cursor of the next.

/// Keeps at most `limit` rows and returns the cursor (from `key`) of the last one kept
/// when more rows followed.
pub fn split<T, K>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> (Vec<T>, Option<K>) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(key);
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn a_full_page_with_more_behind_it_has_a_cursor() {
        assert_eq!(split(vec![1, 2, 3], 2, |x| *x), (vec![1, 2], Some(2)));
        assert_eq!(split(vec![1, 2], 2, |x| *x), (vec![1, 2], None));
        assert_eq!(split(Vec::<i32>::new(), 2, |x| *x), (vec![], None));
    }
}
