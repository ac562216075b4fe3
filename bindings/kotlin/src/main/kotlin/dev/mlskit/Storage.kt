// Kotlin idioms over the generated MLSKit bindings. Plain Kotlin only (no
// java.* beyond what Android has), so this file also goes into the AAR.
@file:Suppress("FunctionName")

package dev.mlskit

/**
 * A store in process memory, implemented in Rust: fast, lost when the
 * process ends. Same as [memoryStorage].
 */
fun MemoryStorage(): StorageBackend = memoryStorage()

/**
 * A store in one SQLite file at [path], created if absent (one
 * transaction per batch; deleted values overwritten). Use one file per client.
 * Same as [sqliteStorage].
 *
 * @throws MlsException.StorageBackend if the file cannot be opened or is not a database.
 */
fun SqliteStorage(path: String): StorageBackend = sqliteStorage(path)

/**
 * A [StorageBackend] written in Kotlin over an immutable map.
 *
 * [commit] is atomic: it builds a new map from the current one plus the batch
 * and publishes it in one step (copy-on-write, under a lock), so a failed or
 * concurrent batch never leaves a half-applied state and [read] never blocks.
 * A new [Client] on the same MapStorage, after the old one is dropped, simulates a restart.
 *
 * Byte arrays passed in or out are owned by the store; callers must not
 * mutate them.
 */
class MapStorage private constructor(
    @Volatile private var data: Map<Key, ByteArray>,
) : StorageBackend {
    /** An empty store. */
    constructor() : this(emptyMap())

    private val lock = Any()

    @Volatile
    private var commitCount: Long = 0

    override fun read(key: ByteArray): ByteArray? = data[Key(key)]

    override fun commit(writes: List<StorageWrite>) {
        synchronized(lock) {
            val next = HashMap(data)
            for (w in writes) {
                when (w) {
                    is StorageWrite.Put -> next[Key(w.key)] = w.value
                    is StorageWrite.Delete -> next.remove(Key(w.key))
                }
            }
            data = next
            commitCount++
        }
    }

    /** How many keys are stored. */
    val size: Int get() = data.size

    /** How many batches were committed so far. */
    val commits: Long get() = commitCount

    /** An independent copy of the current contents (cheap: maps are never mutated in place). */
    fun snapshot(): MapStorage = MapStorage(data)

    /** Whether both stores hold the same keys with the same values. */
    fun contentEquals(other: MapStorage): Boolean {
        val a = data
        val b = other.data
        return a.size == b.size && a.all { (k, v) -> b[k]?.contentEquals(v) == true }
    }

    /** A byte-array map key compared by content. */
    private class Key(val bytes: ByteArray) {
        private val hash = bytes.contentHashCode()
        override fun equals(other: Any?): Boolean = other is Key && bytes.contentEquals(other.bytes)
        override fun hashCode(): Int = hash
    }
}
