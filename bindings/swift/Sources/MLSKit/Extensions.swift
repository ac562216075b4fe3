// Thin Swift idioms over the generated MLSKit API. Logic belongs in Rust:
// keep these to naming and a reference store.
import Foundation

/// A store in process memory, kept in Rust: fast, lost when the process ends.
public func MemoryStorage() -> StorageBackend {
    memoryStorage()
}

/// A store in one SQLite file at `path`, created if absent. Use one file per client.
///
/// - Throws: `MlsError.StorageBackend` if the file cannot be opened or is not a database.
public func SqliteStorage(path: String) throws -> StorageBackend {
    try sqliteStorage(path: path)
}

/// A `StorageBackend` written in Swift: a dictionary guarded by a lock.
///
/// `commit` applies a whole batch under the lock, so readers see all of it or
/// none of it. Share one instance between `Client`s to model a restart.
/// Values hold private keys: this class is for tests and as a template for a
/// real (encrypted, persistent) store.
public final class MapStorage: StorageBackend, @unchecked Sendable {
    // @unchecked: `entries` is only touched with `lock` held.
    private let lock = NSLock()
    private var entries: [Data: Data] = [:]

    public init() {}

    public func read(key: Data) throws -> Data? {
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    public func commit(writes: [StorageWrite]) throws {
        lock.lock()
        defer { lock.unlock() }
        for write in writes {
            switch write {
            case let .put(key, value):
                entries[key] = value
            case let .delete(key):
                entries.removeValue(forKey: key)
            }
        }
    }

    /// How many keys are stored.
    public var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return entries.count
    }

    /// A copy of everything stored, to compare states in tests.
    public func snapshot() -> [Data: Data] {
        lock.lock()
        defer { lock.unlock() }
        return entries
    }
}
