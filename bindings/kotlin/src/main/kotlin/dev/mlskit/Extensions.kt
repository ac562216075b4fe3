// Small Kotlin idioms over the generated API. Plain Kotlin only (also in the AAR).
package dev.mlskit

/**
 * The group with this id, or null if none is stored (instead of
 * [MlsException.UnknownGroup]). Close the returned handle (`use {}`).
 */
fun Client.groupOrNull(groupId: ByteArray): Group? =
    try {
        group(groupId)
    } catch (e: MlsException.UnknownGroup) {
        null
    }

/** The decrypted message if this is an application message, else null. */
val ReceivedMessage.applicationMessage: ApplicationMessage?
    get() = (this as? ReceivedMessage.Application)?.message

/** The staged commit if this is a commit, else null. Merge or discard it, then close it. */
val ReceivedMessage.stagedCommit: StagedCommit?
    get() = (this as? ReceivedMessage.Commit)?.commit

/** The proposal if this is a proposal, else null. */
val ReceivedMessage.proposalInfo: ProposalInfo?
    get() = (this as? ReceivedMessage.Proposal)?.proposal
