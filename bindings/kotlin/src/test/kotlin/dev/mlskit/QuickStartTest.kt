package dev.mlskit

import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import kotlin.test.assertEquals

/** The README quick start, kept compiling and true. */
class QuickStartTest {
    @Test
    fun readmeQuickStart(@TempDir filesDir: Path) {
        var received = ""
        val options = ClientOptions(customProposalTypes = listOf(CUSTOM_PROPOSAL_TYPE))
        Client(SqliteStorage("$filesDir/alice.db"), "alice".encodeToByteArray(), options).use { alice ->
            Client(MemoryStorage(), "bob".encodeToByteArray(), options).use { bob ->
                val keyPackage = bob.createKeyPackages(1u).single()
                alice.createGroup().use { group ->
                    val bundle = group.addMembers(listOf(keyPackage))
                    group.mergePendingCommit()
                    bob.joinGroup(bundle.welcome!!).use { bobGroup ->
                        val wire = group.encrypt("hi".encodeToByteArray(), "header".encodeToByteArray())
                        val app = bobGroup.processMessage(wire).applicationMessage!!
                        received = app.plaintext.decodeToString()
                    }
                }
            }
        }
        assertEquals("hi", received)
    }
}
