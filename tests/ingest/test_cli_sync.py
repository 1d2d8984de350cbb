"""`callscribe sync DIR` against the real ingest service: a folder of recordings archived once, with metadata
from a manifest or the file names, a ledger that makes a re-run free, refusals with reasons, and --watch
taking files only once they are complete."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callscribe.cli.main import main
from callscribe.v1 import common_pb2 as c

LEDGER = ".callscribe-sync.jsonl"


def _sync(ingest, capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(["sync", *map(str, argv), "--address", ingest.address, "--token", ingest.tokens["acme"]])
    out, err = capsys.readouterr()
    return code, out, err


def _ledger(directory: Path) -> list[dict]:
    path = directory / LEDGER
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _uploads_seen(ingest) -> float:  # type: ignore[no-untyped-def]
    """Uploads the server has answered, all outcomes together."""
    with urllib.request.urlopen(ingest.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.split()[1]) for line in text.splitlines() if line.startswith("callscribe_ingest_uploads_total{")
    )


def _stereo_wav(clips, make_wav) -> bytes:  # type: ignore[no-untyped-def]
    """The test sentence on both channels, with 16 random bytes so no other call gets the same file."""
    mono = clips.speech_pcm
    frames = bytearray(len(mono) * 2)
    for offset in (0, 2):
        frames[offset::4] = mono[0::2]
        frames[offset + 1 :: 4] = mono[1::2]
    return make_wav(bytes(frames) + secrets.token_bytes(16), channels=2)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _manifest(path: Path, *rows: str) -> Path:
    path.write_text("file,call_id,agent,customer,started_at,layout,language,labels\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def night(tmp_path, new_wav, clips, make_wav):  # type: ignore[no-untyped-def]
    """Yesterday's export: a mono and a stereo call in a dated folder, a manifest, and what an SFTP share
    also holds (a hidden file, a transfer in progress, a note)."""
    share = tmp_path / "share"
    _write(share / "2024-03-01" / "a.wav", new_wav())
    _write(share / "2024-03-01" / "b.wav", _stereo_wav(clips, make_wav))
    _write(share / "2024-03-01" / ".c.wav", new_wav())
    _write(share / "2024-03-01" / "d.wav.part", new_wav())
    _write(share / "notes.txt", b"exported by the recorder\n")
    manifest = _manifest(
        tmp_path / "calls.csv",
        "2024-03-01/a.wav,C-1001,agent-42,cust-9,2024-03-01T09:30:00+08:00,mono,en,queue=billing;site=sh",
        "2024-03-01/b.wav,C-1002,agent-43,,2024-03-01T10:00:00+08:00,left,,queue=sales",
    )
    return share, manifest


def test_a_folder_is_archived_once_with_the_manifests_metadata(ingest, night, capsys):  # type: ignore[no-untyped-def]
    share, manifest = night
    code, out, err = _sync(ingest, capsys, share, "--manifest", manifest, "--settle-seconds", "0")
    assert code == 0, out + err

    lines = _ledger(share)
    assert [(e["path"], e["outcome"]) for e in lines] == [
        ("2024-03-01/a.wav", "archived"),
        ("2024-03-01/b.wav", "archived"),
    ]
    by_path = {e["path"]: e for e in lines}
    for rel, entry in by_path.items():
        data = (share / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data) and entry["mtime_ns"] == (share / rel).stat().st_mtime_ns
    a, b = by_path["2024-03-01/a.wav"]["recording_id"], by_path["2024-03-01/b.wav"]["recording_id"]
    assert f"[1/2] 2024-03-01/a.wav → {a} (archived)" in out
    assert f"[2/2] 2024-03-01/b.wav → {b} (archived)" in out
    assert "2 archived, 0 duplicate, 0 skipped (already synced), 0 refused" in out
    assert "ignored 1 file(s) that are not recordings" in out
    assert ".c.wav" not in out and "d.wav.part" not in out

    rec = ingest.get("acme", a).metadata
    assert (rec.call_id, rec.agent_id, rec.customer_id) == ("C-1001", "agent-42", "cust-9")
    assert rec.started_at.ToDatetime(tzinfo=UTC) == datetime(2024, 3, 1, 1, 30, tzinfo=UTC)
    assert rec.channel_layout == c.CHANNEL_LAYOUT_MONO and rec.language == c.LANGUAGE_EN
    assert dict(rec.labels) == {"queue": "billing", "site": "sh"}
    assert rec.filename == "2024-03-01/a.wav"
    rec = ingest.get("acme", b).metadata
    assert (rec.call_id, rec.agent_id, rec.customer_id) == ("C-1002", "agent-43", "")
    assert rec.started_at.ToDatetime(tzinfo=UTC) == datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    assert rec.channel_layout == c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT and rec.language == c.LANGUAGE_AUTO
    assert dict(rec.labels) == {"queue": "sales"}


def test_a_second_run_sends_nothing_and_a_changed_file_goes_again(ingest, night, clips, make_wav, capsys):  # type: ignore[no-untyped-def]
    share, manifest = night
    args = (share, "--manifest", manifest, "--settle-seconds", "0")
    assert _sync(ingest, capsys, *args)[0] == 0
    first = {e["path"]: e["recording_id"] for e in _ledger(share)}

    uploads = _uploads_seen(ingest)
    code, out, _ = _sync(ingest, capsys, *args)
    assert code == 0
    assert f"2024-03-01/a.wav → {first['2024-03-01/a.wav']} (skipped: already synced)" in out
    assert f"2024-03-01/b.wav → {first['2024-03-01/b.wav']} (skipped: already synced)" in out
    assert "0 archived, 0 duplicate, 2 skipped (already synced), 0 refused" in out
    assert _uploads_seen(ingest) == uploads  # not one upload: the ledger answered
    assert len(_ledger(share)) == 2

    # Touched (same bytes, new mtime): sent again, and the server knows them. Rewritten: a new recording.
    a = share / "2024-03-01" / "a.wav"
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 5_000_000_000))
    (share / "2024-03-01" / "b.wav").write_bytes(_stereo_wav(clips, make_wav))
    code, out, _ = _sync(ingest, capsys, *args)
    assert code == 0, out
    assert f"2024-03-01/a.wav → {first['2024-03-01/a.wav']} (duplicate)" in out
    assert "1 archived, 1 duplicate, 0 skipped (already synced), 0 refused" in out
    lines = _ledger(share)
    assert [(e["path"], e["outcome"]) for e in lines[2:]] == [
        ("2024-03-01/a.wav", "duplicate"),
        ("2024-03-01/b.wav", "archived"),
    ]
    assert lines[3]["recording_id"] != first["2024-03-01/b.wav"]
    assert ingest.get("acme", lines[3]["recording_id"]).metadata.call_id == "C-1002"


def test_a_ledger_line_cut_by_a_crash_is_dropped_and_its_file_checked_again(ingest, night, capsys):  # type: ignore[no-untyped-def]
    share, manifest = night
    args = (share, "--manifest", manifest, "--settle-seconds", "0")
    assert _sync(ingest, capsys, *args)[0] == 0
    ledger = share / LEDGER
    text = ledger.read_text()
    ledger.write_text(text[: len(text) - 40])  # the second line's end never reached the disk

    code, out, err = _sync(ingest, capsys, *args)
    assert code == 0
    assert "removed an incomplete last line" in err
    assert "2024-03-01/a.wav → " in out and "(skipped: already synced)" in out
    assert "2024-03-01/b.wav → " in out and "(duplicate)" in out
    assert [(e["path"], e["outcome"]) for e in _ledger(share)] == [
        ("2024-03-01/a.wav", "archived"),
        ("2024-03-01/b.wav", "duplicate"),
    ]


def test_bad_values_missing_files_and_non_audio_are_refused_with_reasons_and_the_rest_archived(
    ingest, tmp_path, new_wav, capsys
):  # type: ignore[no-untyped-def]
    share = tmp_path / "share"
    _write(share / "good.wav", new_wav())
    _write(share / "sideways.wav", new_wav())
    _write(share / "invoice.wav", b"%PDF-1.7\n" + os.urandom(20_000))
    _write(share / "late-start.wav", new_wav())
    _write(share / "stray.wav", new_wav())
    manifest = _manifest(
        tmp_path / "calls.csv",
        "good.wav,C-1,agent-1,,2024-03-01T09:00:00+08:00,mono,zh,",
        "sideways.wav,C-2,agent-1,,,middle,,",
        "invoice.wav,C-3,agent-1,,,,,",
        "gone.wav,C-4,agent-1,,,,,",
        "late-start.wav,C-5,agent-1,,yesterday,,,",
    )
    code, out, _ = _sync(ingest, capsys, share, "--manifest", manifest, "--settle-seconds", "0")
    assert code == 1

    [entry] = _ledger(share)
    assert entry["path"] == "good.wav" and entry["outcome"] == "archived"
    assert f"good.wav → {entry['recording_id']} (archived)" in out
    assert ingest.get("acme", entry["recording_id"]).metadata.language == c.LANGUAGE_ZH
    refused = out.split("refused:\n", 1)[1]
    assert "sideways.wav: manifest row 3: layout 'middle': use mono, left or right" in refused
    assert "invoice.wav: INVALID_ARGUMENT: " in refused
    assert "gone.wav: manifest row 5: no such file under" in refused
    assert "late-start.wav: manifest row 6: started_at 'yesterday' does not match ISO 8601" in refused
    assert f"stray.wav: it is not in the manifest {manifest}" in refused
    assert "1 archived, 0 duplicate, 0 skipped (already synced), 5 refused" in out
    assert "→ refused: manifest row 3: layout 'middle'" in out  # the progress line says it too


def test_metadata_from_the_file_name(ingest, tmp_path, new_wav, capsys):  # type: ignore[no-untyped-def]
    share = tmp_path / "share"
    _write(share / "agent42_C-2001_20240301-093000.wav", new_wav())
    _write(share / "agent7_C-2002_20240301-101500.WAV", new_wav())
    _write(share / "unnamed.wav", new_wav())
    code, out, _ = _sync(
        ingest,
        capsys,
        share,
        "--name-pattern",
        r"(?P<agent>[^_]+)_(?P<call_id>[^_]+)_(?P<started_at>\d{8}-\d{6})\.(?i:wav)",
        "--started-at-format",
        "%Y%m%d-%H%M%S",
        "--timezone",
        "+08:00",
        "--label",
        "source=nightly",
        "--settle-seconds",
        "0",
    )
    assert code == 1
    assert "unnamed.wav → refused: its name does not match --name-pattern" in out
    ids = {e["path"]: e["recording_id"] for e in _ledger(share)}
    assert set(ids) == {"agent42_C-2001_20240301-093000.wav", "agent7_C-2002_20240301-101500.WAV"}
    rec = ingest.get("acme", ids["agent42_C-2001_20240301-093000.wav"]).metadata
    assert (rec.agent_id, rec.call_id) == ("agent42", "C-2001")
    assert rec.started_at.ToDatetime(tzinfo=UTC) == datetime(2024, 3, 1, 1, 30, tzinfo=UTC)
    assert dict(rec.labels) == {"source": "nightly"}
    rec = ingest.get("acme", ids["agent7_C-2002_20240301-101500.WAV"]).metadata
    assert (rec.agent_id, rec.call_id) == ("agent7", "C-2002")
    assert rec.started_at.ToDatetime(tzinfo=UTC) == datetime(2024, 3, 1, 2, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--manifest", "{tmp}/bad.csv"), "unknown column(s) 'agent_id'"),
        (("--name-pattern", r"(?P<agent_id>\w+)\.wav"), "--name-pattern group(s) agent_id unknown"),
        (("--name-pattern", r"(\w+\.wav"), "is not a valid regular expression"),
        (("--started-at-format", "%Y%m%d"), "--started-at-format reads the started_at group"),
        (("--timezone", "CST"), "--timezone 'CST': expected a UTC offset"),
        (("--settle-seconds", "-1"), "--settle-seconds -1.0: use a number of seconds"),
        (("--label", "nightly"), "--label 'nightly': expected KEY=VALUE"),
    ],
)
def test_usage_errors_exit_2_and_change_nothing(ingest, tmp_path, new_wav, capsys, argv, message):  # type: ignore[no-untyped-def]
    share = tmp_path / "share"
    _write(share / "a.wav", new_wav())
    (tmp_path / "bad.csv").write_text("file,agent_id\na.wav,agent-1\n")
    uploads = _uploads_seen(ingest)
    code, _, err = _sync(ingest, capsys, share, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert code == 2
    assert message in err
    assert not (share / LEDGER).exists()
    assert _uploads_seen(ingest) == uploads


def test_a_second_sync_on_the_same_ledger_exits_2(ingest, night, capsys):  # type: ignore[no-untyped-def]
    share, manifest = night
    with (share / LEDGER).open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # a run still under way
        code, _, err = _sync(ingest, capsys, share, "--manifest", manifest, "--settle-seconds", "0")
    assert code == 2
    assert "another callscribe sync is using the ledger" in err
    assert _ledger(share) == []


def test_a_server_that_is_down_stops_the_run_and_the_next_run_sends_everything(
    ingest, night, capsys, monkeypatch
):  # type: ignore[no-untyped-def]
    share, manifest = night
    monkeypatch.setattr("callscribe.cli.sync.RETRY_DELAYS_S", (0.1,))
    args = ["--manifest", str(manifest), "--settle-seconds", "0"]
    code = main(["sync", str(share), *args, "--address", "127.0.0.1:1", "--token", ingest.tokens["acme"]])
    out, err = capsys.readouterr()
    assert code == 1
    assert "2024-03-01/a.wav: UNAVAILABLE: " in err and "trying again in 0.1 s" in err
    assert "stopped: UNAVAILABLE: " in out
    assert "2 file(s) not sent yet" in out
    assert _ledger(share) == []

    code, out, _ = _sync(ingest, capsys, share, *args)
    assert code == 0
    assert "2 archived, 0 duplicate, 0 skipped (already synced), 0 refused" in out


def test_watch_takes_files_once_complete_and_follows_the_manifest(ingest, tmp_path, new_wav):  # type: ignore[no-untyped-def]
    share = tmp_path / "share"
    _write(share / "first.wav", new_wav())
    manifest = _manifest(
        tmp_path / "calls.csv",
        "first.wav,C-1,agent-1,,,,,",
        "growing.wav,C-3,agent-3,,,,,",
        "never.wav,C-9,agent-9,,,,,",
    )
    out_path = tmp_path / "sync.out"
    settle = 3.0
    argv = [sys.executable, "-m", "callscribe.cli.main", "sync", str(share), "--watch", "--manifest", str(manifest)]
    argv += ["--settle-seconds", str(settle), "--address", ingest.address, "--token", ingest.tokens["acme"]]
    with out_path.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:

        def synced(name: str) -> list[dict]:
            return [e for e in _ledger(share) if e["path"] == name]

        def wait_synced(name: str) -> dict:
            deadline = time.monotonic() + 30
            while not synced(name):
                assert proc.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, f"{name} not synced: {out_path.read_text()}"
                time.sleep(0.1)
            return synced(name)[0]

        wait_synced("first.wav")

        # Arrives after the start, without a manifest row: it waits for one.
        _write(share / "late.wav", new_wav())
        time.sleep(settle + 2)
        assert not synced("late.wav"), "a file the manifest does not name was uploaded"
        with manifest.open("a") as rows:
            rows.write("late.wav,C-2,agent-2,,,,,\n")
        entry = wait_synced("late.wav")
        assert ingest.get("acme", entry["recording_id"]).metadata.agent_id == "agent-2"

        # A recording written slowly: half, then a piece every 0.5 s for twice the settle time.
        data = new_wav(seconds_of_noise=4)
        growing = share / "growing.wav"
        half = len(data) // 2
        growing.write_bytes(data[:half])
        step = (len(data) - half) // 12 + 1
        started = time.monotonic()
        for at in range(half, len(data), step):
            time.sleep(0.5)
            with growing.open("ab") as handle:
                handle.write(data[at : at + step])
            assert not synced("growing.wav"), "a file still being written was uploaded"
        assert time.monotonic() - started > settle  # it was written for longer than the settle time
        assert "growing.wav" not in out_path.read_text()
        entry = wait_synced("growing.wav")
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
        assert ingest.get("acme", entry["recording_id"]).metadata.agent_id == "agent-3"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 1  # never.wav never came: its row is refused
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = out_path.read_text()
    assert len(synced("growing.wav")) == 1
    assert [line for line in out.splitlines() if "growing.wav" in line] == [
        f"[3/3] growing.wav → {entry['recording_id']} (archived)"
    ]
    assert "3 archived, 0 duplicate, 0 skipped (already synced), 1 refused" in out
    assert "  never.wav: manifest row 4: no such file under" in out
    assert "stopped: SIGTERM received" in out
