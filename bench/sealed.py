"""What sealing a spool file costs: write + read throughput of a sealed file against a plain temp file.

`python bench/sealed.py [--mb 50] [--rounds 3] [--dir DIR] [--spool]` writes `--mb` MiB of random bytes in 1 MiB
blocks (as ingest's spool receives gRPC chunks) to a plain temp file and to a sealed one
(`callscribe.audio.sealed`, AES-256-GCM in 64 KiB chunks), then reads each back front to back in 1 MiB
blocks (ingest's `read_back`) and in 32 KiB blocks (what FFmpeg's custom I/O asks for), then checks the
bytes (untimed). Prints MiB/s per step, the median of `--rounds`; the files live in `--dir` (default: TMPDIR) and
are removed. Neither path calls fsync: the spool never does, so both mostly measure the page cache.

`--spool` also times ingest's whole spool path for a `--mb` MiB 16-bit PCM WAV: `UploadSpool` with
every byte spilled (1 MiB appends with SHA-256), `finish` (libsndfile decodes every frame) and
`read_back`. It runs whatever `callscribe.ingest` is on PYTHONPATH: run it once more with the sources
of a commit before sealing to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BLOCK = 1024 * 1024


def _timed(step: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def _read_all(open_reader: Callable[[], object], block: int) -> int:
    size = 0
    with open_reader() as fh:  # type: ignore[attr-defined]
        while chunk := fh.read(block):
            size += len(chunk)
    return size


def _sha(open_reader: Callable[[], object]) -> str:
    sha = hashlib.sha256()
    with open_reader() as fh:  # type: ignore[attr-defined]
        while chunk := fh.read(BLOCK):
            sha.update(chunk)
    return sha.hexdigest()


def _round(directory: Path, data: bytes) -> dict[str, float]:
    from callscribe.audio.sealed import SealedWriter  # here: --spool-only also runs on sources before it

    expected = hashlib.sha256(data).hexdigest()
    mib = len(data) / 2**20
    out: dict[str, float] = {}

    fd, name = tempfile.mkstemp(suffix=".bench", dir=directory)
    plain = Path(name)

    def write_plain() -> None:
        with os.fdopen(fd, "wb") as fh:
            for at in range(0, len(data), BLOCK):
                fh.write(data[at : at + BLOCK])

    writer = SealedWriter.create(directory, ".bench")

    def write_sealed() -> object:
        for at in range(0, len(data), BLOCK):
            writer.write(memoryview(data)[at : at + BLOCK])
        return writer.finish()

    try:
        seconds, _ = _timed(write_plain)
        out["plain write"] = mib / seconds
        seconds, sealed = _timed(write_sealed)
        out["sealed write"] = mib / seconds
        for block, label in ((BLOCK, "1 MiB reads"), (32 * 1024, "32 KiB reads")):
            seconds, size = _timed(lambda b=block: _read_all(lambda: plain.open("rb"), b))
            assert size == len(data)
            out[f"plain {label}"] = mib / seconds
            seconds, size = _timed(lambda b=block: _read_all(sealed.open, b))  # type: ignore[attr-defined]
            assert size == len(data)
            out[f"sealed {label}"] = mib / seconds
        # untimed: both read back the bytes written
        assert _sha(lambda: plain.open("rb")) == expected == _sha(sealed.open)  # type: ignore[attr-defined]
    finally:
        plain.unlink(missing_ok=True)
        writer.close()
        writer.path.unlink(missing_ok=True)
    return out


def _spool_round(directory: Path, wav: bytes) -> dict[str, float]:
    from callscribe.ingest.upload.spool import UploadSpool

    mib = len(wav) / 2**20
    spool = UploadSpool(directory, 1 << 40, memory_bytes=0, keep_bytes=True)
    try:
        started = time.perf_counter()
        for at in range(0, len(wav), BLOCK):
            spool.append(wav[at : at + BLOCK])
        appended = time.perf_counter()
        sha256, facts = spool.finish()
        finished = time.perf_counter()
        size = sum(len(block) for block in spool.read_back())
        done = time.perf_counter()
    finally:
        spool.discard()
    assert size == len(wav) and sha256 == hashlib.sha256(wav).hexdigest() and facts.frames > 0
    return {
        "spool append": mib / (appended - started),
        "spool finish": mib / (finished - appended),
        "spool read_back": mib / (done - finished),
        "spool total": mib / (done - started),
    }


def _wav(mb: int) -> bytes:
    import struct

    pcm = os.urandom(mb * 2**20 // 2 * 2)
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--spool", action="store_true", help="also time ingest's UploadSpool path")
    parser.add_argument("--spool-only", action="store_true", help="only time ingest's UploadSpool path")
    args = parser.parse_args()
    if args.spool or args.spool_only:
        wav = _wav(args.mb)
        spooled = [_spool_round(args.dir, wav) for _ in range(args.rounds)]
        print(f"UploadSpool, {args.mb} MiB WAV, median of {args.rounds} rounds, MiB/s:")
        for step in spooled[0]:
            print(f"  {step:<22} {statistics.median(r[step] for r in spooled):8.0f}")
        if args.spool_only:
            return
    data = os.urandom(args.mb * 2**20)
    rounds = [_round(args.dir, data) for _ in range(args.rounds)]
    print(f"{args.mb} MiB, median of {args.rounds} rounds, MiB/s (TMPDIR {args.dir}):")
    for step in rounds[0]:
        print(f"  {step:<22} {statistics.median(r[step] for r in rounds):8.0f}")
    for what in ("write", "1 MiB reads", "32 KiB reads"):
        plain = statistics.median(r[f"plain {what}"] for r in rounds)
        sealed = statistics.median(r[f"sealed {what}"] for r in rounds)
        print(f"  sealed / plain {what:<13} {sealed / plain:6.2f}")


if __name__ == "__main__":
    main()
