package dev.mlskit

import org.junit.jupiter.api.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** The three-member scenario of the Python and Rust suites, through the Kotlin API. */
class ScenarioTest {

    @Test
    fun clientIdentityKeyPackagesAndWelcome() {
        newClient("alice").use { alice ->
            newClient("bob").use { bob ->
                assertBytes("alice", alice.identity())
                assertEquals(32, alice.signaturePublicKey().size)
                assertEquals(Ciphersuite.X25519_AES128GCM_ED25519, supportedCiphersuites().first())
                assertEquals(listOf<UShort>(1u, 2u, 3u), supportedCiphersuites().map { ciphersuiteCode(it) })

                val kps = bob.createKeyPackages(2u)
                assertEquals(2, kps.size)
                val info = validateKeyPackage(kps[0])
                assertBytes("bob", info.identity)
                assertBytes(bob.signaturePublicKey(), info.signatureKey)
                assertFalse(info.lastResort)
                assertEquals(2, bob.keyPackages().size)
                assertEquals(MessageKind.KEY_PACKAGE, parseMessage(kps[0]).kind)

                alice.createGroup().use { ga ->
                    assertEquals(0uL, ga.epoch())
                    val bundle = ga.addMembers(listOf(kps[0]))
                    assertEquals(1uL, assertNotNull(ga.pendingCommit()).newEpoch)
                    ga.mergePendingCommit()
                    val welcome = assertNotNull(bundle.welcome)
                    assertEquals(MessageKind.WELCOME, parseMessage(welcome).kind)
                    val wi = bob.inspectWelcome(welcome)
                    assertContentEquals(ga.id(), wi.groupId)
                    assertEquals(1u, wi.ownIndex)
                    assertEquals(listOf("alice", "bob"), wi.members.map { it.identity.decodeToString() })
                    bob.joinGroup(welcome).use { gb ->
                        assertEquals(1uL, gb.epoch())
                        assertEquals(1u, gb.ownIndex())
                        // The used key package is consumed, the other stays.
                        assertEquals(1, bob.keyPackages().size)
                        assertInSync(listOf(ga, gb))
                        // Its key package is consumed, so the same Welcome can't be used twice.
                        assertFailsWith<MlsException.NoMatchingKeyPackage> { bob.joinGroup(welcome) }
                    }
                }
            }
        }
    }

    @Test
    fun applicationMessagesBothWaysWithAad() {
        makeTrio().use { t ->
            val m1 = t.alice.encrypt(b("hello bob"), b("header-1"))
            val meta = parseMessage(m1)
            assertEquals(MessageKind.PRIVATE_MESSAGE, meta.kind)
            assertEquals(ContentType.APPLICATION, meta.contentType)
            assertEquals(1uL, meta.epoch)
            assertContentEquals(t.alice.id(), meta.groupId)

            val a = processApp(t.bob, m1)
            assertBytes("hello bob", a.plaintext)
            assertBytes("header-1", a.aad)
            assertEquals(1uL, a.epoch)
            assertMemberSender(0u, "alice", a.sender)

            val m2 = t.bob.encrypt(b("hello alice"), b("header-2"))
            val r = processApp(t.alice, m2)
            assertBytes("hello alice", r.plaintext)
            assertBytes("header-2", r.aad)
            assertMemberSender(1u, "bob", r.sender)
            assertBytes("hello alice", processApp(t.carol, m2).plaintext)

            // aad defaults to empty.
            val noAad = processApp(t.bob, t.carol.encrypt(b("no aad given")))
            assertBytes("no aad given", noAad.plaintext)
            assertEquals(0, noAad.aad.size)
            processApp(t.alice, t.carol.encrypt(b("no aad given")))

            val empty = processApp(t.alice, t.carol.encrypt(byteArrayOf(), byteArrayOf()))
            assertEquals(0, empty.plaintext.size)
            assertEquals(0, empty.aad.size)

            // The sender's own message echoed back by the Delivery Service.
            assertIs<ReceivedMessage.OwnMessage>(t.alice.processMessage(m1))
            // A re-delivered message is refused and changes nothing.
            assertFailsWith<MlsException.DuplicateMessage> { t.bob.processMessage(m1) }
            // A message of the previous epoch still decrypts after a commit.
            val late = t.carol.encrypt(b("late"), byteArrayOf())
            commitAndDeliver(t.alice, t.alice.selfUpdate(), listOf(t.bob, t.carol))
            val lateApp = processApp(t.bob, late)
            assertBytes("late", lateApp.plaintext)
            assertEquals(1uL, lateApp.epoch)
        }
    }

    @Test
    fun addRemoveSelfUpdateLeave() {
        makeTrio().use { t ->
            assertEquals(listOf(0u, 1u, 2u), t.groups.map { it.ownIndex() })
            assertTrue(t.groups.all { it.isActive() })

            // self-update by carol
            val up = t.carol.selfUpdate()
            assertNull(up.welcome)
            val pending = assertNotNull(t.carol.pendingCommit())
            assertTrue(pending.hasPath)
            assertEquals(2uL, pending.newEpoch)
            // The staged commit's messages are kept with it, to send again after a crash.
            assertContentEquals(up.commit, assertNotNull(t.carol.pendingCommitBundle()).commit)
            t.carol.mergePendingCommit()
            assertNull(t.carol.pendingCommit())
            assertNull(t.carol.pendingCommitBundle())
            for (g in listOf(t.alice, t.bob)) {
                val info = processCommit(g, up.commit)
                assertMemberSender(2u, "carol", info.sender)
                assertTrue(info.hasPath && info.adds.isEmpty() && info.removes.isEmpty() && !info.removesUs)
            }
            assertInSync(t.groups)

            // bob adds dave
            newClient("dave").use { dave ->
                val add = t.bob.addMembers(dave.createKeyPackages(1u))
                commitAndDeliver(t.bob, add, listOf(t.alice, t.carol))
                dave.joinGroup(assertNotNull(add.welcome)).use { gd ->
                    assertEquals(3u, gd.ownIndex())
                    assertInSync(t.groups + gd)

                    // alice removes carol; carol sees removesUs and becomes inactive
                    val rm = t.alice.removeMembers(listOf(2u))
                    t.alice.mergePendingCommit()
                    for (g in listOf(t.bob, gd)) {
                        val info = processCommit(g, rm.commit)
                        assertEquals(listOf(2u), info.removes.map { it.index })
                        assertBytes("carol", info.removes.single().identity)
                        assertFalse(info.removesUs)
                    }
                    assertTrue(processCommit(t.carol, rm.commit).removesUs)
                    assertFalse(t.carol.isActive())
                    assertFailsWith<MlsException.GroupInactive> { t.carol.encrypt(b("still here?"), byteArrayOf()) }
                    assertFailsWith<MlsException.UnknownMember> { t.alice.removeMembers(listOf(17u)) }

                    // bob leaves: a proposal, committed by dave
                    val leave = t.bob.leave()
                    assertEquals(ContentType.PROPOSAL, parseMessage(leave).contentType)
                    for (g in listOf(t.alice, gd)) {
                        val p = processProposal(g, leave)
                        val content = assertIs<ProposalContent.Remove>(p.content)
                        assertEquals(1u, content.index)
                        assertBytes("bob", content.identity)
                        assertMemberSender(1u, "bob", p.sender)
                    }
                    val commit = gd.commitPendingProposals()
                    gd.mergePendingCommit()
                    processCommit(t.alice, commit.commit)
                    assertTrue(processCommit(t.bob, commit.commit).removesUs)
                    assertFalse(t.bob.isActive())
                    assertEquals(listOf("alice", "dave"), t.alice.members().map { it.identity.decodeToString() })
                    assertInSync(listOf(t.alice, gd))
                }
            }
        }
    }

    @Test
    fun proposalsByReferenceAndCustomProposal() {
        makeTrio().use { t ->
            newClient("dave").use { dave ->
                val kp = dave.createKeyPackages(1u).single()
                val bundles = listOf(
                    t.bob to t.bob.proposeAdd(kp, ProposalMode.BY_REFERENCE),
                    t.carol to t.carol.proposeSelfUpdate(),
                    t.bob to t.bob.proposeCustom(CUSTOM_PROPOSAL_TYPE, b("custom-payload"), ProposalMode.BY_REFERENCE),
                )
                for ((sender, pb) in bundles) {
                    assertTrue(pb.proposalRef.isNotEmpty())
                    assertEquals(ContentType.PROPOSAL, parseMessage(pb.message).contentType)
                    for (g in t.groups) {
                        if (g === sender) continue
                        val p = processProposal(g, pb.message)
                        assertContentEquals(pb.proposalRef, p.proposalRef)
                        assertMemberSender(sender.ownIndex(), if (sender === t.bob) "bob" else "carol", p.sender)
                    }
                }
                val kinds = t.alice.pendingProposals().map { it.content }
                assertTrue(kinds.any { it is ProposalContent.Update })
                val custom = kinds.filterIsInstance<ProposalContent.Custom>().single()
                assertEquals(CUSTOM_PROPOSAL_TYPE, custom.proposalType)
                assertBytes("custom-payload", custom.payload)
                val addP = kinds.filterIsInstance<ProposalContent.Add>().single()
                assertBytes("dave", addP.identity)
                assertEquals(
                    bundles.map { it.second.proposalRef.toList() }.toSet(),
                    t.alice.pendingProposals().map { it.proposalRef?.toList() }.toSet(),
                )
                // Application messages wait until pending proposals are committed.
                assertFailsWith<MlsException.PendingProposals> { t.alice.encrypt(b("too early"), byteArrayOf()) }

                val commit = t.alice.commitPendingProposals()
                val pending = assertNotNull(t.alice.pendingCommit())
                t.alice.mergePendingCommit()
                assertTrue(t.alice.pendingProposals().isEmpty())
                for (g in listOf(t.bob, t.carol)) {
                    val info = processCommit(g, commit.commit)
                    assertMemberSender(0u, "alice", info.sender)
                    assertEquals(pending.newEpoch, info.newEpoch)
                    assertEquals(listOf("dave"), info.adds.map { it.identity.decodeToString() })
                    assertEquals(listOf(2u), info.updates)
                    val cp = info.customProposals.single()
                    assertEquals(CUSTOM_PROPOSAL_TYPE, cp.proposalType)
                    assertBytes("custom-payload", cp.payload)
                    assertEquals(3, info.proposals.size)
                    assertTrue(g.pendingProposals().isEmpty())
                }
                dave.joinGroup(assertNotNull(commit.welcome)).use { gd ->
                    assertInSync(t.groups + gd)
                }
            }
        }
    }

    @Test
    fun stagedCommitInspectedThenMergedAndAnotherDiscarded() {
        makeTrio().use { t ->
            val rm = t.alice.removeMembers(listOf(2u))
            t.alice.mergePendingCommit()
            val authBefore = t.bob.epochAuthenticator()

            // First staging: inspected, then discarded; nothing changes.
            val first = assertNotNull(t.bob.processMessage(rm.commit).stagedCommit)
            first.use { sc ->
                val info = sc.info()
                assertEquals(2uL, info.newEpoch)
                assertEquals(listOf(2u), info.removes.map { it.index })
                assertBytes("carol", info.removes.single().identity)
                assertMemberSender(0u, "alice", info.sender)
                assertFalse(info.removesUs)
                sc.discard()
                assertEquals(1uL, t.bob.epoch())
                assertContentEquals(authBefore, t.bob.epochAuthenticator())
                assertEquals(3, t.bob.members().size)
                assertFailsWith<MlsException.StagedCommitOutdated> { sc.merge() }
            }

            // Second staging of the same commit: inspected, then merged.
            assertNotNull(t.bob.processMessage(rm.commit).stagedCommit).use { sc ->
                assertEquals(listOf(2u), sc.info().removes.map { it.index })
                sc.merge()
                assertFailsWith<MlsException.StagedCommitOutdated> { sc.merge() }
            }
            assertEquals(2uL, t.bob.epoch())
            assertInSync(listOf(t.alice, t.bob))

            // Two stagings at once: only the first merge wins.
            val up = t.alice.selfUpdate()
            t.alice.mergePendingCommit()
            val r1 = assertNotNull(t.bob.processMessage(up.commit).stagedCommit)
            val r2 = assertNotNull(t.bob.processMessage(up.commit).stagedCommit)
            r1.use { it.merge() }
            r2.use { assertFailsWith<MlsException.StagedCommitOutdated> { it.merge() } }
            assertEquals(3uL, t.bob.epoch())
            assertInSync(listOf(t.alice, t.bob))
        }
    }

    @Test
    fun externalJoin() {
        makeTrio().use { t ->
            newClient("dave").use { dave ->
                val gi = t.alice.exportGroupInfo()
                val meta = parseMessage(gi)
                assertEquals(MessageKind.GROUP_INFO, meta.kind)
                assertEquals(t.alice.epoch(), meta.epoch)
                val ej = dave.joinByExternalCommit(gi)
                ej.use {
                    assertEquals(t.alice.epoch() + 1uL, ej.group.epoch())
                    assertContentEquals(t.alice.id(), ej.group.id())
                    assertEquals(MessageKind.PUBLIC_MESSAGE, parseMessage(ej.commit).kind)
                    for (g in t.groups) {
                        val info = processCommit(g, ej.commit)
                        assertIs<Sender.NewMemberCommit>(info.sender)
                        assertTrue(info.hasPath && !info.removesUs)
                        assertTrue(info.proposals.any { it.content is ProposalContent.ExternalInit })
                    }
                    assertEquals(
                        listOf("alice", "bob", "carol", "dave"),
                        t.alice.members().map { it.identity.decodeToString() },
                    )
                    assertInSync(t.groups + ej.group)
                }
            }
        }
    }

    @Test
    fun missingRatchetTreeIsTypedAndTheTreeCanComeOutOfBand() {
        newClient("alice").use { alice ->
            newClient("bob").use { bob ->
                alice.createGroup(GroupOptions(join = JoinOptions(useRatchetTreeExtension = false))).use { ga ->
                    val bundle = ga.addMembers(listOf(bob.createKeyPackages(1u).single()))
                    ga.mergePendingCommit()
                    val welcome = assertNotNull(bundle.welcome)
                    assertFailsWith<MlsException.MissingRatchetTree> { bob.joinGroup(welcome) }
                    assertTrue(bob.groupIds().isEmpty())
                    bob.joinGroup(welcome, ga.exportRatchetTree()).use { gb -> assertInSync(listOf(ga, gb)) }
                    newClient("carol").use { carol ->
                        assertFailsWith<MlsException.MissingRatchetTree> {
                            carol.joinByExternalCommit(ga.exportGroupInfo(withRatchetTree = false))
                        }
                    }
                }
            }
        }
    }

    @Test
    fun echoOfOwnPendingCommitIsItsAcknowledgement() {
        for (policy in listOf(WireFormatPolicy.MIXED_CIPHERTEXT, WireFormatPolicy.MIXED_PLAINTEXT)) {
            makeTrio(groupOptions = GroupOptions(join = JoinOptions(wireFormatPolicy = policy))).use { t ->
                val epoch = t.alice.epoch()
                val bundle = t.alice.selfUpdate()
                repeat(2) {
                    val echo = assertIs<ReceivedMessage.OwnCommit>(t.alice.processMessage(bundle.commit), "$policy")
                    assertEquals(epoch + 1uL, echo.newEpoch)
                }
                assertEquals(epoch, t.alice.epoch())
                commitAndDeliver(t.alice, bundle, listOf(t.bob, t.carol))
                assertFailsWith<MlsException.WrongEpoch> { t.alice.processMessage(bundle.commit) }
                assertInSync(t.groups)
            }
        }
    }

    @Test
    fun exporterSecretAndEpochAuthenticatorEqualOnAllMembers() {
        makeTrio().use { t ->
            val secrets = t.groups.map { it.exportSecret("label", b("context"), 32u) }
            assertTrue(secrets.all { it.size == 32 && it.contentEquals(secrets[0]) })
            assertFalse(t.alice.exportSecret("other", b("context"), 32u).contentEquals(secrets[0]))
            val auths = t.groups.map { it.epochAuthenticator() }
            assertTrue(auths.all { it.contentEquals(auths[0]) })

            commitAndDeliver(t.bob, t.bob.selfUpdate(), listOf(t.alice, t.carol))
            val after = t.groups.map { it.exportSecret("label", b("context"), 32u) }
            assertTrue(after.all { it.contentEquals(after[0]) })
            assertFalse(after[0].contentEquals(secrets[0]))
            val authsAfter = t.groups.map { it.epochAuthenticator() }
            assertTrue(authsAfter.all { it.contentEquals(authsAfter[0]) })
            assertFalse(authsAfter[0].contentEquals(auths[0]))
            assertInSync(t.groups)
        }
    }

    @Test
    fun groupRegistryAndIdioms() {
        makeTrio().use { t ->
            val alice = t.clients[0]
            val gid = t.alice.id()
            assertEquals(listOf(gid.toList()), alice.groupIds().map { it.toList() })
            assertNotNull(alice.groupOrNull(gid)).use { again ->
                assertEquals(t.alice.epoch(), again.epoch())
                // Both handles share one state.
                val up = again.selfUpdate()
                assertNotNull(t.alice.pendingCommit())
                t.alice.mergePendingCommit()
                assertEquals(2uL, again.epoch())
                processCommit(t.bob, up.commit)
                processCommit(t.carol, up.commit)
            }
            assertNull(alice.groupOrNull(b("no such group")))
            assertFailsWith<MlsException.UnknownGroup> { alice.group(b("no such group")) }
            assertInSync(t.groups)
        }
    }
}
