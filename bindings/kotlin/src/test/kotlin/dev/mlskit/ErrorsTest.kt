package dev.mlskit

import org.junit.jupiter.api.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/** Hostile and mistimed input reaches Kotlin as typed MlsException subclasses. */
class ErrorsTest {

    @Test
    fun malformedInputIsTyped() {
        makeTrio().use { t ->
            val garbage = listOf(byteArrayOf(), byteArrayOf(0), byteArrayOf(1, 2, 3), ByteArray(64) { 0xFF.toByte() })
            for (bytes in garbage) {
                assertFailsWith<MlsException.MalformedInput>("parseMessage ${bytes.size}") { parseMessage(bytes) }
                assertFailsWith<MlsException.MalformedInput>("processMessage ${bytes.size}") { t.bob.processMessage(bytes) }
                assertFailsWith<MlsException.MalformedInput>("validateKeyPackage ${bytes.size}") { validateKeyPackage(bytes) }
                assertFailsWith<MlsException.MalformedInput>("joinGroup ${bytes.size}") { t.clients[1].joinGroup(bytes) }
            }
            // A truncated real message.
            val msg = t.alice.encrypt(b("hello"), byteArrayOf())
            val truncated = msg.copyOf(msg.size / 2)
            assertFailsWith<MlsException.MalformedInput> { parseMessage(truncated) }
            assertFailsWith<MlsException.MalformedInput> { t.bob.processMessage(truncated) }
            val e = assertFailsWith<MlsException.MalformedInput> { t.bob.processMessage(byteArrayOf(1, 2, 3)) }
            assertTrue(e.reason.isNotEmpty())
            // Nothing changed: the real message still decrypts.
            assertBytes("hello", processApp(t.bob, msg).plaintext)
            assertInSync(t.groups)
        }
    }

    @Test
    fun wrongEpochIsTyped() {
        makeTrio().use { t ->
            val b2 = t.alice.selfUpdate()
            t.alice.mergePendingCommit()
            val b3 = t.alice.selfUpdate()
            t.alice.mergePendingCommit()
            // A commit from the future: sent in epoch 2, bob is still in epoch 1.
            val e = assertFailsWith<MlsException.WrongEpoch> { t.bob.processMessage(b3.commit) }
            assertEquals(2uL, e.messageEpoch)
            assertEquals(1uL, e.groupEpoch)
            assertEquals(1uL, t.bob.epoch())
            // An application message from the future.
            val future = t.alice.encrypt(b("from epoch 3"), byteArrayOf())
            assertFailsWith<MlsException.WrongEpoch> { t.carol.processMessage(future) }
            for (g in listOf(t.bob, t.carol)) {
                processCommit(g, b2.commit)
                processCommit(g, b3.commit)
            }
            // An old commit, re-delivered after the group moved on.
            val old = assertFailsWith<MlsException> { t.bob.processMessage(b2.commit) }
            assertTrue(old is MlsException.WrongEpoch || old is MlsException.DuplicateMessage, "got $old")
            assertBytes("from epoch 3", processApp(t.carol, future).plaintext)
            assertInSync(t.groups)
        }
    }

    @Test
    fun otherTypedErrors() {
        makeTrio().use { t ->
            assertFailsWith<MlsException.NoPendingCommit> { t.alice.mergePendingCommit() }
            t.alice.selfUpdate()
            assertFailsWith<MlsException.PendingCommit> { t.alice.selfUpdate() }
            t.alice.clearPendingCommit()
            assertFailsWith<MlsException.UnknownMember> { t.alice.removeMembers(listOf(9u)) }
            newClient("zed").use { zed ->
                assertFailsWith<MlsException.WrongGroup> {
                    zed.createGroup().use { other -> other.processMessage(t.alice.encrypt(b("x"), byteArrayOf())) }
                }
            }
            assertFailsWith<MlsException> { t.clients[0].createKeyPackages(0u) }
            assertInSync(t.groups)
        }
    }

    @Test
    fun applicationMessageTextPrintsNoPlaintext() {
        makeTrio().use { t ->
            val secret = "PLAINTEXT-Kt7w-never-printed"
            val message = processApp(t.bob, t.alice.encrypt(b(secret), byteArrayOf()))
            assertBytes(secret, message.plaintext)
            // A ByteArray field prints as an array reference, never its bytes.
            assertTrue(secret !in message.toString(), message.toString())
            assertTrue(b(secret).joinToString() !in message.toString(), message.toString())
        }
    }
}
