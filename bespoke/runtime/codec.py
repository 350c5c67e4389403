"""Optional payload encryption: an AES-GCM payload codec.

With a key configured (``BESPOKE_PAYLOAD_KEY`` or ``BESPOKE_PAYLOAD_KEY_FILE``), every
payload a bespoke client or worker sends to Temporal (workflow inputs, results,
update and signal arguments, activity arguments, memos) is encrypted before it leaves
the process, so buyer names and addresses are never stored in clear in the Temporal
database. Search attributes are not payloads and stay readable; keep them free of
personal data; failure messages are not encrypted either.

Key format: ``[KEY_ID:]BASE64_KEY`` (16, 24 or 32 bytes), several separated by commas
or newlines. The FIRST key encrypts; all of them decrypt, which is how keys rotate:
put the new key first, keep the old ones until no open workflow history needs them.
Each encrypted payload records its key id (default: the first 8 hex digits of the
key's SHA-256) in its metadata.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from bespoke.runtime.errors import RuntimeLayerError

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
_NONCE_BYTES = 12


class PayloadKeyError(RuntimeLayerError, ValueError):
    """A payload key is malformed, or a payload needs a key we do not have."""


@dataclass(frozen=True)
class PayloadKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"PayloadKey(key_id={self.key_id!r})"


def generate_key() -> str:
    """A fresh random 256-bit key in the configuration format (without an id)."""
    return base64.b64encode(os.urandom(32)).decode()


def parse_keys(text: str) -> list[PayloadKey]:
    """Parse ``[KEY_ID:]BASE64_KEY`` entries separated by commas or newlines."""
    keys = []
    for raw in text.replace(",", "\n").splitlines():
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        key_id, sep, b64 = entry.rpartition(":")
        if not sep:
            key_id, b64 = "", entry
        try:
            secret = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise PayloadKeyError(f"payload key {key_id or '#' + str(len(keys) + 1)} is not valid base64") from None
        if len(secret) not in (16, 24, 32):
            raise PayloadKeyError(
                f"payload key {key_id or '#' + str(len(keys) + 1)} is {len(secret)} bytes; AES-GCM needs 16, 24 or 32"
            )
        keys.append(PayloadKey(key_id or hashlib.sha256(secret).hexdigest()[:8], secret))
    if len({k.key_id for k in keys}) != len(keys):
        raise PayloadKeyError("payload key ids must be unique")
    return keys


class EncryptionCodec(PayloadCodec):
    """AES-GCM payload codec; encrypts with the first key, decrypts with any."""

    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        if not keys:
            raise PayloadKeyError("no payload key configured")
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as err:  # optional dependency
            raise PayloadKeyError("payload encryption needs the `cryptography` package") from err
        self._ciphers = {k.key_id: AESGCM(k.secret) for k in keys}
        self._encrypt_id = keys[0].key_id

    @property
    def key_id(self) -> str:
        """Id of the key new payloads are encrypted with."""
        return self._encrypt_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._encrypt_id]
        out = []
        for p in payloads:
            nonce = os.urandom(_NONCE_BYTES)
            # The key id is authenticated as associated data, so it cannot be swapped.
            data = cipher.encrypt(nonce, p.SerializeToString(), self._encrypt_id.encode())
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_META: self._encrypt_id.encode()},
                    data=nonce + data,
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decode_one(p) for p in payloads]

    def _decode_one(self, p: Payload) -> Payload:
        if p.metadata.get("encoding") != ENCODING:
            return p  # written before encryption was turned on
        key_id = p.metadata.get(KEY_ID_META, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"payload was encrypted with key {key_id!r}, which is not configured")
        plain = cipher.decrypt(p.data[:_NONCE_BYTES], p.data[_NONCE_BYTES:], key_id.encode())
        return Payload.FromString(plain)


def codec_from_sources(key: str | None, key_file: os.PathLike[str] | str | None) -> EncryptionCodec | None:
    """The codec for the configured key(s), or None when encryption is off."""
    sources: Iterable[str] = [
        *([key] if key else []),
        *([Path(key_file).read_text(encoding="utf-8")] if key_file else []),
    ]
    keys = [k for text in sources for k in parse_keys(text)]
    return EncryptionCodec(keys) if keys else None
