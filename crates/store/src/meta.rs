//! The `marketdb_meta` table: small facts marketdb records about a file, keyed by name
//! (such as which symbols `demo` wrote, so `demo` recognises its own rows by a marker
//! rather than by their names). An extra table like `source_gaps`: created by every
//! writable open, ignored by cryptoservice.

use rusqlite::{OptionalExtension, params};

use crate::schema::table_exists;
use crate::{AsyncMarketDB, Result};

/// The table's DDL.
pub(crate) const META_DDL: &str = "CREATE TABLE IF NOT EXISTS marketdb_meta (
    key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL
) WITHOUT ROWID;";

impl AsyncMarketDB {
    /// The value recorded under `key`, if any (none in a file marketdb never wrote to).
    pub async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(move |c, _| {
            if !table_exists(c, "marketdb_meta")? {
                return Ok(None);
            }
            Ok(c.query_row(
                "SELECT value FROM marketdb_meta WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    /// Records `value` under `key` (replacing an earlier value), committed at once.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |c, _| {
            c.execute(
                "INSERT INTO marketdb_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
        .await
    }
}
