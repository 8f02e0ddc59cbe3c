"""Checkpoint records: round trip, chunking, and a crash in the middle of writing one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.checkpoint import (
    Checkpoint,
    CheckpointError,
    chunk_key,
    decode_checkpoint,
    encode_checkpoint,
    manifest_key,
    partition_of_key,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None)
@given(snapshot=st.dictionaries(st.text(max_size=8), json_values, max_size=6),
       partition=st.integers(0, 63), generation=st.integers(1, 10**6), offset=st.integers(0, 10**12),
       chunk=st.integers(16, 4096))
def test_checkpoint_survives_encode_decode(snapshot: dict[str, Any], partition: int, generation: int,
                                           offset: int, chunk: int) -> None:
    cp = Checkpoint(partition, generation, offset, snapshot)
    store = dict(encode_checkpoint(cp, chunk_bytes=chunk))
    assert all(partition_of_key(k) == partition for k in store)
    assert decode_checkpoint(partition, store.get) == cp


def test_large_snapshot_is_split_into_chunks_and_manifest_comes_last() -> None:
    snapshot = {"ids": [f"event-{i:08d}-{i * 7919 % 100003}" for i in range(200_000)]}
    records = encode_checkpoint(Checkpoint(2, 1, 10, snapshot), chunk_bytes=64 * 1024)
    assert len(records) > 3
    assert records[-1][0] == manifest_key(2)
    assert all(len(value) <= 64 * 1024 + 8 for _, value in records[:-1])
    assert decode_checkpoint(2, dict(records).get) == Checkpoint(2, 1, 10, snapshot)


def test_partition_without_checkpoint_decodes_to_none() -> None:
    assert decode_checkpoint(5, {}.get) is None


def test_crash_while_writing_next_generation_leaves_previous_readable() -> None:
    store: dict[str, bytes] = {}
    first = Checkpoint(0, 1, 100, {"state": "a" * 5000})
    store.update(encode_checkpoint(first, chunk_bytes=500))
    second = encode_checkpoint(Checkpoint(0, 2, 200, {"state": "b" * 9000}), chunk_bytes=500)
    for key, value in second[:-3]:  # the process dies before the last chunks and the manifest
        store[key] = value
    assert decode_checkpoint(0, store.get) == first


def test_manifest_pointing_at_overwritten_chunks_is_refused() -> None:
    store: dict[str, bytes] = dict(encode_checkpoint(Checkpoint(0, 1, 1, {"x": 1})))
    store.update(encode_checkpoint(Checkpoint(0, 3, 3, {"x": 3})))  # same slot as generation 1
    store[manifest_key(0)] = dict(encode_checkpoint(Checkpoint(0, 1, 1, {"x": 1})))[manifest_key(0)]
    with pytest.raises(CheckpointError, match="chunk 0 of generation 1 is missing"):
        decode_checkpoint(0, store.get)


@pytest.mark.parametrize("damage", ["not json", "bit flip", "missing chunk", "wrong format"])
def test_damaged_checkpoint_raises_checkpoint_error(damage: str) -> None:
    store: dict[str, bytes] = dict(encode_checkpoint(Checkpoint(1, 4, 9, {"x": list(range(100))}), chunk_bytes=64))
    if damage == "not json":
        store[manifest_key(1)] = b"\x00\x01"
    elif damage == "bit flip":
        key = chunk_key(1, 0, 0)
        store[key] = store[key][:10] + bytes([store[key][10] ^ 1]) + store[key][11:]
    elif damage == "missing chunk":
        del store[chunk_key(1, 0, 1)]
    else:
        store[manifest_key(1)] = store[manifest_key(1)].replace(b'"format": 1', b'"format": 99')
    with pytest.raises(CheckpointError, match="partition 1"):
        decode_checkpoint(1, store.get)
