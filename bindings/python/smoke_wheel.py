"""Checks an installed mlskit wheel: two members, a Welcome, a message each way."""

import mlskit

alice = mlskit.Client(mlskit.MemoryStorage(), b"alice")
bob = mlskit.Client(mlskit.MemoryStorage(), b"bob")
group = alice.create_group()
bundle = group.add_members(bob.create_key_packages(1))
group.merge_pending_commit()
assert bundle.welcome is not None
bob_group = bob.join_group(bundle.welcome)
received = bob_group.process_message(group.encrypt(b"hi bob", b""))
assert isinstance(received, mlskit.ReceivedMessage.APPLICATION)
assert received.message.plaintext == b"hi bob"
received = group.process_message(bob_group.encrypt(b"hi alice", b""))
assert isinstance(received, mlskit.ReceivedMessage.APPLICATION)
assert received.message.plaintext == b"hi alice"
assert group.epoch_authenticator() == bob_group.epoch_authenticator()
print("installed mlskit from", mlskit.__file__)
print("wheel: 1 passed, 0 failed")
