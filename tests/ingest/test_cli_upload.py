"""`callscribe upload` against the real ingest service: what a user types, what they get back."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import grpc
import pytest

from callscribe.cli.main import main
from callscribe.kit.ids import not_a_recording_id
from callscribe.v1 import ingest_pb2 as pb

TOKEN_REFUSED = "the token was refused: check --token / CALLSCRIBE_TOKEN (or use --tenant T against the local stack)"


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
    assert out.splitlines()[0] == f"[1/1] {path} → {row['recording_id']} (duplicate)"


def test_a_file_that_is_not_audio_is_rejected_with_the_servers_message(ingest, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b"%PDF-1.7\n" + os.urandom(200_000))
    code, out, _ = _upload(ingest, capsys, path)
    assert code == 1
    assert out.splitlines()[0].startswith(f"[1/1] {path} → refused: INVALID_ARGUMENT: ")


def test_a_missing_file_is_reported_and_the_others_still_go(ingest, new_wav, tmp_path, capsys):  # type: ignore[no-untyped-def]
    good = tmp_path / "good.wav"
    good.write_bytes(new_wav())
    code, out, _ = _upload(ingest, capsys, tmp_path / "nope.wav", good)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"[1/2] {tmp_path / 'nope.wav'} → refused: no such file"
    assert lines[1].startswith(f"[2/2] {good} → ") and lines[1].endswith(" (archived)")


def test_a_stopped_server_is_named_with_its_address(tmp_path, new_wav, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "call.wav"
    path.write_bytes(new_wav())
    code = main(["upload", str(path), "--address", "127.0.0.1:1", "--token", "x"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.strip() == (
        "callscribe upload: cannot reach ingest at 127.0.0.1:1 — is it running? `callscribe stack status`"
    )
    assert "failed to connect" not in err.lower()
    assert "not sent    1" in out


def test_many_files_show_n_of_m_and_a_summary(ingest, new_wav, tmp_path, capsys):  # type: ignore[no-untyped-def]
    first, second, pdf = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.pdf"
    first.write_bytes(new_wav())
    second.write_bytes(new_wav())
    pdf.write_bytes(b"%PDF-1.7\n" + os.urandom(100_000))
    again = tmp_path / "a-again.wav"
    again.write_bytes(first.read_bytes())
    missing = tmp_path / "gone.wav"
    code, out, _ = _upload(ingest, capsys, first, pdf, second, again, missing)
    assert code == 1
    lines = out.splitlines()
    first_id = lines[0].split(" → ")[1].split()[0]
    assert lines[0] == f"[1/5] {first} → {first_id} (archived)"
    assert lines[1].startswith(f"[2/5] {pdf} → refused: INVALID_ARGUMENT: ")
    assert lines[2].startswith(f"[3/5] {second} → ") and lines[2].endswith(" (archived)")
    assert lines[3] == f"[4/5] {again} → {first_id} (duplicate)"
    assert lines[4] == f"[5/5] {missing} → refused: no such file"
    summary = lines[lines.index("") + 1 :]
    assert summary[:3] == ["archived    2", "duplicates  1", "refused     2"]
    assert summary[3].startswith(f"  {pdf}") and "INVALID_ARGUMENT" in summary[3]
    assert summary[4].split() == [str(missing), "no", "such", "file"]


def test_all_files_accepted_exit_0(ingest, new_wav, tmp_path, capsys):  # type: ignore[no-untyped-def]
    paths = [tmp_path / f"ok-{n}.wav" for n in range(2)]
    for path in paths:
        path.write_bytes(new_wav())
    code, out, _ = _upload(ingest, capsys, *paths)
    assert code == 0
    assert out.splitlines()[-3:] == ["archived    2", "duplicates  0", "refused     0"]


def test_started_at_is_sent_in_utc(ingest, new_wav, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "dated.wav"
    path.write_bytes(new_wav())
    code, out, _ = _upload(ingest, capsys, path, "--started-at", "2024-05-01T09:30:00+08:00", "--json")
    assert code == 0
    [row] = json.loads(out)
    rec = ingest.get("acme", row["recording_id"])
    assert rec.metadata.started_at.ToJsonString() == "2024-05-01T01:30:00Z"


def test_zh_script_is_sent_and_a_wrong_one_is_refused_by_the_flags(ingest, new_wav, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "hk.wav"
    path.write_bytes(new_wav())
    code, out, _ = _upload(ingest, capsys, path, "--zh-script", "traditional_hk", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert ingest.get("acme", row["recording_id"]).metadata.zh_script == "traditional_hk"
    with pytest.raises(SystemExit) as exit_:
        _upload(ingest, capsys, path, "--zh-script", "hant")
    assert exit_.value.code == 2
    assert "--zh-script: invalid choice: 'hant'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["2024-05-01T09:30:00", "2024-05-01", "yesterday", "2024-05-01T25:00:00Z"])
def test_a_started_at_without_offset_or_unreadable_is_refused_before_sending(  # type: ignore[no-untyped-def]
    ingest, new_wav, archive, tmp_path, capsys, value
):
    path = tmp_path / "undated.wav"
    path.write_bytes(new_wav())
    before = archive.versions()
    code, out, err = _upload(ingest, capsys, path, "--started-at", value)
    assert code == 2
    assert out == ""
    assert err.startswith(f"callscribe upload: --started-at {value!r}")
    assert "+08:00" in err and "Z" in err
    assert archive.versions() == before


def test_a_wrong_token_is_put_in_cli_terms(ingest, new_wav, tmp_path, capsys):  # type: ignore[no-untyped-def]
    paths = [tmp_path / "t1.wav", tmp_path / "t2.wav"]
    for path in paths:
        path.write_bytes(new_wav())
    code = main(["upload", *map(str, paths), "--address", ingest.address, "--token", "not-a-token"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.strip() == f"callscribe upload: {TOKEN_REFUSED}"
    assert "metadata" not in err and "authorization" not in err
    assert "not sent    2" in out  # one refusal for the batch, not one per file


def test_a_stereo_file_without_a_layout_names_the_flag(ingest, clips, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "stereo.wav"
    path.write_bytes(clips.files["stereo"])
    code, out, _ = _upload(ingest, capsys, path)
    assert code == 1
    line = out.splitlines()[0]
    assert line.startswith(f"[1/1] {path} → refused: INVALID_ARGUMENT: ")
    assert "set --agent-channel to left or right" in line
    assert "channel_layout" not in out and "STEREO_AGENT" not in out


def test_a_malformed_id_gets_the_services_message_before_any_call(ingest, capsys):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        ingest.stub.GetRecording(pb.GetRecordingRequest(recording_id="deadbeef"), metadata=ingest.auth("acme"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    served = err.value.details()
    assert served == not_a_recording_id("deadbeef")
    for argv in (["status", "deadbeef"], ["hold", "deadbeef", "on"], ["show", "deadbeef"]):
        code = main([*argv, "--address", "127.0.0.1:1", "--token", "x"])  # never called: nothing listens there
        assert code == 2
        assert capsys.readouterr().err.strip() == f"callscribe {argv[0]}: {served}"
    code = main(["status", "0" * 32, "--address", ingest.address, "--token", ingest.tokens["acme"]])
    assert code == 1
    assert capsys.readouterr().err.startswith("callscribe status: NOT_FOUND: ")


def test_an_empty_file_is_rejected_with_the_servers_message(ingest, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    code, out, _ = _upload(ingest, capsys, path)
    assert code == 1
    assert out.splitlines()[0].startswith(f"[1/1] {path} → refused: INVALID_ARGUMENT: ")
    assert "no audio bytes" in out
