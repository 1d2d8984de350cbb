"""`callscribe sync DIR`: upload every recording under a folder exactly once (nightly backfill, --watch).

A recorder's export share (or an SFTP mount) gets yesterday's calls every night; `sync` archives each
recording under it once, through the same streamed upload as `callscribe upload` (declared SHA-256 and
size, `uploads.py`). What was archived is kept in a local ledger of JSON lines (default
`DIR/.callscribe-sync.jsonl`): relative path, size, mtime_ns, sha256, recording id, outcome. A file
whose path, size and mtime match a ledger line of the same tenant is skipped without being read; a
changed file goes again (the same bytes again are free: the server answers duplicate). A ledger line
is written, and fsynced, only after the server acknowledged, so an interrupted run loses nothing.

A file is taken only once its size and mtime have not changed for --settle-seconds as this process
observed them (not by comparing the mtime with the clock: an SFTP server's clock may be off), so a
recording still being written is never sent half. Hidden files and the names SFTP clients write
while transferring (.part, .tmp, .filepart) are never taken.

Metadata per file: the flags' defaults (as `upload` has them), then the groups of --name-pattern
matched against the file name, then the non-empty cells of the file's --manifest row.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import itertools
import json
import logging
import math
import os
import posixpath
import re
import signal
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import grpc

from callscribe.cli.connect import CliError, Target, add_connection_args, auth_metadata, channel, resolve
from callscribe.cli.uploads import UploadMessage, upload_messages, upload_method
from callscribe.kit.names import LANGUAGES
from callscribe.kit.tenants import ZH_SCRIPTS
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb

log = logging.getLogger(__name__)

# What the audio policy decodes (case ignored); *.g729 / *.729 name raw G.729, which has no header.
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".mp4", ".3gp", ".amr", ".g729", ".729")
PARTIAL_SUFFIXES = (".part", ".tmp", ".filepart")  # what SFTP clients write before renaming
LEDGER_NAME = ".callscribe-sync.jsonl"
MANIFEST_COLUMNS = (
    "file", "call_id", "agent", "customer", "started_at", "layout", "language", "labels", "hotwords", "zh_script",
)  # fmt: skip
PATTERN_GROUPS = ("call_id", "agent", "customer", "started_at", "layout", "language")
LAYOUTS = {
    None: c.CHANNEL_LAYOUT_UNSPECIFIED,
    "mono": c.CHANNEL_LAYOUT_MONO,
    "left": c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT,
    "right": c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT,
}
# The server (or S3 behind it) is down, restarting or overloaded: try the same file again after these
# delays; then a run stops (the next run sends the rest), while --watch keeps trying every WATCH_RETRY_S.
RETRY_DELAYS_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
WATCH_RETRY_S = 60.0
# RESOURCE_EXHAUSTED is also the answer to a file over the server's size limit, which no wait changes.
BUSY_RETRY_DELAYS_S: tuple[float, ...] = (1.0, 2.0, 4.0)
_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})
_NOT_ALLOWED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

Key = tuple[int, int]  # (size, mtime_ns): a file's version as far as sync is concerned


def add_sync_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sync",
        help="upload every recording under a folder once (nightly backfill; --watch keeps going)",
        description=(
            "Upload every recording (.wav .mp3 .flac .ogg .opus .m4a .mp4 .3gp .amr .g729 .729) under DIR, "
            "recursively, exactly once. A ledger "
            "of what was archived lets a re-run skip it without reading it. Exit status 1 when any file was "
            "refused, 2 for a usage error."
        ),
    )
    p.add_argument("directory", type=Path, metavar="DIR", help="the folder the recordings are in")
    p.add_argument(
        "--manifest",
        type=Path,
        metavar="CSV",
        help="per-file metadata: a CSV with a header row; columns " + ", ".join(MANIFEST_COLUMNS) + " (file is "
        "the path relative to DIR; an empty cell keeps the default). Files it does not name are refused "
        "unless --name-pattern matches them (--watch: they wait for their row)",
    )
    p.add_argument(
        "--name-pattern",
        metavar="REGEX",
        help="metadata from the file name: a Python regex matched against the whole name, with named groups "
        "among " + ", ".join(PATTERN_GROUPS) + "; names it does not match are refused",
    )
    p.add_argument(
        "--started-at-format",
        metavar="FORMAT",
        help="strptime format of the started_at group of --name-pattern, e.g. %%Y%%m%%d-%%H%%M%%S (default: ISO 8601)",
    )
    p.add_argument(
        "--timezone",
        metavar="+HH:MM",
        help="UTC offset of start times written without one (the recorder's local time), e.g. +08:00",
    )
    p.add_argument("--agent", default="unassigned", help="agent id of files that do not name one")
    p.add_argument(
        "--agent-channel",
        choices=["left", "right", "mono"],
        default=None,
        help="default channel layout (stereo files need left or right)",
    )
    p.add_argument("--language", choices=sorted(LANGUAGES), default="auto", help="default language")
    p.add_argument(
        "--zh-script", choices=ZH_SCRIPTS, default="", help="default script of Chinese normalized text (the tenant's)"
    )
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="label for every file (repeatable)")
    p.add_argument("--hotword", action="append", default=[], metavar="W", help="domain term for every file")
    p.add_argument("--state", type=Path, default=None, metavar="FILE", help=f"the ledger (default: DIR/{LEDGER_NAME})")
    p.add_argument("--watch", action="store_true", help="keep going as files arrive; stop with Ctrl-C or SIGTERM")
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="take a file once its size and mtime have not changed for S seconds (default 10; 0: at once)",
    )
    add_connection_args(p)
    p.set_defaults(func=sync)


# --------------------------------------------------------------------------- metadata values


class BadValue(Exception):
    """A metadata value the user must fix; the message names the value and what is expected."""


class Unlisted(Exception):
    """No metadata source covers the file (not in the manifest, name not matching the pattern)."""

    def __init__(self, reason: str, waits_for_manifest: bool) -> None:
        super().__init__(reason)
        self.waits_for_manifest = waits_for_manifest


@dataclass(frozen=True)
class Fields:
    call_id: str
    agent: str
    customer: str
    started_at: datetime | None
    layout: str | None
    language: str
    labels: dict[str, str]
    hotwords: tuple[str, ...]
    zh_script: str = ""


def parse_labels(text: str, separator: str = ";") -> dict[str, str]:
    labels = {}
    for item in text.split(separator):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadValue(f"label {item.strip()!r}: expected KEY=VALUE")
        labels[key.strip()] = value.strip()
    return labels


def parse_timezone(text: str) -> tzinfo:
    try:
        zone = datetime.strptime(text.strip(), "%z").tzinfo
    except ValueError:
        zone = None
    if zone is None:
        raise CliError(f"--timezone {text!r}: expected a UTC offset such as +08:00, -05:00 or Z")
    return zone


def parse_started_at(text: str, fmt: str | None, zone: tzinfo | None) -> datetime:
    try:
        value = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError as exc:
        expected = f"--started-at-format {fmt}" if fmt else "ISO 8601, e.g. 2024-03-01T09:30:00+08:00"
        raise BadValue(f"started_at {text!r} does not match {expected} ({exc})") from exc
    if value.tzinfo is None:
        if zone is None:
            raise BadValue(f"started_at {text!r} has no UTC offset: write one (+08:00) or pass --timezone")
        value = value.replace(tzinfo=zone)
    return value


def _apply(fields: dict[str, Any], values: Mapping[str, str | None], fmt: str | None, zone: tzinfo | None) -> None:
    """Put the non-empty `values` (manifest cells or pattern groups, by column name) over `fields`."""
    for name, raw in values.items():
        text = (raw or "").strip()
        if not text:
            continue
        if name in ("call_id", "agent", "customer"):
            fields[name] = text
        elif name == "started_at":
            fields[name] = parse_started_at(text, fmt, zone)
        elif name == "layout":
            if text.lower() not in ("mono", "left", "right"):
                raise BadValue(f"layout {text!r}: use mono, left or right (the agent's channel of a stereo file)")
            fields[name] = text.lower()
        elif name == "language":
            if text.lower() not in LANGUAGES:
                raise BadValue(f"language {text!r}: use one of {', '.join(sorted(LANGUAGES))}")
            fields[name] = text.lower()
        elif name == "zh_script":
            if text.lower() not in ZH_SCRIPTS:
                raise BadValue(f"zh_script {text!r}: use one of {', '.join(ZH_SCRIPTS)}")
            fields[name] = text.lower()
        elif name == "labels":
            fields[name] = {**fields[name], **parse_labels(text)}
        elif name == "hotwords":
            fields[name] = tuple(word.strip() for word in text.split(";") if word.strip())


def recording_metadata(tenant: str, rel: str, fields: Fields) -> c.RecordingMetadata:
    meta = c.RecordingMetadata(
        tenant=tenant,
        call_id=fields.call_id,
        agent_id=fields.agent,
        customer_id=fields.customer,
        channel_layout=LAYOUTS[fields.layout],
        language=LANGUAGES[fields.language],
        hotwords=[c.Hotword(text=word) for word in fields.hotwords],
        labels=fields.labels,
        filename=rel,
        zh_script=fields.zh_script,
    )
    if fields.started_at is not None:
        meta.started_at.FromDatetime(fields.started_at)
    return meta


# --------------------------------------------------------------------------- files


def not_a_recording(name: str) -> str:
    """Why a file of this name is never taken ("" when it is a recording)."""
    lower = name.lower()
    if name.startswith("."):
        return "a hidden file"
    if lower.endswith(PARTIAL_SUFFIXES):
        return "a file still being transferred (" + "/".join(PARTIAL_SUFFIXES) + ")"
    if not lower.endswith(AUDIO_SUFFIXES):
        return "not a recording (" + " ".join(AUDIO_SUFFIXES) + ")"
    return ""


def version_of(path: Path) -> Key | None:
    """(size, mtime_ns) of a regular file, None when there is none at `path`."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class Scan:
    recordings: dict[str, Key] = field(default_factory=dict)  # relative posix path -> version
    ignored: set[str] = field(default_factory=set)  # visible files that are not recordings
    errors: list[str] = field(default_factory=list)


def scan(root: Path) -> Scan:
    found = Scan()

    def unreadable(exc: OSError) -> None:
        found.errors.append(f"cannot read {exc.filename}: {exc.strerror or exc}")

    for folder, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            reason = not_a_recording(name)
            if reason:
                if reason.startswith("not a recording"):
                    found.ignored.add(rel)
                continue
            try:
                version = version_of(path)
            except OSError as exc:
                found.errors.append(f"cannot read {path}: {exc.strerror or exc}")
                continue
            if version is not None:
                found.recordings[rel] = version
    return found


# --------------------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class Row:
    number: int  # the row as a spreadsheet numbers it: the header is row 1
    file: str  # as written
    values: dict[str, str]
    problem: str = ""  # why the row cannot be used at all


@dataclass(frozen=True)
class ManifestData:
    rows: dict[str, list[Row]]  # by normalized path relative to DIR
    unusable: list[Row]


def manifest_path(text: str) -> str:
    """The row's file as a normalized path relative to DIR; BadValue when it cannot be one."""
    value = text.strip().replace("\\", "/")
    if not value:
        raise BadValue("the file column is empty")
    if value.startswith("/") or re.match(r"[A-Za-z]:/", value):
        raise BadValue(f"file {text!r} is an absolute path: write it relative to DIR")
    norm = posixpath.normpath(value)
    if norm in (".", "..") or norm.startswith("../"):
        raise BadValue(f"file {text!r} is not inside DIR")
    return norm


def read_manifest(path: Path) -> ManifestData:
    """The manifest's rows; CliError (naming --manifest) when the file or its header cannot be used."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise CliError(
                    f"--manifest {path}: the file is empty; it needs a header row ({MANIFEST_COLUMNS[0]},...)"
                )
            columns = [name.strip().lower().replace("-", "_").replace(" ", "_") for name in header]
            unknown = [name for name in columns if name not in MANIFEST_COLUMNS]
            if unknown:
                raise CliError(
                    f"--manifest {path}: unknown column(s) {', '.join(map(repr, unknown))}; "
                    f"the columns are {', '.join(MANIFEST_COLUMNS)}"
                )
            twice = sorted({name for name in columns if columns.count(name) > 1})
            if twice:
                raise CliError(f"--manifest {path}: column(s) {', '.join(twice)} appear more than once")
            if "file" not in columns:
                raise CliError(f"--manifest {path}: no 'file' column (the recording's path relative to DIR)")
            rows: dict[str, list[Row]] = {}
            unusable: list[Row] = []
            for cells in reader:
                number = reader.line_num
                if not any(cell.strip() for cell in cells):
                    continue
                values = dict(zip(columns, cells, strict=False))
                file_text = values.pop("file", "")
                if len(cells) > len(columns):
                    problem = f"manifest row {number}: {len(cells)} cells but the header has {len(columns)} columns"
                    unusable.append(Row(number, file_text, values, problem))
                    continue
                try:
                    rel = manifest_path(file_text)
                except BadValue as exc:
                    unusable.append(Row(number, file_text, values, f"manifest row {number}: {exc}"))
                    continue
                rows.setdefault(rel, []).append(Row(number, file_text, values))
    except OSError as exc:
        raise CliError(f"--manifest {path}: cannot read it: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"--manifest {path}: not a UTF-8 CSV file: {exc}") from exc
    return ManifestData(rows, unusable)


@dataclass
class Seen:
    key: Key
    since: float  # time.monotonic() when this version was first seen


class Manifest:
    """The manifest, read again (once it has settled) when it changes, so --watch follows a growing one."""

    def __init__(self, path: Path, settle_s: float, notes: Reporter) -> None:
        self.path = path
        self._settle_s = settle_s
        self._notes = notes
        self._warned = ""
        self.data = read_manifest(path)
        key = version_of(path)
        if key is None:
            raise CliError(f"--manifest {path}: not a regular file")
        self.version = key  # the version `data` was read from
        self._seen = Seen(key, time.monotonic())

    def _current(self) -> Key | None:
        try:
            key = version_of(self.path)
            problem = "" if key is not None else "it is gone"
        except OSError as exc:
            key, problem = None, f"cannot read it: {exc.strerror or exc}"
        if problem and problem != self._warned:
            self._notes.warn(f"--manifest {self.path}: {problem}; the version read before stays in use")
        self._warned = problem
        return key

    def poll(self, now: float) -> bool:
        """Look at the file; True when a new version was read."""
        key = self._current()
        if key is None:
            return False
        if key != self._seen.key:
            self._seen = Seen(key, now)
            return False
        if key == self.version or now - self._seen.since < self._settle_s:
            return False
        self.version = key
        try:
            self.data = read_manifest(self.path)
        except CliError as exc:
            self._notes.warn(f"{exc}; the version read before stays in use until it is fixed")
            return False
        return True

    def settled(self, now: float) -> bool:
        """Whether the version in use is the one on disk and has not changed for --settle-seconds."""
        return self._seen.key == self.version and now - self._seen.since >= self._settle_s

    def settles_at(self) -> float:
        return self._seen.since + self._settle_s


class Rules:
    """Where a file's metadata comes from: flag defaults < --name-pattern groups < --manifest cells."""

    def __init__(
        self,
        defaults: dict[str, Any],
        pattern: re.Pattern[str] | None,
        started_at_format: str | None,
        zone: tzinfo | None,
        manifest: Manifest | None,
    ) -> None:
        self._defaults = defaults
        self._pattern = pattern
        self._format = started_at_format
        self._zone = zone
        self.manifest = manifest

    def fields(self, rel: str) -> Fields:
        values = {**self._defaults, "call_id": Path(rel).stem}
        covered = self._pattern is None and self.manifest is None
        missing = []
        if self._pattern is not None:
            match = self._pattern.fullmatch(posixpath.basename(rel))
            if match is None:
                missing.append("its name does not match --name-pattern")
            else:
                covered = True
                try:
                    _apply(values, match.groupdict(), self._format, self._zone)
                except BadValue as exc:
                    raise BadValue(f"--name-pattern: {exc}") from exc
        if self.manifest is not None:
            rows = self.manifest.data.rows.get(rel)
            if not rows:
                missing.append(f"it is not in the manifest {self.manifest.path}")
            elif len(rows) > 1:
                numbers = ", ".join(str(row.number) for row in rows)
                raise BadValue(f"manifest rows {numbers} all name this file: keep one")
            else:
                covered = True
                try:
                    _apply(values, rows[0].values, None, self._zone)
                except BadValue as exc:
                    raise BadValue(f"manifest row {rows[0].number}: {exc}") from exc
        if not covered:
            raise Unlisted(" and ".join(missing), waits_for_manifest=self.manifest is not None)
        return Fields(**values)

    def row_problems(self, root: Path, seen: set[str], missing: bool) -> list[tuple[str, str]]:
        """(file, reason) for the manifest rows that name nothing sync can upload: `missing` False, rows that
        cannot be used and rows naming a file that is not a recording; True, rows naming no file at all."""
        if self.manifest is None:
            return []
        problems = [] if missing else [(row.file or "-", row.problem) for row in self.manifest.data.unusable]
        for rel, rows in self.manifest.data.rows.items():
            if rel in seen:
                continue
            path = root / rel
            if not path.exists():
                reason = f"no such file under {root}" if missing else ""
            elif missing:
                reason = ""
            elif path.is_dir():
                reason = "it is a folder, not a recording"
            elif any(part.startswith(".") for part in rel.split("/")[:-1]):
                reason = "it is in a hidden folder"
            else:
                reason = f"it is {not_a_recording(path.name) or 'not a regular file'}"
            if reason:
                problems.extend((rel, f"manifest row {row.number}: {reason}") for row in rows)
        return problems


def name_pattern(text: str | None, started_at_format: str | None) -> re.Pattern[str] | None:
    if text is None:
        if started_at_format:
            raise CliError("--started-at-format reads the started_at group of --name-pattern: pass --name-pattern")
        return None
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise CliError(f"--name-pattern {text!r} is not a valid regular expression: {exc}") from exc
    groups = set(pattern.groupindex)
    if not groups:
        raise CliError(
            f"--name-pattern has no named group: use (?P<name>...) with names among {', '.join(PATTERN_GROUPS)}"
        )
    unknown = sorted(groups - set(PATTERN_GROUPS))
    if unknown:
        raise CliError(f"--name-pattern group(s) {', '.join(unknown)} unknown: use {', '.join(PATTERN_GROUPS)}")
    if started_at_format and "started_at" not in groups:
        raise CliError("--started-at-format needs a (?P<started_at>...) group in --name-pattern")
    return pattern


# --------------------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    recording_id: str
    outcome: str  # archived | duplicate
    tenant: str
    synced_at: str


class Ledger:
    """Append-only JSON lines of what the server acknowledged, locked against a second `sync` on it."""

    def __init__(self, path: Path, tenant: str, notes: Reporter) -> None:
        self.path = path
        self._tenant = tenant
        self._entries: dict[tuple[str, int, int], Entry] = {}
        try:
            self._file: TextIO = path.open("a+", encoding="utf-8", newline="")
        except OSError as exc:
            raise CliError(
                f"cannot write the sync ledger {path}: {exc.strerror or exc}; pass --state FILE on a writable disk"
            ) from exc
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._file.close()
            raise CliError(f"another callscribe sync is using the ledger {path}; wait for it to finish") from exc
        try:
            self._load(notes)
        except CliError:
            self._file.close()
            raise

    def _load(self, notes: Reporter) -> None:
        self._file.seek(0)
        try:
            text = self._file.read()
        except UnicodeDecodeError as exc:
            raise CliError(f"ledger {self.path} is not UTF-8 text ({exc}): pass another --state FILE") from exc
        lines = text.split("\n")
        if lines and lines[-1]:
            # A run stopped in the middle of writing its last line: that line was never complete.
            torn = lines.pop()
            self._file.truncate(len(text.encode("utf-8")) - len(torn.encode("utf-8")))
            notes.warn(
                f"ledger {self.path}: removed an incomplete last line ({torn[:60]!r}); that file is checked again"
            )
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = Entry(**json.loads(line))
                if not isinstance(entry.size, int) or not isinstance(entry.mtime_ns, int):
                    raise TypeError("size and mtime_ns must be integers")
            except (ValueError, TypeError) as exc:
                raise CliError(
                    f"ledger {self.path} line {number} is not a sync record ({exc}): fix or remove that line, "
                    "or pass another --state FILE"
                ) from exc
            if entry.tenant == self._tenant:
                self._entries[(entry.path, entry.size, entry.mtime_ns)] = entry

    def find(self, rel: str, key: Key) -> Entry | None:
        return self._entries.get((rel, *key))

    def append(self, entry: Entry) -> None:
        self._file.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._entries[(entry.path, entry.size, entry.mtime_ns)] = entry

    def close(self) -> None:
        self._file.close()


# --------------------------------------------------------------------------- output


class Reporter:
    """Progress lines `[N/M] path → ...`, the summary, and notes (stderr)."""

    OUTCOMES = ("archived", "duplicate", "skipped", "refused")
    LABELS = {"skipped": "skipped (already synced)"}

    def __init__(self, as_json: bool) -> None:
        self._json = as_json
        self.count = 0
        self.outcomes: Counter[str] = Counter()
        self.refused: list[tuple[str, str]] = []

    def file(self, rel: str, outcome: str, total: int, recording_id: str = "", reason: str = "") -> None:
        self.count += 1
        self.outcomes[outcome] += 1
        if outcome == "refused":
            self.refused.append((rel, reason))
        if self._json:
            row = {"file": rel, "outcome": outcome, "recording_id": recording_id, "reason": reason}
            print(json.dumps(row, ensure_ascii=False), flush=True)
            return
        if outcome == "refused":
            result = f"refused: {reason}"
        elif outcome == "skipped":
            result = f"{recording_id} (skipped: already synced)"
        else:
            result = f"{recording_id} ({outcome})"
        print(f"[{self.count}/{max(total, self.count)}] {rel} → {result}", flush=True)

    def warn(self, text: str) -> None:
        print(f"callscribe sync: {text}", file=sys.stderr, flush=True)

    def summary(self, root: Path, ignored: int, left: int, stopped: str, errors: list[str]) -> None:
        if self._json:
            doc = {
                **{name: self.outcomes[name] for name in self.OUTCOMES},
                "refused_files": [{"file": rel, "reason": reason} for rel, reason in self.refused],
                "ignored": ignored,
                "left_for_next_run": left,
                "stopped": stopped,
                "errors": errors,
            }
            print(json.dumps({"summary": doc}, ensure_ascii=False), flush=True)
            return
        counts = ", ".join(f"{self.outcomes[name]} {self.LABELS.get(name, name)}" for name in self.OUTCOMES)
        lines = [f"sync {root}: {self.count} file(s): {counts}"]
        if self.refused:
            lines.append("refused:")
            lines.extend(f"  {rel}: {reason}" for rel, reason in self.refused)
        if ignored:
            lines.append(f"ignored {ignored} file(s) that are not recordings ({' '.join(AUDIO_SUFFIXES)})")
        if left:
            lines.append(
                f"{left} file(s) not sent yet (still being written, or the run stopped first): the next run takes them"
            )
        if stopped:
            lines.append(f"stopped: {stopped}")
        lines.extend(f"error: {error}" for error in errors)
        print("\n".join(lines), flush=True)


# --------------------------------------------------------------------------- uploading


class Refused(Exception):
    """The server (or the file) refused this upload; the message is the reason."""


class ServerGone(Exception):
    """No file can go now (server unreachable, token refused); the message is the reason."""


class Interrupted(Exception):
    """A stop was requested (Ctrl-C, SIGTERM) while this upload was under way; nothing was archived."""


class StopFlag:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when a stop was requested."""
        return self._event.wait(max(seconds, 0.0))


class _Reading:
    """The upload's messages, keeping a read error for the report: the stream ends at the error and the
    call is cancelled (nothing is stored: the server also refuses fewer bytes than the declared size)."""

    def __init__(self, messages: Iterator[UploadMessage]) -> None:
        self._messages = messages
        self.error: OSError | None = None
        self.call: grpc.Future | None = None

    def __iter__(self) -> Iterator[UploadMessage]:
        try:
            yield from self._messages
        except OSError as exc:
            self.error = exc
            if self.call is not None:
                self.call.cancel()


class Uploader:
    """One file at a time to UploadRecording, as `callscribe upload` sends it; retries while the server is away."""

    def __init__(self, target: Target, ca_cert: Path | None, stop: StopFlag, notes: Reporter, watch: bool) -> None:
        self._call = upload_method(channel(target, ca_cert))
        self._target = target
        self._stop = stop
        self._notes = notes
        self._watch = watch

    def send(self, rel: str, path: Path, meta: c.RecordingMetadata) -> pb.UploadRecordingResponse:
        for attempt in itertools.count():
            try:
                return self._once(path, meta)
            except grpc.RpcError as exc:
                code, reason = exc.code(), f"{exc.code().name}: {exc.details()}"
                if code in _NOT_ALLOWED:
                    raise ServerGone(f"{reason} (check --token / --tenant)") from exc
                if code in _UNREACHABLE:
                    if attempt < len(RETRY_DELAYS_S):
                        delay = RETRY_DELAYS_S[attempt]
                    elif self._watch:
                        delay = WATCH_RETRY_S
                    else:
                        raise ServerGone(reason) from exc
                elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and attempt < len(BUSY_RETRY_DELAYS_S):
                    delay = BUSY_RETRY_DELAYS_S[attempt]
                else:
                    raise Refused(reason) from exc
                self._notes.warn(f"{rel}: {reason}; trying again in {delay:g} s")
                if self._stop.sleep(delay):
                    raise Interrupted() from exc
        raise AssertionError("unreachable")

    def _once(self, path: Path, meta: c.RecordingMetadata) -> pb.UploadRecordingResponse:
        messages = upload_messages(meta, path)
        try:
            first = next(messages)  # reads and hashes the file here, so an unreadable one fails before any call
        except OSError as exc:
            raise Refused(f"cannot read it: {exc.strerror or exc}") from exc
        reading = _Reading(itertools.chain([first], messages))
        call = self._call.future(iter(reading), metadata=auth_metadata(self._target))
        reading.call = call
        while not call.done():
            if self._stop.sleep(0.1) and call.cancel():
                raise Interrupted()
        if reading.error is not None:
            raise Refused(f"cannot read it: {reading.error.strerror or reading.error}")
        return call.result()


# --------------------------------------------------------------------------- the run


class Syncer:
    """One run: find recordings, wait until each has settled, take it (skip, refuse or upload), report."""

    def __init__(
        self,
        root: Path,
        tenant: str,
        ledger: Ledger,
        rules: Rules,
        uploader: Uploader,
        report: Reporter,
        stop: StopFlag,
        settle_s: float,
        watch: bool,
    ) -> None:
        self.root = root
        self._tenant = tenant
        self._ledger = ledger
        self._rules = rules
        self._uploader = uploader
        self.report = report
        self._stop = stop
        self._settle_s = settle_s
        self._watch = watch
        self._poll_s = min(5.0, max(0.5, settle_s / 2))
        self.pending: dict[str, Seen] = {}  # recordings not yet taken, by the version last seen
        self._done: dict[str, Key] = {}  # the version of each file this run reported
        self._waiting: dict[str, tuple[Key, str]] = {}  # --watch: settled, waiting for a manifest row (why)
        self._refused_for_metadata: set[str] = set()
        self._seen: set[str] = set()  # every recording found (a run: by its first look)
        self._rows_checked: Key | None = None  # the manifest version whose rows were checked
        self.ignored: set[str] = set()
        self.errors: list[str] = []
        self.failure = ""  # why the run stopped before its end (server)

    def _total(self, queued: int = 0) -> int:
        """M of the report line about to be printed: reported, this one, `queued` more, and the rest."""
        return self.report.count + 1 + queued + len(self.pending) + len(self._waiting)

    def run(self) -> None:
        self._look(first=True)
        manifest = self._rules.manifest
        while True:
            now = time.monotonic()
            if manifest is not None:
                if manifest.poll(now):
                    self._manifest_changed()
                if manifest.settled(now) and self._rows_checked != manifest.version:
                    self._check_rows(manifest.version)
            self._take_ready(now)
            if self._stop.requested or self.failure:
                break
            rows_done = manifest is None or self._rows_checked == manifest.version
            if not self._watch and not self.pending and rows_done:
                break
            if self._stop.sleep(self._next_wait()):
                break
            self._look(first=False)
        if self._watch:
            for rel in sorted(self._waiting):
                key, reason = self._waiting.pop(rel)
                self._refuse(rel, key, reason)
            for rel, reason in self._rules.row_problems(self.root, self._seen, missing=True):
                self.report.file(rel, "refused", self._total(), reason=reason)

    def _next_wait(self) -> float:
        if self._watch:
            return self._poll_s
        deadlines = [seen.since + self._settle_s for seen in self.pending.values()]
        if self._rules.manifest is not None:
            deadlines.append(self._rules.manifest.settles_at())
        return min(self._poll_s, max(0.05, min(deadlines) - time.monotonic()))

    def _version(self, rel: str) -> Key | None:
        try:
            return version_of(self.root / rel)
        except OSError as exc:
            self._error(f"cannot read {self.root / rel}: {exc.strerror or exc}")
            return None

    def _error(self, text: str) -> None:
        if text not in self.errors:
            self.errors.append(text)
            self.report.warn(text)

    def _look(self, first: bool) -> None:
        """Find new and changed recordings (--watch: the whole tree; a run: those it waits for)."""
        now = time.monotonic()
        if first or self._watch:
            found = scan(self.root)
            self.ignored |= found.ignored
            for error in found.errors:
                self._error(error)
            versions: dict[str, Key | None] = dict(found.recordings)
            for rel in itertools.chain(self.pending, self._waiting):
                versions.setdefault(rel, None)
        else:
            versions = {rel: self._version(rel) for rel in self.pending}
        skipped: list[tuple[str, Entry]] = []
        for rel, key in versions.items():
            if key is None:
                self._waiting.pop(rel, None)
                if self.pending.pop(rel, None) is not None:
                    log.info("%s is gone before it settled", rel)
                continue
            self._seen.add(rel)
            if self._done.get(rel) == key or self._waiting.get(rel, (None, ""))[0] == key:
                continue
            self._waiting.pop(rel, None)
            entry = self._ledger.find(rel, key)
            if entry is not None:
                self.pending.pop(rel, None)
                self._done[rel] = key
                skipped.append((rel, entry))
                continue
            seen = self.pending.get(rel)
            if seen is None or seen.key != key:
                self.pending[rel] = Seen(key, now)
        for index, (rel, entry) in enumerate(skipped):
            total = self._total(len(skipped) - index - 1)
            self.report.file(rel, "skipped", total, recording_id=entry.recording_id)

    def _check_rows(self, version: Key) -> None:
        """Refuse the rows of a (new) manifest that name nothing to upload; a run also those naming no file."""
        self._rows_checked = version
        problems = self._rules.row_problems(self.root, self._seen, missing=False)
        if not self._watch:
            problems += self._rules.row_problems(self.root, self._seen, missing=True)
        for index, (rel, reason) in enumerate(problems):
            self.report.file(rel, "refused", self._total(len(problems) - index - 1), reason=reason)

    def _manifest_changed(self) -> None:
        """A new manifest: files that waited for a row, or were refused for a value, are looked at again."""
        settled = time.monotonic() - self._settle_s
        for rel, (key, _) in self._waiting.items():
            self.pending[rel] = Seen(key, settled)
        self._waiting.clear()
        for rel in self._refused_for_metadata:
            if rel in self._done:
                self.pending[rel] = Seen(self._done.pop(rel), settled)
        self._refused_for_metadata.clear()

    def _take_ready(self, now: float) -> None:
        manifest = self._rules.manifest
        if manifest is not None and not manifest.settled(now):
            return
        for rel in sorted(rel for rel, seen in self.pending.items() if now - seen.since >= self._settle_s):
            if self._stop.requested or self.failure:
                return
            key = self._version(rel)
            if key is None:
                del self.pending[rel]
                continue
            if key != self.pending[rel].key:
                self.pending[rel] = Seen(key, time.monotonic())
                continue
            del self.pending[rel]
            try:
                fields = self._rules.fields(rel)
            except Unlisted as exc:
                if self._watch and exc.waits_for_manifest:
                    self._waiting[rel] = (key, str(exc))
                else:
                    self._refuse(rel, key, str(exc))
                continue
            except BadValue as exc:
                self._refused_for_metadata.add(rel)
                self._refuse(rel, key, str(exc))
                continue
            self._upload(rel, key, fields)

    def _refuse(self, rel: str, key: Key, reason: str) -> None:
        self._done[rel] = key
        self.report.file(rel, "refused", self._total(), reason=reason)

    def _upload(self, rel: str, key: Key, fields: Fields) -> None:
        path = self.root / rel
        try:
            ack = self._uploader.send(rel, path, recording_metadata(self._tenant, rel, fields))
        except Refused as exc:
            self._refuse(rel, key, str(exc))
            return
        except Interrupted:
            self.pending[rel] = Seen(key, time.monotonic())
            return
        except ServerGone as exc:
            self.pending[rel] = Seen(key, time.monotonic())
            self.failure = str(exc)
            return
        outcome = "duplicate" if ack.duplicate else "archived"
        synced_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._ledger.append(Entry(rel, key[0], key[1], ack.sha256, ack.recording_id, outcome, self._tenant, synced_at))
        self._done[rel] = key
        self.report.file(rel, outcome, self._total(), recording_id=ack.recording_id)
        now_key = self._version(rel)
        if now_key is not None and now_key != key:
            self.report.warn(f"{rel} changed while it was read: it is sent again once it settles")
            self.pending[rel] = Seen(now_key, time.monotonic())


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--label {item!r}: expected KEY=VALUE")
        labels[key.strip()] = value
    return {
        "agent": args.agent,
        "customer": "",
        "started_at": None,
        "layout": args.agent_channel,
        "language": args.language,
        "zh_script": args.zh_script,
        "labels": labels,
        "hotwords": tuple(word for word in args.hotword if word.strip()),
    }


def sync(args: argparse.Namespace) -> int:
    root: Path = args.directory
    if not root.is_dir():
        raise CliError(f"{root} is not a folder: DIR is the folder the recordings are in")
    if not (math.isfinite(args.settle_seconds) and args.settle_seconds >= 0):
        raise CliError(f"--settle-seconds {args.settle_seconds}: use a number of seconds, 0 or more")
    report = Reporter(args.json)
    zone = parse_timezone(args.timezone) if args.timezone else None
    pattern = name_pattern(args.name_pattern, args.started_at_format)
    defaults = _defaults(args)
    manifest = Manifest(args.manifest, args.settle_seconds, report) if args.manifest else None
    target = resolve(args, "ingest")
    stop = StopFlag()
    ledger = Ledger(args.state or root / LEDGER_NAME, args.tenant, report)
    try:
        syncer = Syncer(
            root,
            args.tenant,
            ledger,
            Rules(defaults, pattern, args.started_at_format, zone, manifest),
            Uploader(target, args.ca_cert, stop, report, args.watch),
            report,
            stop,
            args.settle_seconds,
            args.watch,
        )
        with stop_on_signals(stop):
            syncer.run()
    finally:
        ledger.close()
    stopped = syncer.failure or (f"{stop.reason} received" if stop.requested else "")
    report.summary(root, len(syncer.ignored), len(syncer.pending), stopped, syncer.errors)
    return 1 if report.outcomes["refused"] or syncer.failure or syncer.errors else 0


@contextlib.contextmanager
def stop_on_signals(stop: StopFlag) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask the run to stop (an upload under way is cancelled: nothing is lost)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can take signals; a caller elsewhere stops the run through `stop`
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: at once (at worst the last file goes again, a duplicate)
        stop.request(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
