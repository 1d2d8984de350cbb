"""`callscribe upload` against the real ingest service: what a user types, what they get back."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from callscribe.cli.main import main


def _upload(ingest, capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(["upload", *map(str, argv), "--address", ingest.address, "--token", ingest.tokens["acme"]])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_recording_is_archived_and_a_second_upload_is_a_duplicate(ingest, new_wav, archive, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "call-7.wav"
    path.write_bytes(new_wav(seconds_of_noise=40))  # > 1 MiB: several chunk messages
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    code, out, _ = _upload(ingest, capsys, path, "--json")
    assert code == 0
    [row] = json.loads(out)
    assert row["sha256"] == digest and row["duplicate"] is False
    stored = archive.read(f"recordings/acme/{row['recording_id']}/audio", row["version_id"])
    assert hashlib.sha256(stored).hexdigest() == digest

    code, out, _ = _upload(ingest, capsys, path)
    assert code == 0
    assert f"{row['recording_id']} sha256={digest} (duplicate: already archived)" in out


def test_a_file_that_is_not_audio_is_rejected_with_the_servers_message(ingest, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b"%PDF-1.7\n" + os.urandom(200_000))
    code, _, err = _upload(ingest, capsys, path)
    assert code == 1
    assert f"REJECTED {path}: INVALID_ARGUMENT" in err


def test_a_missing_file_is_reported_and_the_others_still_go(ingest, new_wav, tmp_path, capsys):  # type: ignore[no-untyped-def]
    good = tmp_path / "good.wav"
    good.write_bytes(new_wav())
    code, out, err = _upload(ingest, capsys, tmp_path / "nope.wav", good)
    assert code == 1
    assert "REJECTED" in err and "no such file" in err
    assert f"{good}: " in out


def test_a_stopped_server_is_unavailable(tmp_path, new_wav, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "call.wav"
    path.write_bytes(new_wav())
    code = main(["upload", str(path), "--address", "127.0.0.1:1", "--token", "x"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "UNAVAILABLE" in err


def test_an_empty_file_is_rejected_with_the_servers_message(ingest, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    code, _, err = _upload(ingest, capsys, path)
    assert code == 1
    assert f"REJECTED {path}: INVALID_ARGUMENT" in err
    assert "no audio bytes" in err
