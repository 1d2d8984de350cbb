"""Key-encryption keys (issue 19, step 2): what wraps each recording's data key, outside S3.

Two backends behind one small protocol (`KeyWrapper`), so an AWS KMS one can follow:

- `FileKek`, the embedded default: a keyring file (or a Kubernetes Secret mounted as one) holding 256-bit keys
  by version; a data key is sealed with AES-256-GCM (`cryptography`'s AESGCM: a random 96-bit nonce per seal,
  the context as associated data). Rotation adds a version and makes it primary; older versions still unwrap.
- `TransitKek`: OpenBao / Vault Transit (`hvac`); the KEK never leaves the KMS. The key is created `derived`,
  so every wrap is bound to its context (the recording) by the KMS itself; rotation and re-wrapping are the
  KMS's own operations.

A wrapped key records which KEK and which version sealed it. `rewrap` moves it to the primary version; the
locked audio is never touched (the data key does not change).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callscribe.kit.errors import FailedPrecondition, Unavailable
from callscribe.kit.files import write_json_atomically

_NONCE = 12


class KeyUnwrapError(FailedPrecondition):
    """A wrapped data key that this KEK cannot open: another KEK, a version it no longer has, another context,
    or changed bytes."""


@dataclass(frozen=True)
class WrappedKey:
    kek: str  # "file" or "transit:<name>"
    version: int
    ciphertext: bytes

    def to_json(self) -> str:
        return json.dumps(
            {"kek": self.kek, "version": self.version, "ciphertext": base64.b64encode(self.ciphertext).decode()}
        )

    @classmethod
    def from_json(cls, text: str) -> WrappedKey:
        doc = json.loads(text)
        return cls(str(doc["kek"]), int(doc["version"]), base64.b64decode(doc["ciphertext"]))


class KeyWrapper(Protocol):
    name: str

    def wrap(self, plaintext: bytes, context: bytes) -> WrappedKey: ...
    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes: ...
    def rotate(self) -> int: ...
    def rewrap(self, wrapped: WrappedKey, context: bytes) -> WrappedKey: ...


class FileKek:
    """A keyring file: {"primary": N, "keys": {"1": "<base64 of 32 bytes>", ...}}, mode 0600."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._load()

    def _load(self) -> None:
        path = self._path
        try:
            self._mtime = path.stat().st_mtime_ns
            doc = json.loads(path.read_text(encoding="utf-8"))
            self._keys = {int(v): base64.b64decode(k) for v, k in doc["keys"].items()}
            self._primary = int(doc["primary"])
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"KEK file {path} unreadable ({exc}); make one with FileKek.create") from exc
        if self._primary not in self._keys or any(len(k) != 32 for k in self._keys.values()):
            raise ValueError(f"KEK file {path}: every key must be 32 bytes and the primary one present")

    @classmethod
    def create(cls, path: Path) -> FileKek:
        """A new keyring with one random key (refuses to overwrite one: that would make every key unreadable)."""
        if path.exists():
            raise FileExistsError(f"KEK file {path} exists; rotate it instead of replacing it")
        _write_keyring(path, {1: AESGCM.generate_key(bit_length=256)}, 1)
        return cls(path)

    def _refresh(self) -> None:
        """Read the keyring again when the file changed (a rotation by `keys rotate` or another replica, a
        Kubernetes Secret updated in place): long-running services follow it without a restart."""
        try:
            changed = self._path.stat().st_mtime_ns != self._mtime
        except OSError:
            return  # keep the keys in hand; the next use tries again
        if changed:
            self._load()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def primary(self) -> int:
        self._refresh()
        return self._primary

    def wrap(self, plaintext: bytes, context: bytes) -> WrappedKey:
        self._refresh()
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self._keys[self._primary]).encrypt(nonce, plaintext, context)
        return WrappedKey(self.name, self._primary, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        self._refresh()
        key = self._keys.get(wrapped.version) if wrapped.kek == self.name else None
        if key is None:
            raise KeyUnwrapError(f"data key wrapped by {wrapped.kek} version {wrapped.version}: not in {self._path}")
        try:
            return AESGCM(key).decrypt(wrapped.ciphertext[:_NONCE], wrapped.ciphertext[_NONCE:], context)
        except InvalidTag:
            raise KeyUnwrapError(
                f"data key does not open with {self._path} version {wrapped.version}: another KEK's, another "
                "recording's, or changed"
            ) from None

    def rotate(self) -> int:
        """A new primary key; the old ones stay for unwrapping until every data key is re-wrapped."""
        self._refresh()
        version = max(self._keys) + 1
        keys = {**self._keys, version: AESGCM.generate_key(bit_length=256)}
        _write_keyring(self._path, keys, version)
        self._load()
        return version

    def rewrap(self, wrapped: WrappedKey, context: bytes) -> WrappedKey:
        return wrapped if wrapped.version == self._primary else self.wrap(self.unwrap(wrapped, context), context)


def _write_keyring(path: Path, keys: dict[int, bytes], primary: int) -> None:
    doc = {"primary": primary, "keys": {str(v): base64.b64encode(k).decode() for v, k in sorted(keys.items())}}
    write_json_atomically(path, doc)  # mode 0600, whole or not at all


class TransitKek:
    """OpenBao / Vault Transit through `hvac`: a derived aes256-gcm96 key, so each wrap is bound to its context."""

    def __init__(self, client: Any, key_name: str, mount_point: str = "transit") -> None:
        self._client = client
        self._key = key_name
        self._mount = mount_point
        self.name = f"transit:{key_name}"

    def ensure_key(self) -> None:
        """Create the key if the KMS has none of that name (derived: every use names its context)."""
        try:
            self._transit().read_key(self._key, mount_point=self._mount)
        except Exception as exc:  # noqa: BLE001 - hvac raises InvalidPath for a missing key; others below
            if type(exc).__name__ != "InvalidPath":
                raise self._away(exc) from exc
            self._call(
                lambda t: t.create_key(self._key, derived=True, key_type="aes256-gcm96", mount_point=self._mount)
            )

    def wrap(self, plaintext: bytes, context: bytes) -> WrappedKey:
        reply = self._call(
            lambda t: t.encrypt_data(
                self._key, plaintext=_b64(plaintext), context=_b64(context), mount_point=self._mount
            )
        )
        token = str(reply["data"]["ciphertext"])
        return WrappedKey(self.name, _version(token), token.encode())

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        if wrapped.kek != self.name:
            raise KeyUnwrapError(f"data key wrapped by {wrapped.kek}, not {self.name}")
        try:
            reply = self._transit().decrypt_data(
                self._key, ciphertext=wrapped.ciphertext.decode(), context=_b64(context), mount_point=self._mount
            )
        except Exception as exc:  # noqa: BLE001 - hvac's InvalidRequest: a wrong context or changed bytes
            if type(exc).__name__ in ("InvalidRequest", "InternalServerError"):
                raise KeyUnwrapError(f"{self.name} cannot open this data key: {exc}") from None
            raise self._away(exc) from exc
        return base64.b64decode(reply["data"]["plaintext"])

    def rotate(self) -> int:
        self._call(lambda t: t.rotate_key(self._key, mount_point=self._mount))
        reply = self._call(lambda t: t.read_key(self._key, mount_point=self._mount))
        return int(reply["data"]["latest_version"])

    def rewrap(self, wrapped: WrappedKey, context: bytes) -> WrappedKey:
        reply = self._call(
            lambda t: t.rewrap_data(
                self._key, ciphertext=wrapped.ciphertext.decode(), context=_b64(context), mount_point=self._mount
            )
        )
        token = str(reply["data"]["ciphertext"])
        return WrappedKey(self.name, _version(token), token.encode())

    def _transit(self) -> Any:
        return self._client.secrets.transit

    def _call(self, action: Any) -> Any:
        try:
            return action(self._transit())
        except Exception as exc:  # noqa: BLE001 - every hvac and connection failure: the KMS is away or refuses
            raise self._away(exc) from exc

    def _away(self, exc: Exception) -> Unavailable:
        return Unavailable(f"KMS {self.name} unusable: {type(exc).__name__}: {exc}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _version(token: str) -> int:
    """The key version a Transit ciphertext names: "vault:v3:..." -> 3."""
    try:
        return int(token.split(":")[1].removeprefix("v"))
    except (IndexError, ValueError):
        raise ValueError(f"not a Transit ciphertext: {token[:20]}...") from None
