//! A backend in one SQLite file: one transaction per batch, one live opener
//! at a time, deleted and replaced values overwritten at once.
//!
//! The journal is a rollback journal cut to zero bytes at the end of every
//! transaction (`journal_mode=TRUNCATE`), not a WAL: a WAL keeps the frames
//! of replaced pages (old message keys, deleted PSKs) in a file until the next
//! checkpoint, so forward secrecy would wait for it. The price is one more
//! sync per batch.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Backend, BackendError, Value, Write};

/// Why a SQLite store could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another live store (this process or another) has the file open.
    InUse { path: String },
    /// The file cannot be opened or is not a database.
    Failed(BackendError),
}

/// A key-value table in a SQLite database file.
pub struct SqliteBackend {
    conn: Mutex<Connection>,
    /// Held (an exclusive OS file lock on `<path>-lock`) while this store lives.
    _lock: File,
}

/// Opens `path` for reading and writing, creating it readable by its owner only.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

impl SqliteBackend {
    /// Opens (or creates) the database at `path`. A second open of the same
    /// file while this store lives fails at once with `OpenError::InUse`:
    /// two live clients on one store would reuse message keys.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let failed = |e: &dyn std::fmt::Display| OpenError::Failed(BackendError::new(e));
        let mut lock_path = PathBuf::from(path).into_os_string();
        lock_path.push("-lock");
        let lock = create_private(Path::new(&lock_path)).map_err(|e| failed(&e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::InUse {
                    path: path.display().to_string(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(failed(&e)),
        }
        // The database (and so its journal, which SQLite creates
        // with the database's permissions) is private to the owner.
        create_private(path).map_err(|e| failed(&e))?;
        let conn = Connection::open(path).map_err(|e| failed(&e))?;
        // Deleted and replaced values are overwritten in the file, and the
        // journal, which holds the old pages during a transaction, is cut to
        // nothing when it ends. A store last written in WAL mode is folded
        // back into the database by this switch.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(|e| failed(&e))?;
        conn.pragma_update(None, "journal_mode", "TRUNCATE")
            .map_err(|e| failed(&e))?;
        // FULL makes a committed batch durable against power loss, not only crashes.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| failed(&e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| failed(&e))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS mlskit_kv (key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;",
        )
        .map_err(|e| failed(&e))?;
        Ok(Self {
            conn: Mutex::new(conn),
            _lock: lock,
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, BackendError> {
        self.conn
            .lock()
            .map_err(|_| BackendError::new("sqlite connection lock poisoned"))
    }
}

impl Backend for SqliteBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT value FROM mlskit_kv WHERE key = ?1")
            .map_err(BackendError::new)?;
        stmt.query_row(params![key], |row| row.get::<_, Vec<u8>>(0))
            .optional()
            .map(|v| v.map(Value::new))
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
                    Write::Put { key, value } => put.execute(params![key, value.as_slice()]),
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
                    value: b"1".to_vec().into(),
                },
                Write::Put {
                    key: b"b".to_vec(),
                    value: b"2".to_vec().into(),
                },
            ])
            .unwrap();
        store
            .commit(vec![Write::Delete { key: b"b".to_vec() }])
            .unwrap();
        drop(store);

        let store = SqliteBackend::open(&path).unwrap();
        assert_eq!(
            store.read(b"a").unwrap().map(|v| v.to_vec()),
            Some(b"1".to_vec())
        );
        assert_eq!(store.read(b"b").unwrap().map(|v| v.to_vec()), None);

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
                    value: b"3".to_vec().into(),
                },
                Write::Put {
                    key: b"z".to_vec(),
                    value: b"4".to_vec().into(),
                },
            ])
            .unwrap_err();
        assert!(err.reason.contains("refused"));
        assert_eq!(store.read(b"c").unwrap().map(|v| v.to_vec()), None);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![0x42; 4096]).unwrap();
        assert!(matches!(
            SqliteBackend::open(&path),
            Err(OpenError::Failed(_))
        ));
    }

    #[test]
    fn a_second_open_while_the_first_lives_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let first = SqliteBackend::open(&path).unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            SqliteBackend::open(&path),
            Err(OpenError::InUse { .. })
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        drop(first);
        SqliteBackend::open(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteBackend::open(&path).unwrap();
        store
            .commit(vec![Write::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec().into(),
            }])
            .unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{:?}", entry.file_name());
        }
    }
}
