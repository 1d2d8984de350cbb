"""Everything a user supplied is printed escaped (issue 16, hole 5): a label with CR, LF or ESC, a bidi
override or a zero-width character in an id can neither move the cursor, recolour the terminal nor
reorder what a person reads. Such text can still come from records stored before the services refused it."""

from __future__ import annotations

import pytest

from callscribe.cli.calls import format_call, format_hit
from callscribe.cli.status import format_recording
from callscribe.kit.text import shown, unsafe_character
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as ipb
from callscribe.v1 import ingest_pb2 as pb

HOSTILE = "a\x1b[31mred\r\nline\u202egpj.exe\u200b\ufeff\x7f\x85"
RAW = ("\x1b", "\r", "\n", "\u202e", "\u200b", "\ufeff", "\x7f", "\x85")


def _clean(text: str) -> None:
    for line in text.splitlines():
        assert not any(ch in line for ch in RAW), repr(line)
    assert "\\x1b" in text and "\\u202e" in text


def test_shown_escapes_what_a_terminal_would_obey_and_keeps_the_rest() -> None:
    assert shown("退费 refund ñ") == "退费 refund ñ"
    assert shown(HOSTILE) == "a\\x1b[31mred\\x0d\\x0aline\\u202egpj.exe\\u200b\\ufeff\\x7f\\x85"
    assert shown("C:\\calls") == "C:\\\\calls"  # a backslash cannot fake an escape
    assert unsafe_character("ok id-1") is None
    assert unsafe_character("bidi\u202e") == "U+202E RIGHT-TO-LEFT OVERRIDE at position 4"


def test_status_prints_hostile_labels_and_ids_escaped() -> None:
    rec = pb.Recording(
        recording_id="0" * 32,
        state=c.PIPELINE_STATE_FAILED,
        state_detail=f"vad: {HOSTILE}",
        metadata=c.RecordingMetadata(call_id=HOSTILE, agent_id=HOSTILE, labels={"note": HOSTILE}, filename=HOSTILE),
    )
    out = format_recording(rec)
    _clean(out)
    # Every line is the CLI's own: the header, or an indented "name value" row; none was injected by the text.
    assert all(line.startswith(("recording ", "  ")) for line in out.split("\n")), out


@pytest.mark.parametrize("color", [False, True])
def test_search_and_show_print_transcripts_and_ids_escaped(color: bool) -> None:
    hit = ipb.CallHit(
        recording_id="0" * 32,
        call_id=HOSTILE,
        agent_id=HOSTILE,
        utterances=[ipb.UtteranceHit(text=HOSTILE, highlight=f"<em>{HOSTILE}</em>")],
    )
    out = format_hit(hit, color)
    if color:  # our own colours are the only escape sequences left
        out = out.replace("\x1b[1m", "").replace("\x1b[0m", "")
    _clean(out)
    call = ipb.Call(
        recording_id="0" * 32,
        metadata=c.RecordingMetadata(call_id=HOSTILE, agent_id=HOSTILE),
        utterances=[ipb.Utterance(text=HOSTILE, normalized_text=HOSTILE + "!")],
    )
    out = format_call(call, False)
    _clean(out)
