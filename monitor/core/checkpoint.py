"""Checkpoints of a partition's engine state, as records for a compacted changelog.

A worker persists its state per input partition every few seconds, not per event (per-event
table writes cap a faust worker near 2k events/s here). A checkpoint is the engine snapshot plus
the offset of the next input record it has not applied, so a restarted worker applies each event
exactly once: records below `next_offset` are already in the state.

Large snapshots are compressed and split into chunks (a Kafka record is limited to about 1 MB).
Chunks go to one of two slots by generation parity and the manifest is written last, so a crash
in the middle of writing generation g+1 leaves generation g readable. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHUNK_BYTES = 256 * 1024
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A stored checkpoint is incomplete or corrupt; the message says which part."""


@dataclass(frozen=True)
class Checkpoint:
    partition: int
    generation: int
    next_offset: int
    snapshot: dict[str, Any]


def manifest_key(partition: int) -> str:
    return f"{partition}/manifest"


def chunk_key(partition: int, slot: int, index: int) -> str:
    return f"{partition}/{slot}/{index}"


def partition_of_key(key: str) -> int:
    """Every checkpoint key names its partition first (the table writes it there)."""
    return int(key.split("/", 1)[0])


def encode_checkpoint(cp: Checkpoint, *, chunk_bytes: int = CHUNK_BYTES) -> list[tuple[str, bytes]]:
    """The records to write, in order: chunks first, the manifest last."""
    body = zlib.compress(json.dumps(cp.snapshot, separators=(",", ":")).encode(), 1)
    slot = cp.generation % 2
    chunks = [body[i:i + chunk_bytes] for i in range(0, len(body), chunk_bytes)] or [b""]
    tag = cp.generation.to_bytes(8, "big")
    records = [(chunk_key(cp.partition, slot, i), tag + chunk) for i, chunk in enumerate(chunks)]
    manifest = {
        "format": FORMAT_VERSION, "generation": cp.generation, "next_offset": cp.next_offset,
        "slot": slot, "chunks": len(chunks), "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
    }
    records.append((manifest_key(cp.partition), json.dumps(manifest).encode()))
    return records


def decode_checkpoint(partition: int, get: Callable[[str], bytes | None]) -> Checkpoint | None:
    """The partition's newest complete checkpoint, or None if it never had one."""
    raw = get(manifest_key(partition))
    if raw is None:
        return None
    try:
        return _decode(partition, raw, get)
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, zlib.error) as exc:
        raise CheckpointError(f"partition {partition}: checkpoint is malformed: {exc!r}") from None


def _decode(partition: int, raw: bytes, get: Callable[[str], bytes | None]) -> Checkpoint:
    manifest = json.loads(raw)
    if manifest.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"partition {partition}: checkpoint format {manifest.get('format')!r}, "
                              f"this worker reads {FORMAT_VERSION}")
    generation = int(manifest["generation"])
    tag = generation.to_bytes(8, "big")
    parts = []
    for i in range(int(manifest["chunks"])):
        chunk = get(chunk_key(partition, int(manifest["slot"]), i))
        if chunk is None or chunk[:8] != tag:
            raise CheckpointError(f"partition {partition}: chunk {i} of generation {generation} is missing")
        parts.append(chunk[8:])
    body = b"".join(parts)
    if hashlib.sha256(body).hexdigest() != manifest["sha256"]:
        raise CheckpointError(f"partition {partition}: generation {generation} fails its checksum")
    snapshot = json.loads(zlib.decompress(body))
    return Checkpoint(partition, generation, int(manifest["next_offset"]), snapshot)
