"""Mono diarization benchmark: DER of the VAD's diarize step on synthetic two-voice calls.

    python bench/diarize.py [--calls 20] [--one-voice 4] [--cache .bench-cache/diarize] [--json OUT]

Each call (`callscribe.cli.dialogue.bench_specs`): 8 to 14 turns spoken by two different espeak-ng voices
(8 male/female pairs, both ways round), with pauses, holds of 4-7 s, overlaps of 0.3-1.2 s and short
backchannels, every fourth with light noise; mixed down to mono. The mono file goes through the VAD's own
code path (FSMN detection, then `mono.split_speakers`, as a VAD worker runs it, in this process, one
thread) and is scored against the same call's two-channel truth (each speaker's speech from their own
clean track) by `bench/der.py`: DER with a 0.25 s collar, optimal speaker mapping; missed speech and false
alarm include the VAD's own boundary errors and the overlaps a mono segment cannot give to two speakers.

`--one-voice` calls are spoken by one voice only: they must come back MIXED (the table shows the reason).
Synthesized calls are cached under `--cache` (the same spec gives the same bytes). Exit 0 always (it is a
measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as a VAD worker runs (VAD_THREADS_PER_WORKER=1)

import der  # noqa: E402 - bench/der.py, next to this file

from callscribe.cli.dialogue import VOICE_PAIRS, DialogueSpec, bench_specs, synthesize_dialogue  # noqa: E402
from callscribe.vad import pool  # noqa: E402
from callscribe.vad.detect import DIARIZED  # noqa: E402
from callscribe.vad.engines import VadParams  # noqa: E402
from callscribe.vad.mono import DiarizeConfig  # noqa: E402


def hypothesis(outcome: pool.Outcome) -> list[tuple[str, int, int]]:
    """The VAD's answer as labelled speech: the speaker of each segment ("0" for all when MIXED)."""
    return [(str(s.speaker), s.start_ms, s.end_ms) for s in outcome.detection.segments]


def run(calls: int, one_voice: int, cache: Path) -> dict[str, object]:
    pool.init_worker(pool.ModelConfig("fsmn", None, 1, DiarizeConfig()))
    rows = []
    specs = bench_specs(calls) + [
        (f"one{i:02d}", DialogueSpec(seed=500 + i, voices=VOICE_PAIRS[i % len(VOICE_PAIRS)], one_voice=True))
        for i in range(one_voice)
    ]
    print(
        f"{'call':7} {'voices':26} {'audio s':>7} {'status':9} {'sim':>5} {'miss':>6} {'FA':>6} {'conf':>6} "
        f"{'DER':>6} {'RTF':>7}"
    )
    for name, spec in specs:
        dialogue = synthesize_dialogue(cache, name, spec)
        started = time.perf_counter()
        with_voices = pool.run_job(pool.Job(str(dialogue.mono), "MONO", "fsmn", VadParams(), diarize=True))
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        pool.run_job(pool.Job(str(dialogue.mono), "MONO", "fsmn", VadParams(), diarize=False))
        vad_only = time.perf_counter() - started
        d = with_voices.detection.diarization
        score = der.score(dialogue.reference, hypothesis(with_voices))
        audio_s = with_voices.duration_ms / 1000
        row = {
            "call": name,
            "voices": "one voice: " + spec.voices[0] if spec.one_voice else " vs ".join(spec.voices),
            "one_voice": spec.one_voice,
            "audio_s": audio_s,
            "status": d.status,
            "reason": d.reason,
            "similarity": d.similarity,
            "missed": score.part(score.missed_ms),
            "false_alarm": score.part(score.false_alarm_ms),
            "confusion": score.part(score.confusion_ms),
            "der": score.rate,
            "diarize_rtf": max(0.0, seconds - vad_only) / audio_s if audio_s else 0.0,
        }
        rows.append(row)
        print(
            f"{name:7} {row['voices']:26} {audio_s:7.1f} {d.status:9} {d.similarity:5.2f} {row['missed']:6.3f} "
            f"{row['false_alarm']:6.3f} {row['confusion']:6.3f} {row['der']:6.3f} {row['diarize_rtf']:7.4f}"
            + (f"  {d.reason}" if d.reason else ""),
            flush=True,
        )
    two = [r for r in rows if not r["one_voice"]]
    summary = {
        "calls": len(two),
        "mean_der": statistics.fmean(float(r["der"]) for r in two) if two else 0.0,
        "max_der": max((float(r["der"]) for r in two), default=0.0),
        "mean_confusion": statistics.fmean(float(r["confusion"]) for r in two) if two else 0.0,
        "diarized": sum(1 for r in two if r["status"] == DIARIZED),
        "one_voice_mixed": sum(1 for r in rows if r["one_voice"] and r["status"] != DIARIZED),
        "one_voice_calls": sum(1 for r in rows if r["one_voice"]),
        "mean_diarize_rtf": statistics.fmean(float(r["diarize_rtf"]) for r in rows) if rows else 0.0,
    }
    print(
        f"\ntwo-voice calls: {summary['calls']}, diarized {summary['diarized']}, mean DER {summary['mean_der']:.3f} "
        f"(worst {summary['max_der']:.3f}; speaker confusion {summary['mean_confusion']:.3f}); one-voice calls left "
        f"MIXED: {summary['one_voice_mixed']}/{summary['one_voice_calls']}; diarize step RTF "
        f"{summary['mean_diarize_rtf']:.4f} (one thread, on top of the detection)"
    )
    return {"rows": rows, "summary": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20, help="two-voice calls (default 20)")
    parser.add_argument("--one-voice", type=int, default=4, help="one-voice calls (default 4)")
    parser.add_argument("--cache", type=Path, default=Path(".bench-cache/diarize"))
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    args = parser.parse_args()
    result = run(args.calls, args.one_voice, args.cache)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
