// The Kotlin member of the cross-language test (tests/cross_language/PROTOCOL.md),
// with the same commands as tests/cross_language/python/member.py. It lives in the test
// source set so that the Maven build compiles it without shipping it; it has no
// @Test, so JUnit never runs it. Run it as its own JVM through
// bindings/kotlin/cross-member.sh:
//
//     cross-member.sh WIRE NAME COMMAND [ARGS...]
package dev.mlskit.crosslang

import dev.mlskit.Client
import dev.mlskit.GroupOptions
import dev.mlskit.ReceivedMessage
import dev.mlskit.Sender
import dev.mlskit.SqliteStorage
import java.io.File
import kotlin.system.exitProcess

private val GROUP_ID = "cross-language-group".encodeToByteArray()

private fun fail(message: String): Nothing {
    println("FAIL: $message")
    System.out.flush()
    exitProcess(1)
}

private fun ByteArray.hex(): String = joinToString("") { "%02x".format(it.toInt() and 0xff) }

/** A JSON string literal (the values here are plain ASCII, but escape anyway). */
private fun jsonString(s: String): String = buildString {
    append('"')
    for (c in s) {
        when {
            c == '"' -> append("\\\"")
            c == '\\' -> append("\\\\")
            c < ' ' -> append("\\u%04x".format(c.code))
            else -> append(c)
        }
    }
    append('"')
}

/** One member, named [name], whose files are in the folder [wire]. */
private class Member(private val wire: String, private val name: String) {
    private fun path(file: String) = File(wire, file)
    private fun read(file: String): ByteArray = path(file).readBytes()
    private fun write(file: String, data: ByteArray) = path(file).writeBytes(data)
    private fun bytes(text: String) = text.encodeToByteArray()

    fun run(command: String, args: List<String>) {
        val storage = SqliteStorage(path("$name.sqlite").path)
        (storage as AutoCloseable).use {
            Client(storage, bytes(name)).use { client -> run(client, command, args) }
        }
    }

    private fun run(client: Client, command: String, args: List<String>) {
        when (command) {
            "keypackage" -> write("$name.kp", client.createKeyPackages(1u).single())
            "create" -> client.createGroup(GroupOptions(groupId = GROUP_ID)).use { group ->
                val bundle = group.addMembers(args.map { read("$it.kp") })
                group.mergePendingCommit()
                write("welcome.bin", bundle.welcome ?: fail("no welcome"))
                write("commit-create.bin", bundle.commit)
            }
            "join" -> client.joinGroup(read("welcome.bin")).close()
            "send" -> client.group(GROUP_ID).use { group ->
                write("msg-$name.bin", group.encrypt(bytes("hello from $name"), bytes(name)))
            }
            "receive" -> client.group(GROUP_ID).use { group ->
                for (sender in args) {
                    val received = group.processMessage(read("msg-$sender.bin"))
                    val message = (received as? ReceivedMessage.Application)?.message
                        ?: run { received.destroy(); fail("expected an application message from $sender") }
                    if (!message.plaintext.contentEquals(bytes("hello from $sender")) ||
                        !message.aad.contentEquals(bytes(sender))
                    ) {
                        fail("wrong content from $sender")
                    }
                    val from = message.sender
                    if (from !is Sender.Member || !from.identity.contentEquals(bytes(sender))) {
                        fail("wrong sender for $sender")
                    }
                    println("$name read '${message.plaintext.decodeToString()}'")
                }
            }
            "update" -> client.group(GROUP_ID).use { group ->
                write("commit-update.bin", group.selfUpdate().commit)
                group.mergePendingCommit()
            }
            "remove" -> client.group(GROUP_ID).use { group ->
                val identity = args.firstOrNull() ?: fail("remove needs an identity")
                val index = group.members().firstOrNull { it.identity.contentEquals(bytes(identity)) }?.index
                    ?: fail("no member $identity")
                write("commit-remove.bin", group.removeMembers(listOf(index)).commit)
                group.mergePendingCommit()
            }
            "apply" -> client.group(GROUP_ID).use { group ->
                val file = args.firstOrNull() ?: fail("apply needs a file")
                val received = group.processMessage(read(file))
                if (received !is ReceivedMessage.Commit) {
                    received.destroy()
                    fail("expected a commit")
                }
                val expectRemoved = args.drop(1) == listOf("removed")
                received.commit.use { staged ->
                    val removed = staged.info().removesUs
                    if (removed != expectRemoved) fail("removes_us is $removed")
                    staged.merge()
                }
                if (group.isActive() == expectRemoved) fail("activity does not match the removal")
            }
            "report" -> client.group(GROUP_ID).use { group ->
                val members = group.members().map { "${it.index}:${it.identity.decodeToString()}" }.sorted()
                val exporter = group.exportSecret("cross-language", byteArrayOf(), 32u).hex()
                val json = "{\"epoch\": ${group.epoch()}" +
                    ", \"members\": [${members.joinToString(", ") { jsonString(it) }}]" +
                    ", \"exporter\": ${jsonString(exporter)}" +
                    ", \"authenticator\": ${jsonString(group.epochAuthenticator().hex())}}"
                write("report-$name.json", bytes(json))
            }
            else -> fail("unknown command $command")
        }
    }
}

fun main(args: Array<String>) {
    if (args.size < 3) fail("usage: WIRE NAME COMMAND [ARGS...]")
    val (wire, name, command) = args
    try {
        Member(wire, name).run(command, args.drop(3))
    } catch (e: Exception) {
        fail("$command threw ${e::class.qualifiedName}: ${e.message}")
    }
    println("$name: $command done")
}
