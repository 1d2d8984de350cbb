"""Evidence is archived as sent; audio the services cannot analyse is shown as such, not as a system fault
(issue 16, hole 6): two WAV files concatenated pass ingest's checks (the first file is complete; ingest
keeps what was sent), VAD refuses the trailing bytes, and the recording ends NOT_ANALYSABLE with the
reason: final, kept under its lock, and not a dead letter."""

from __future__ import annotations

from pathlib import Path

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2

from .conftest import PipelineStack


def test_two_wavs_concatenated_are_archived_and_shown_not_analysable(  # type: ignore[no-untyped-def]
    pipeline: PipelineStack, make_calls, tmp_path: Path
) -> None:
    (path,) = make_calls("concatenated", 1)
    doubled = tmp_path / "doubled.wav"
    doubled.write_bytes(path.read_bytes() * 2)
    rec_id = pipeline.upload(doubled, "acme", "concatenated-0")
    pipeline.wait_until(
        "the recording to be found not analysable",
        lambda: pipeline.state_of("acme", rec_id).state == c.PIPELINE_STATE_NOT_ANALYSABLE,
        timeout=180,
    )
    rec = pipeline.state_of("acme", rec_id)
    assert rec.state_detail.startswith("archived, not analysable (vad): INVALID_ARGUMENT"), rec.state_detail
    assert rec.object.key and rec.lock.mode == c.LOCK_MODE_COMPLIANCE  # the evidence is kept as sent
    dead = pipeline.ingest().ListDeadLetters(
        ingest_pb2.ListDeadLettersRequest(page_size=1000), metadata=pipeline.auth("acme"), timeout=10
    )
    assert rec_id not in {d.recording_id for d in dead.dead_letters}
    assert pipeline.indexed("acme", [rec_id]) == set()
