//! A backend in one SQLite file: WAL journal, one transaction per batch.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Backend, BackendError, Write};

/// A key-value table in a SQLite database file.
pub struct SqliteBackend {
    conn: Mutex<Connection>,
}

impl SqliteBackend {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let conn = Connection::open(path).map_err(BackendError::new)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(BackendError::new)?;
        // FULL makes a committed batch durable against power loss, not only crashes.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(BackendError::new)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(BackendError::new)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS mlskit_kv (key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;",
        )
        .map_err(BackendError::new)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, BackendError> {
        self.conn
            .lock()
            .map_err(|_| BackendError::new("sqlite connection lock poisoned"))
    }
}

impl Backend for SqliteBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT value FROM mlskit_kv WHERE key = ?1")
            .map_err(BackendError::new)?;
        stmt.query_row(params![key], |row| row.get(0))
            .optional()
            .map_err(BackendError::new)
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(BackendError::new)?;
        {
            let mut put = tx
                .prepare_cached("INSERT OR REPLACE INTO mlskit_kv (key, value) VALUES (?1, ?2)")
                .map_err(BackendError::new)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM mlskit_kv WHERE key = ?1")
                .map_err(BackendError::new)?;
            for write in &batch {
                match write {
                    Write::Put { key, value } => put.execute(params![key, value]),
                    Write::Delete { key } => delete.execute(params![key]),
                }
                .map_err(BackendError::new)?;
            }
        }
        // Dropping `tx` on an error above rolls the whole batch back.
        tx.commit().map_err(BackendError::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_persist_across_reopen_and_a_failed_batch_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteBackend::open(&path).unwrap();
        store
            .commit(vec![
                Write::Put {
                    key: b"a".to_vec(),
                    value: b"1".to_vec(),
                },
                Write::Put {
                    key: b"b".to_vec(),
                    value: b"2".to_vec(),
                },
            ])
            .unwrap();
        store
            .commit(vec![Write::Delete { key: b"b".to_vec() }])
            .unwrap();
        drop(store);

        let store = SqliteBackend::open(&path).unwrap();
        assert_eq!(store.read(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.read(b"b").unwrap(), None);

        // Make the second statement of a batch fail: the first must not stick.
        store
            .conn()
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON mlskit_kv WHEN NEW.key = x'7a' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let err = store
            .commit(vec![
                Write::Put {
                    key: b"c".to_vec(),
                    value: b"3".to_vec(),
                },
                Write::Put {
                    key: b"z".to_vec(),
                    value: b"4".to_vec(),
                },
            ])
            .unwrap_err();
        assert!(err.reason.contains("refused"));
        assert_eq!(store.read(b"c").unwrap(), None);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![0x42; 4096]).unwrap();
        assert!(SqliteBackend::open(&path).is_err());
    }
}
