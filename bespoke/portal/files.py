"""Evidence and photos as files: stored content-addressed (sha256) under
BESPOKE_EVIDENCE_DIR (default `evidence/` in BESPOKE_HOME); the type is read off
the content, never believed from the browser; the workflow records only a
reference with the hash, name, size and type (an evidence item or a milestone
note), never the bytes.

A reference reads `sha256:<hex> <name> (<size> bytes, <type>)`; a file is served
only to a principal who may see an order whose evidence or milestone notes hold
that reference.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 10 * 1024 * 1024
# Types accepted, told apart by their first bytes.
SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", ".png"),
    (b"%PDF-", 0, "application/pdf", ".pdf"),
    (b"WEBP", 8, "image/webp", ".webp"),
)
REF = re.compile(r"sha256:([0-9a-f]{64}) ")
_NAME_BAD = re.compile(r"[^\w.\- ]+", re.UNICODE)


class FileRejected(ValueError):
    """An upload refused (too big, empty, a type we do not take)."""


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    name: str
    size: int
    type: str

    @property
    def ref(self) -> str:
        return f"sha256:{self.sha256} {self.name} ({self.size} bytes, {self.type})"


def evidence_dir(settings: Any) -> Path:
    return (settings.evidence_dir or settings.home / "evidence").expanduser()


def sniff(head: bytes) -> str | None:
    for magic, offset, mime, _ in SIGNATURES:
        if head[offset:offset + len(magic)] == magic and (mime != "image/webp" or head[:4] == b"RIFF"):
            return mime
    return None


def clean_filename(name: str) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = _NAME_BAD.sub("_", base)[:100].strip("._ ")
    return base or "file"


def _path(root: Path, sha: str) -> Path:
    return root / sha[:2] / sha


async def store_upload(settings: Any, upload: Any) -> StoredFile:
    """Read an UploadFile (bounded), check its type on content, store it once."""
    data = await upload.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise FileRejected(f"file: at most {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if not data:
        raise FileRejected("file: empty")
    mime = sniff(data[:16])
    if mime is None:
        raise FileRejected("file: only JPEG, PNG, WebP images and PDF documents are accepted")
    sha = hashlib.sha256(data).hexdigest()
    root = evidence_dir(settings)
    path = _path(root, sha)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a file, two writers race harmlessly.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return StoredFile(sha256=sha, name=clean_filename(upload.filename or ""), size=len(data), type=mime)


def refs_in(view: Any) -> set[str]:
    """Every file hash the order's evidence items and milestone notes refer to."""
    texts = [e.item for c in view.cases for e in c.evidence]
    texts += [e.item for e in (view.open_case.evidence if view.open_case else [])]
    texts += [r.note for r in view.milestones]
    return {m.group(1) for t in texts for m in REF.finditer(t + " ")}


def stored_path(settings: Any, sha: str) -> Path | None:
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        return None
    path = _path(evidence_dir(settings), sha)
    return path if path.is_file() else None
