#!/usr/bin/env python3
"""Writes the hand-made seeds of the shapes that amplify memory when decoded
(issue: unauthenticated input allocating 20x its size): a GroupInfo whose
ratchet tree is all blank nodes, a key package whose extension holds such a
tree, and a PublicMessage proposal with thousands of empty extensions. They
are small (about 10 KB) so the fuzzer mutates them quickly; tests/amplification.rs
checks the same shapes at the 4 MiB limit. run.sh adds seeds/<target> to the
corpus of each target. Deterministic: run it again to get the same bytes.
"""

from pathlib import Path


def vector(body: bytes) -> bytes:
    n = len(body)
    if n <= 0x3F:
        prefix = bytes([n])
    elif n <= 0x3FFF:
        prefix = (0x4000 | n).to_bytes(2, "big")
    else:
        prefix = (0x80000000 | n).to_bytes(4, "big")
    return prefix + body


def extension(extension_type: int, data: bytes) -> bytes:
    return extension_type.to_bytes(2, "big") + vector(data)


def group_info_with_tree(tree: bytes) -> bytes:
    context = b"\x00\x01\x00\x01" + vector(b"group") + bytes(8) + vector(bytes(32)) * 2 + vector(b"")
    return (
        b"\x00\x01\x00\x04" + context + vector(extension(2, tree)) + vector(bytes(32)) + bytes(4) + vector(bytes(64))
    )


def key_package_with_tree(tree: bytes) -> bytes:
    leaf = vector(bytes(32)) * 2 + b"\x00\x01" + vector(b"eve") + vector(b"") * 5 + b"\x01" + bytes(16)
    leaf += vector(b"") + vector(bytes(64))
    return b"\x00\x01\x00\x05\x00\x01\x00\x01" + vector(bytes(32)) + leaf + vector(extension(2, tree)) + vector(bytes(64))


def proposal_with_extensions(n: int) -> bytes:
    head = b"\x00\x01\x00\x01" + vector(b"fuzz-group") + bytes(8) + b"\x01\x00\x00\x00\x01" + vector(b"")
    content = b"\x02\x00\x07" + vector(extension(0xFF00, b"") * n)
    return head + content + vector(bytes(64)) + vector(bytes(32))


# The fuzz targets' own framing: external_join reads an even first byte as
# "the rest is the GroupInfo"; process_message meets the fixture group
# "fuzz-group" at epoch 2 (an epoch-0 proposal is refused later, as intended:
# the scan runs first).


def main() -> None:
    here = Path(__file__).resolve().parent
    blank_tree = vector(bytes(10_000))
    seeds = {
        "parse_message": {"amplify_group_info_blank_tree": group_info_with_tree(blank_tree)},
        "external_join": {"amplify_group_info_blank_tree": b"\x00" + group_info_with_tree(blank_tree)},
        "validate_key_package": {"amplify_key_package_tree_extension": key_package_with_tree(blank_tree)},
        "process_message": {"amplify_proposal_empty_extensions": proposal_with_extensions(3_000)},
    }
    for target, files in seeds.items():
        (here / target).mkdir(exist_ok=True)
        for name, data in files.items():
            (here / target / name).write_bytes(data)
            print(f"{target}/{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
