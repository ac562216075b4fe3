package dev.mlskit

import org.junit.jupiter.api.Test
import java.util.Collections
import java.util.logging.Handler
import java.util.logging.Level
import java.util.logging.LogRecord
import kotlin.test.assertTrue

/** MLSKit's log lines reach a Kotlin Logger and java.util.logging, and none holds a secret. */
class LoggingTest {
    private class Collecting : Logger {
        val lines: MutableList<Triple<LogLevel, String, String>> = Collections.synchronizedList(mutableListOf())
        override fun log(level: LogLevel, target: String, message: String) {
            lines.add(Triple(level, target, message))
        }
    }

    private fun forms(secret: ByteArray): List<String> {
        val head = secret.copyOf(minOf(12, secret.size))
        return listOf(
            secret.decodeToString(),
            head.joinToString("") { "%02x".format(it) },
            head.joinToString(", ") { (it.toInt() and 0xff).toString() },
        )
    }

    @Test
    fun linesArriveAtTraceAndHoldNoSecret() {
        val logger = Collecting()
        setLogger(logger, LogLevel.TRACE)
        val plaintext = b("kotlin log scan Rw3p")
        val psk = ByteArray(32) { 0x5e }
        try {
            makeTrio().use { t ->
                for (c in t.clients) c.storeExternalPsk(b("psk"), psk)
                val p = t.alice.proposeExternalPsk(b("psk"), ProposalMode.BY_REFERENCE)
                processProposal(t.bob, p.message)
                processProposal(t.carol, p.message)
                commitAndDeliver(t.alice, t.alice.commitPendingProposals(), listOf(t.bob, t.carol))
                val sent = t.alice.encrypt(plaintext, byteArrayOf())
                assertBytes(plaintext, processApp(t.bob, sent).plaintext)
                runCatching { t.bob.processMessage(sent) } // a replay: logged, refused
                val exported = t.alice.exportSecret("scan", byteArrayOf(), 32u)
                val lines = logger.lines.toList()
                assertTrue(lines.size > 20, "${lines.size} lines")
                assertTrue(lines.any { it.second.startsWith("openmls") })
                assertTrue(lines.any { it.second.startsWith("mlskit") && it.third.contains("already processed") })
                for ((level, target, message) in lines) {
                    for (secret in listOf(plaintext, psk, exported)) {
                        for (form in forms(secret)) {
                            assertTrue(!message.contains(form), "$level $target holds a secret: $message")
                        }
                    }
                }
            }
        } finally {
            setLogger(null, LogLevel.ERROR)
        }
    }

    @Test
    fun javaUtilLoggerForwardsUnderMlskit() {
        val records: MutableList<LogRecord> = Collections.synchronizedList(mutableListOf())
        val handler = object : Handler() {
            override fun publish(record: LogRecord) { records.add(record) }
            override fun flush() {}
            override fun close() {}
        }
        val root = java.util.logging.Logger.getLogger("mlskit")
        root.addHandler(handler)
        root.level = Level.ALL
        JavaUtilLogger.install(LogLevel.DEBUG)
        try {
            makeTrio().use { t ->
                val sent = t.alice.encrypt(b("hi"), byteArrayOf())
                processApp(t.bob, sent)
                runCatching { t.bob.processMessage(sent) }
            }
            assertTrue(records.any { it.loggerName.startsWith("mlskit.mlskit") && it.level == Level.FINE && it.message.contains("already processed") }, "got ${records.map { it.loggerName }}")
            assertTrue(records.none { it.level == Level.FINEST }, "the DEBUG filter lets no TRACE through")
        } finally {
            setLogger(null, LogLevel.ERROR)
            root.removeHandler(handler)
        }
    }
}
