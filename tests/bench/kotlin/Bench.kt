// The Kotlin/JVM benchmark harness, layer `kotlin-map` (tests/bench/README.md is
// the spec: scenario, op names, command line and JSON-lines output). It lives in
// the test source set so that the Maven build compiles it without shipping it;
// it has no @Test, so JUnit never runs it. Run it as its own JVM through
// bindings/kotlin/bench.sh:
//
//     bench.sh --layer kotlin-map --sizes 2,10,100 --iterations K [--ops add,process_add,join]
//
// stdout gets one JSON object per op and size; progress and errors go to stderr.
// A wrong result (a plaintext that differs, a commit that isn't one, epochs
// that disagree) exits with status 1, a bad command line with status 2.
package dev.mlskit.bench

import dev.mlskit.Client
import dev.mlskit.CommitBundle
import dev.mlskit.Group
import dev.mlskit.MemoryStorage
import dev.mlskit.ReceivedMessage
import dev.mlskit.StorageBackend
import dev.mlskit.StorageWrite
import java.util.Locale
import kotlin.random.Random
import kotlin.system.exitProcess

private const val LAYER = "kotlin-map"

/** Every op, in the order one iteration runs them. */
private val ALL_OPS = listOf(
    "create", "add", "process_add", "join", "remove", "process_remove",
    "update", "process_update", "msg_100", "msg_1k", "msg_64k", "load",
)

private val PAYLOAD_SIZES = mapOf("msg_100" to 100, "msg_1k" to 1024, "msg_64k" to 65536)

/** The ops that add J and remove it again, so the group is back to N members. */
private val CYCLE_OPS = setOf("add", "process_add", "join", "remove", "process_remove")

private const val USAGE =
    "usage: bench.sh --layer $LAYER --sizes 2,10,100 --iterations K [--ops op1,op2]"

private class Failure(message: String) : Exception(message)

private fun fail(message: String): Nothing = throw Failure(message)

private fun verify(condition: Boolean, message: () -> String) {
    if (!condition) fail(message())
}

private fun b(s: String): ByteArray = s.encodeToByteArray()

/** Storage counts: `read` calls, `commit` calls, bytes committed. */
private data class Counts(val reads: Long, val commits: Long, val bytes: Long) {
    operator fun plus(o: Counts) = Counts(reads + o.reads, commits + o.commits, bytes + o.bytes)
    operator fun minus(o: Counts) = Counts(reads - o.reads, commits - o.commits, bytes - o.bytes)

    companion object {
        val ZERO = Counts(0, 0, 0)
    }
}

/**
 * A [StorageBackend] over a HashMap that counts its callbacks: `read` calls,
 * `commit` calls, and bytes committed (key + value of every put, key of every
 * delete). One lock guards the map and the counters: [commit] applies the
 * whole batch in place under it, so no [read] sees half a batch (and a
 * HashMap put or remove does not fail halfway).
 */
private class CountingStorage : StorageBackend {
    private val lock = Any()
    private val data = HashMap<Key, ByteArray>()
    private var reads = 0L
    private var commits = 0L
    private var bytes = 0L

    override fun read(key: ByteArray): ByteArray? = synchronized(lock) {
        reads++
        data[Key(key)]
    }

    override fun commit(writes: List<StorageWrite>) = synchronized(lock) {
        commits++
        for (w in writes) {
            when (w) {
                is StorageWrite.Put -> {
                    data[Key(w.key)] = w.value
                    bytes += w.key.size + w.value.size
                }
                is StorageWrite.Delete -> {
                    data.remove(Key(w.key))
                    bytes += w.key.size
                }
            }
        }
    }

    fun counts(): Counts = synchronized(lock) { Counts(reads, commits, bytes) }

    /** A byte-array map key compared by content. */
    private class Key(val bytes: ByteArray) {
        private val hash = bytes.contentHashCode()
        override fun equals(other: Any?): Boolean = other is Key && bytes.contentEquals(other.bytes)
        override fun hashCode(): Int = hash
    }
}

/** The samples of one op at one size, and the storage counts summed over them. */
private class Series(val op: String, val size: Int) {
    val samplesUs = ArrayList<Double>()
    var counts = Counts.ZERO

    fun json(): String {
        val n = samplesUs.size.toDouble()
        return "{\"layer\": \"$LAYER\", \"op\": \"$op\", \"size\": $size" +
            ", \"samples_us\": [${samplesUs.joinToString(", ") { num(it) }}]" +
            ", \"reads\": ${num(counts.reads / n)}, \"commits\": ${num(counts.commits / n)}" +
            ", \"bytes_written\": ${num(counts.bytes / n)}}"
    }

    private fun num(d: Double): String {
        val s = String.format(Locale.ROOT, "%.3f", d).trimEnd('0')
        return if (s.endsWith('.')) s + "0" else s
    }
}

/**
 * Times ops and counts their storage callbacks; [measured] is false during the
 * warm-up iteration, whose samples are dropped.
 */
private class Recorder(private val series: Map<String, Series>, private val measured: Boolean) {
    /** Runs [block] as one sample of [op], counting the callbacks of [stores]. */
    inline fun <T> time(op: String, stores: List<CountingStorage>, block: () -> T): T {
        val before = stores.fold(Counts.ZERO) { acc, s -> acc + s.counts() }
        val t0 = System.nanoTime()
        val result = block()
        val t1 = System.nanoTime()
        val after = stores.fold(Counts.ZERO) { acc, s -> acc + s.counts() }
        val s = series[op]
        if (measured && s != null) {
            s.samplesUs.add((t1 - t0) / 1000.0)
            s.counts += after - before
        }
        return result
    }
}

/**
 * A group of [size] members: A (creator, leaf 0) and B (leaf 1) act, the
 * other size - 2 are fillers whose key packages A adds in the setup commit.
 */
private class Scenario(private val size: Int, private val ops: Set<String>) : AutoCloseable {
    private val storeA = CountingStorage()
    private val storeB = CountingStorage()
    private var clientA = Client(storeA, b("A"))
    private val clientB = Client(storeB, b("B"))
    private var groupA: Group
    private val groupB: Group
    private val groupId: ByteArray
    private val random = Random(size)
    private val payloads = PAYLOAD_SIZES.mapValues { (_, n) -> random.nextBytes(n) }

    init {
        val keyPackages = ArrayList<ByteArray>(size - 1)
        keyPackages += clientB.createKeyPackages(1u).single()
        for (i in 0 until size - 2) {
            val storage = MemoryStorage()
            Client(storage, b("filler-$i")).use { keyPackages += it.createKeyPackages(1u).single() }
            (storage as? AutoCloseable)?.close()
        }
        groupA = clientA.createGroup()
        groupId = groupA.id()
        val bundle = groupA.addMembers(keyPackages)
        groupA.mergePendingCommit()
        groupB = clientB.joinGroup(bundle.welcome ?: fail("setup: no Welcome"))
        checkInSync("setup")
        verify(groupB.ownIndex() == 1u) { "setup: B is at leaf ${groupB.ownIndex()}" }
    }

    /** One iteration: every requested op once, and whatever they depend on. */
    fun iterate(rec: Recorder, tag: String) {
        if ("create" in ops) create(rec, tag)
        if (ops.any { it in CYCLE_OPS }) addAndRemove(rec, tag)
        if ("update" in ops || "process_update" in ops) {
            val up = rec.time("update", listOf(storeA)) { groupA.selfUpdate().also { groupA.mergePendingCommit() } }
            processCommit(rec, "process_update", up)
        }
        for ((op, payload) in payloads) {
            if (op in ops) message(rec, op, payload)
        }
    }

    /** Restarts A (a new client takes its store over); run after every other iteration. */
    fun restart(rec: Recorder, tag: String) {
        if ("load" in ops) load(rec, tag)
    }

    private fun create(rec: Recorder, tag: String) {
        val storage = CountingStorage()
        Client(storage, b("C-$tag")).use { client ->
            rec.time("create", listOf(storage)) { client.createGroup() }.use { group ->
                verify(group.epoch() == 0uL) { "create: new group at epoch ${group.epoch()}" }
            }
        }
    }

    /** A adds J (B follows, J joins), then removes J (B follows). */
    private fun addAndRemove(rec: Recorder, tag: String) {
        val storeJ = CountingStorage()
        val identity = b("J-$tag")
        Client(storeJ, identity).use { clientJ ->
            val kp = clientJ.createKeyPackages(1u).single()
            val add = rec.time("add", listOf(storeA)) {
                groupA.addMembers(listOf(kp)).also { groupA.mergePendingCommit() }
            }
            processCommit(rec, "process_add", add)
            if ("join" in ops) {
                val welcome = add.welcome ?: fail("add: no Welcome")
                rec.time("join", listOf(storeJ)) { clientJ.joinGroup(welcome) }.use { groupJ ->
                    verify(groupJ.epoch() == groupA.epoch()) { "join: J at epoch ${groupJ.epoch()}, A at ${groupA.epoch()}" }
                }
            }
            val members = groupA.members()
            verify(members.size == size + 1) { "add: ${members.size} members, expected ${size + 1}" }
            val leaf = members.single { it.identity.contentEquals(identity) }.index
            val remove = rec.time("remove", listOf(storeA)) {
                groupA.removeMembers(listOf(leaf)).also { groupA.mergePendingCommit() }
            }
            processCommit(rec, "process_remove", remove)
        }
    }

    /** B processes [bundle]'s commit and merges it, as one sample of [op]. */
    private fun processCommit(rec: Recorder, op: String, bundle: CommitBundle) {
        val received = rec.time(op, listOf(storeB)) {
            groupB.processMessage(bundle.commit).also { (it as? ReceivedMessage.Commit)?.commit?.merge() }
        }
        try {
            verify(received is ReceivedMessage.Commit) { "$op: process_message returned $received, not a commit" }
        } finally {
            received.destroy()
        }
        checkInSync(op)
    }

    private fun message(rec: Recorder, op: String, payload: ByteArray) {
        val received = rec.time(op, listOf(storeA, storeB)) { groupB.processMessage(groupA.encrypt(payload)) }
        try {
            val app = (received as? ReceivedMessage.Application)?.message
                ?: fail("$op: process_message returned $received, not an application message")
            verify(app.plaintext.contentEquals(payload)) { "$op: decrypted plaintext differs from the sent one" }
        } finally {
            received.destroy()
        }
    }

    /** The restart: a new client over A's storage loads the group. */
    private fun load(rec: Recorder, tag: String) {
        val (client, group, epoch) = rec.time("load", listOf(storeA)) {
            val client = Client(storeA, b("A"))
            val group = client.group(groupId)
            Triple(client, group, group.epoch())
        }
        verify(epoch == groupA.epoch()) { "load ($tag): loaded epoch $epoch, A is at ${groupA.epoch()}" }
        // The restarted client took the store over: it is A from now on.
        groupA.close()
        clientA.close()
        clientA = client
        groupA = group
    }

    private fun checkInSync(op: String) {
        val (ea, eb) = groupA.epoch() to groupB.epoch()
        verify(ea == eb) { "$op: A at epoch $ea, B at $eb" }
        verify(groupA.epochAuthenticator().contentEquals(groupB.epochAuthenticator())) {
            "$op: A and B disagree on the epoch authenticator at epoch $ea"
        }
    }

    override fun close() {
        groupA.close()
        groupB.close()
        clientA.close()
        clientB.close()
    }
}

private class Options(val sizes: List<Int>, val iterations: Int, val ops: List<String>)

private fun usage(message: String): Nothing {
    System.err.println("bench: $message\n$USAGE\nops: ${ALL_OPS.joinToString(",")}")
    exitProcess(2)
}

private fun parse(args: Array<String>): Options {
    var layer: String? = null
    var sizes: List<Int>? = null
    var iterations: Int? = null
    var ops = ALL_OPS
    var i = 0
    while (i < args.size) {
        val name = args[i]
        if (name == "-h" || name == "--help") {
            println("$USAGE\nops: ${ALL_OPS.joinToString(",")}")
            exitProcess(0)
        }
        val value = args.getOrNull(i + 1) ?: usage("$name needs a value")
        when (name) {
            "--layer" -> layer = value
            "--sizes" -> sizes = value.split(',').map { it.trim().toIntOrNull() ?: usage("bad size '$it'") }
            "--iterations" -> iterations = value.toIntOrNull() ?: usage("bad iteration count '$value'")
            "--ops" -> ops = value.split(',').map { it.trim() }.onEach {
                if (it !in ALL_OPS) usage("unknown op '$it'")
            }
            else -> usage("unknown argument $name")
        }
        i += 2
    }
    if (layer != LAYER) usage("--layer must be $LAYER (got ${layer ?: "none"})")
    val s = sizes ?: usage("--sizes is required")
    if (s.isEmpty() || s.any { it < 2 }) usage("every size must be at least 2 (A and B)")
    val k = iterations ?: usage("--iterations is required")
    if (k < 1) usage("--iterations must be at least 1")
    // In the order of ALL_OPS, whatever order they were given in.
    return Options(s, k, ALL_OPS.filter { it in ops })
}

/** Unmeasured iterations run for at least this long before each size's samples. */
private const val WARMUP_NANOS = 2_000_000_000L

private fun emit(series: Series) {
    println(series.json())
    System.out.flush()
}

private fun run(options: Options) {
    // `create` does not depend on the group size: it runs with the first size's
    // iterations (warm-up included) and is reported once, at size 1.
    val create = if ("create" in options.ops) Series("create", 1) else null
    for ((index, size) in options.sizes.withIndex()) {
        val t0 = System.nanoTime()
        val ops = options.ops.filter { it != "create" || index == 0 }.toSet()
        val series = ops.associateWith { if (it == "create") create!! else Series(it, size) }
        Scenario(size, ops).use { scenario ->
            val setup = (System.nanoTime() - t0) / 1e9
            System.gc()
            // The JIT compiles hot code only after many calls: warm up for a while
            // (at least one iteration) so that the samples measure compiled code.
            val warmStart = System.nanoTime()
            var warmups = 0
            do {
                scenario.iterate(Recorder(series, measured = false), "$size-warmup-${warmups++}")
            } while (System.nanoTime() - warmStart < WARMUP_NANOS)
            for (it in 1..options.iterations) scenario.iterate(Recorder(series, measured = true), "$size-$it")
            // Restarts last, so no other operation is measured on a just-restarted client's cold cache.
            scenario.restart(Recorder(series, measured = false), "$size-restart-warmup")
            for (it in 1..options.iterations) scenario.restart(Recorder(series, measured = true), "$size-restart-$it")
            System.err.println(
                "bench: $LAYER size $size: setup %.1f s, %d iterations + warm-up %.1f s"
                    .format(Locale.ROOT, setup, options.iterations, (System.nanoTime() - t0) / 1e9 - setup),
            )
        }
        if (index == 0 && create != null) emit(create)
        options.ops.filter { it != "create" }.forEach { emit(series.getValue(it)) }
    }
}

fun main(args: Array<String>) {
    val options = parse(args)
    try {
        run(options)
    } catch (e: Failure) {
        System.err.println("bench: FAIL: ${e.message}")
        exitProcess(1)
    } catch (e: Exception) {
        System.err.println("bench: FAIL: ${e::class.qualifiedName}: ${e.message}")
        e.printStackTrace()
        exitProcess(1)
    }
}
