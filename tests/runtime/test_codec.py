import base64
import getpass
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.worker import Worker

from bespoke.runtime.client import connect, data_converter
from bespoke.runtime.codec import (
    ENCODING,
    KEY_ID_META,
    REFUSED,
    EncryptionCodec,
    KeylessCodec,
    PayloadKeyError,
    generate_key,
    parse_keys,
)
from bespoke.runtime.embedded import EmbeddedServer
from bespoke.settings import Settings

from .helpers import WaitForGo

pytest.importorskip("cryptography")

SECRET_NAME = "Zhang Wei, 88 Jianguo Rd"


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    codec = EncryptionCodec(parse_keys(generate_key()))
    [encrypted] = await codec.encode([_payload(SECRET_NAME)])
    assert encrypted.metadata["encoding"] == ENCODING
    assert encrypted.metadata[KEY_ID_META] == codec.key_id.encode()
    assert SECRET_NAME.encode() not in encrypted.SerializeToString()
    assert await codec.decode([encrypted]) == [_payload(SECRET_NAME)]


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    old, new = f"old:{generate_key()}", f"new:{generate_key()}"
    [before] = await EncryptionCodec(parse_keys(old)).encode([_payload("x")])
    rotated = EncryptionCodec(parse_keys(f"{new},{old}"))
    assert await rotated.decode([before]) == [_payload("x")]
    [after] = await rotated.encode([_payload("y")])
    assert after.metadata[KEY_ID_META] == b"new"
    with pytest.raises(PayloadKeyError, match="'new'"):
        await EncryptionCodec(parse_keys(old)).decode([after])


async def test_unencrypted_payloads_are_refused_unless_plaintext_is_accepted() -> None:
    keys = parse_keys(generate_key())
    with pytest.raises(PayloadKeyError, match="a plaintext payload"):
        await EncryptionCodec(keys).decode([_payload("legacy")])
    [refused] = await EncryptionCodec(keys, worker=True).decode([_payload("legacy")])
    assert refused.metadata["encoding"] == REFUSED and b"plaintext" in refused.data
    # While orders from before encryption are open: BESPOKE_PAYLOAD_PLAINTEXT=accept.
    assert await EncryptionCodec(keys, accept_plaintext=True).decode([_payload("legacy")]) == [_payload("legacy")]


async def test_a_wrong_secret_is_one_clear_error_not_invalid_tag() -> None:
    [encrypted] = await EncryptionCodec(parse_keys(f"k1:{generate_key()}")).encode([_payload("x")])
    with pytest.raises(PayloadKeyError, match="does not decrypt it") as info:
        await EncryptionCodec(parse_keys(f"k1:{generate_key()}")).decode([encrypted])
    assert "InvalidTag" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(PayloadKeyError, match="this process has no payload key"):
        await KeylessCodec().decode([encrypted])


def test_search_attribute_index_is_a_keyed_hash() -> None:
    key = generate_key()
    a, b = EncryptionCodec(parse_keys(key)), EncryptionCodec(parse_keys(key))
    other = EncryptionCodec(parse_keys(generate_key()))
    assert a.index_value("alice") == b.index_value("alice") != other.index_value("alice")
    assert a.index_value("alice") != a.index_value("bob") and "alice" not in a.index_value("alice")
    assert a.index_value("alice").startswith("h:") and len(a.index_value("alice")) == 34


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "needs 16, 24 or 32"),
        (f"a:{generate_key()},a:{generate_key()}", "unique"),
    ],
)
def test_malformed_keys_are_rejected(text: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message):
        parse_keys(text)


def test_no_key_configured_means_no_encryption(tmp_path: Path) -> None:
    assert isinstance(data_converter(Settings(home=tmp_path)).payload_codec, KeylessCodec)
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated 2026-01\nk2:{generate_key()}\n")
    codec = data_converter(Settings(home=tmp_path, payload_key_file=key_file)).payload_codec
    assert isinstance(codec, EncryptionCodec) and codec.key_id == "k2"


async def test_history_in_temporal_holds_only_ciphertext(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"payload_key": SecretStr(f"k1:{generate_key()}")})
    task_queue = f"tq-{uuid.uuid4()}"
    async with EmbeddedServer(settings, in_memory=True, headless=True) as server:
        client = await connect(server.settings)
        async with Worker(client, task_queue=task_queue, workflows=[WaitForGo]):
            handle = await client.start_workflow(
                WaitForGo.run, "Dear", id=f"wf-{uuid.uuid4()}", task_queue=task_queue
            )
            await handle.signal(WaitForGo.go, SECRET_NAME)
            assert await handle.result() == f"Dear, {SECRET_NAME}"
        # A client without the key sees the stored history as it is: ciphertext only.
        plain_client = await connect(server.settings.model_copy(update={"payload_key": None}))
        history = await plain_client.get_workflow_handle(handle.id).fetch_history()
        raw = history.to_json()
        assert "Zhang Wei" not in raw and "Dear" not in raw
        # Who sent the signal is on record in clear: process, host and OS user.
        signalled = [e.workflow_execution_signaled_event_attributes for e in history.events
                     if e.HasField("workflow_execution_signaled_event_attributes")]
        assert [s.identity for s in signalled] == [client.identity]
        assert f"({getpass.getuser()})" in client.identity
        assert base64.b64encode(ENCODING).decode() in raw
