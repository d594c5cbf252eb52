//! The distinct values of a table's key columns for one symbol, found by skipping through
//! the primary key (one seek per value). The metric tables' primary keys are (symbol,
//! keys..., timestamp): a time range of a symbol across its keys cannot use the key, and
//! SQLite then reads the symbol's whole history. Listing the keys first turns every such
//! read, count or delete into one key range per value.

use rusqlite::types::ValueRef;

use crate::Result;

/// Most distinct key values of one symbol listed by skipping through the primary key;
/// beyond, the symbol is read whole.
const MAX_KEYS: usize = 64;

/// The distinct values of the key columns `keys` (text columns after `symbol` in the
/// primary key) among `symbol`'s rows, in the primary key's order, one index seek each
/// (a column at a time: SQLite seeks past a prefix for `k > ?`, not for a row value);
/// `None` when a value is not text (a NULL, a number or a blob written by another
/// program: the skip cannot step over it) or there are more than [`MAX_KEYS`].
pub(crate) fn key_values(
    c: &rusqlite::Connection,
    table: &str,
    keys: &[&str],
    symbol: &str,
) -> Result<Option<Vec<Vec<String>>>> {
    let mut out = Vec::new();
    let complete = next_keys(c, table, keys, symbol, &mut Vec::new(), &mut out)?;
    Ok(complete.then_some(out))
}

/// Appends to `out` every value of `keys[prefix.len()..]` under `prefix`; false when a
/// value is not text or there are too many.
fn next_keys(
    c: &rusqlite::Connection,
    table: &str,
    keys: &[&str],
    symbol: &str,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> Result<bool> {
    let level = prefix.len();
    if level == keys.len() {
        if out.len() == MAX_KEYS {
            return Ok(false);
        }
        out.push(prefix.clone());
        return Ok(true);
    }
    let column = keys[level];
    let fixed: String = keys[..level]
        .iter()
        .enumerate()
        .map(|(i, k)| format!(" AND {k} = ?{}", i + 2))
        .collect();
    let after = level + 2;
    let first =
        format!("SELECT {column} FROM {table} WHERE symbol = ?1{fixed} ORDER BY {column} LIMIT 1");
    let next = format!(
        "SELECT {column} FROM {table} WHERE symbol = ?1{fixed} AND {column} > ?{after} \
         ORDER BY {column} LIMIT 1"
    );
    let mut last: Option<String> = None;
    loop {
        let value = {
            let mut stmt = c.prepare_cached(if last.is_none() { &first } else { &next })?;
            let mut params: Vec<&dyn rusqlite::ToSql> = vec![&symbol];
            params.extend(prefix.iter().map(|v| v as &dyn rusqlite::ToSql));
            if let Some(l) = &last {
                params.push(l);
            }
            let mut rows = stmt.query(params.as_slice())?;
            let Some(row) = rows.next()? else {
                return Ok(true);
            };
            match row.get_ref(0)? {
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(t) => t.to_owned(),
                    Err(_) => return Ok(false),
                },
                _ => return Ok(false),
            }
        };
        prefix.push(value.clone());
        let complete = next_keys(c, table, keys, symbol, prefix, out)?;
        prefix.pop();
        if !complete {
            return Ok(false);
        }
        last = Some(value);
    }
}
