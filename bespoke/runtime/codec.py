"""Optional payload encryption: an AES-GCM payload codec.

With a key configured (``BESPOKE_PAYLOAD_KEY`` or ``BESPOKE_PAYLOAD_KEY_FILE``), every
payload a bespoke client or worker sends to Temporal (workflow inputs, results,
update and signal arguments, activity arguments, memos) is encrypted before it leaves
the process, so buyer names and addresses are never stored in clear in the Temporal
database. Search attributes are not payloads: with a key configured the order's
buyer and seller are indexed as a keyed hash (`index_value`), never in clear;
failure messages are not encrypted.

Enforced, not only offered: a process with keys reads no plaintext payload. A
worker turns a payload it cannot read (plaintext from a keyless client, a key it
does not have, a wrong secret) into a *refused* payload, which the payload
converter (`RefusingPayloadConverter`) fails with a non-retryable error: a started
order fails at once, an update is rejected, a query fails, and nothing runs. A
client raises `PayloadKeyError` instead (one line, exit 1 from the CLI), so it
never acts on an answer it could not read. A keyless process gets a codec too
(`KeylessCodec`): an encrypted answer is a clear error, not `KeyError 'Unknown
payload encoding'`.

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
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import EncodingPayloadConverter, PayloadCodec
from temporalio.exceptions import ApplicationError

from bespoke.runtime.errors import RuntimeLayerError

ENCODING = b"binary/encrypted"
# What a worker's codec hands the converter for a payload it may not read.
REFUSED = b"binary/bespoke-refused"
INDEX_PREFIX = "h:"
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


def _refused(reason: str) -> Payload:
    return Payload(metadata={"encoding": REFUSED}, data=reason.encode())


class RefusedConverter(EncodingPayloadConverter):
    """Fails a refused payload with a non-retryable error (a payload conversion
    error that is an ApplicationError fails the workflow, or rejects the update,
    instead of failing the workflow task over and over)."""

    @property
    def encoding(self) -> str:
        return REFUSED.decode()

    def to_payload(self, value: object) -> Payload | None:
        return None  # never chosen to encode

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> object:
        raise ApplicationError(f"payload refused: {payload.data.decode(errors='replace')}",
                               type="PayloadRefused", non_retryable=True)


class RefusingPayloadConverter(PydanticPayloadConverter):
    """The pydantic converter, plus `RefusedConverter` for refused payloads."""

    def __init__(self) -> None:
        super().__init__()
        self._set_converters(RefusedConverter(), *self.converters.values())


class KeylessCodec(PayloadCodec):
    """For a process without keys: plaintext passes, an encrypted payload is a
    clear error (a worker: refused; a client: PayloadKeyError)."""

    def __init__(self, *, worker: bool = False) -> None:
        self._worker = worker

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") == ENCODING:
                key_id = p.metadata.get(KEY_ID_META, b"").decode()
                reason = (f"it is encrypted (key {key_id!r}) and this process has no payload key: set "
                          "BESPOKE_PAYLOAD_KEY (or BESPOKE_PAYLOAD_KEY_FILE) as on the workers")
                if not self._worker:
                    raise PayloadKeyError(f"cannot read Temporal's answer: {reason}")
                p = _refused(reason)
            out.append(p)
        return out


class EncryptionCodec(PayloadCodec):
    """AES-GCM payload codec; encrypts with the first key, decrypts with any.
    Plaintext is refused unless `accept_plaintext` (histories from before
    encryption was turned on); `worker`: refuse by a refused payload, not by
    raising (see the module docstring)."""

    def __init__(self, keys: Sequence[PayloadKey], *, worker: bool = False, accept_plaintext: bool = False) -> None:
        if not keys:
            raise PayloadKeyError("no payload key configured")
        self._worker = worker
        self._accept_plaintext = accept_plaintext
        # Search attributes index names by a keyed hash under a key derived from
        # the encrypting key (never the key itself).
        self._index_key = hashlib.sha256(b"bespoke-search-attribute-v1\x00" + keys[0].secret).digest()
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

    def index_value(self, name: str) -> str:
        """What a search attribute holds for `name` with encryption on: a keyed
        hash (HMAC-SHA256, 128 bits), the same for the same name and key."""
        import hmac

        return INDEX_PREFIX + hmac.new(self._index_key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def _decode_one(self, p: Payload) -> Payload:
        try:
            return self._decrypt(p)
        except PayloadKeyError as err:
            if self._worker:
                return _refused(str(err))
            raise

    def _decrypt(self, p: Payload) -> Payload:
        from cryptography.exceptions import InvalidTag

        if p.metadata.get("encoding") == REFUSED:
            return p
        if p.metadata.get("encoding") != ENCODING:
            if self._accept_plaintext:
                return p  # written before encryption was turned on
            raise PayloadKeyError("a plaintext payload, and payloads must be encrypted here (was it sent by a "
                                  "client without BESPOKE_PAYLOAD_KEY?)")
        key_id = p.metadata.get(KEY_ID_META, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"payload was encrypted with key {key_id!r}, which is not configured here")
        try:
            plain = cipher.decrypt(p.data[:_NONCE_BYTES], p.data[_NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise PayloadKeyError(f"payload key {key_id!r} does not decrypt it: the secret configured for that key "
                                  "id is not the one it was encrypted with (or the payload was altered)") from None
        return Payload.FromString(plain)


def codec_from_sources(key: str | None, key_file: os.PathLike[str] | str | None, *, worker: bool = False,
                       accept_plaintext: bool = False) -> EncryptionCodec | None:
    """The codec for the configured key(s), or None when encryption is off."""
    sources: Iterable[str] = [
        *([key] if key else []),
        *([Path(key_file).read_text(encoding="utf-8")] if key_file else []),
    ]
    keys = [k for text in sources for k in parse_keys(text)]
    return EncryptionCodec(keys, worker=worker, accept_plaintext=accept_plaintext) if keys else None
