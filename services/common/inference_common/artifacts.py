"""Model artifacts: content digests shared by the registry (web) and the worker.

The web tier names stored artifacts by this digest and the worker refuses an
artifact whose digest no longer matches, so both must compute it identically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Read size: large models are hashed without being held in memory.
CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
