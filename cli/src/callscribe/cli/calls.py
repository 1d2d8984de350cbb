"""`callscribe search | show | export`: talk to IndexerService."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from tqdm import tqdm

from callscribe.cli.connect import (
    CliError,
    Target,
    add_connection_args,
    auth_metadata,
    channel,
    check_recording_id,
    resolve,
)
from callscribe.kit.names import ROLES, SPOKEN_LANGUAGES
from callscribe.kit.text import shown
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb
from callscribe.v1 import indexer_pb2_grpc

_ROLES = {name: value for name, value in ROLES.items() if name != "mixed"}  # a side of a stereo call
_OTHER_SIDE = {c.SPEAKER_ROLE_AGENT: c.SPEAKER_ROLE_CUSTOMER, c.SPEAKER_ROLE_CUSTOMER: c.SPEAKER_ROLE_AGENT}
_SENTIMENTS = ("negative", "neutral", "positive")
# The storage lifecycle's enums as typed: --tier hot|cold, --integrity ok|mismatch|missing.
_TIERS = {
    name.removeprefix("STORAGE_TIER_").lower(): value
    for name, value in c.StorageTier.items()
    if value != c.STORAGE_TIER_UNSPECIFIED
}
_INTEGRITIES = {
    name.removeprefix("INTEGRITY_").lower(): value
    for name, value in c.Integrity.items()
    if value != c.INTEGRITY_UNSPECIFIED
}
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")

BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"

EXPORT_COLUMNS = (
    "recording_id",
    "call_id",
    "tenant",
    "agent_id",
    "customer_id",
    "started_at",
    "duration_s",
    "language",
    "channel_layout",
    "labels",
    "sha256",
    "utterances",
    "agent_talk_s",
    "customer_talk_s",
    "agent_talk_ratio",
    "silence_s",
    "longest_silence_s",
    "dead_air_count",
    "overlap_s",
    "interruptions",
    "agent_interruptions",
    "customer_interruptions",
    "agent_wpm",
    "customer_wpm",
    "keyword_hits",
    "sentiment",
    "sentiment_label",
    "qa_score",
    "qa_max",
    "qa_deductions",
    # The storage lifecycle (appended: columns are never reordered).
    "tier",
    "moved_at",
    "integrity",
    "verified_at",
)
_ANALYTICS_COLUMNS = EXPORT_COLUMNS[EXPORT_COLUMNS.index("agent_talk_s") : EXPORT_COLUMNS.index("qa_deductions") + 1]


def add_calls_parsers(subparsers: Any) -> None:
    search = subparsers.add_parser("search", help="search transcripts and call analytics")
    search.add_argument("query", metavar="QUERY", help='words to find ("" lists calls, newest first)')
    _add_filters(search)
    search.add_argument("--page-size", default="20", metavar="N", help="calls per page (default 20)")
    search.add_argument("--all", action="store_true", help="follow every page")
    add_connection_args(search)
    search.set_defaults(func=search_calls)

    show = subparsers.add_parser("show", help="a call's transcript, analytics and QA score")
    show.add_argument("recording_id")
    add_connection_args(show)
    show.set_defaults(func=show_call)

    export = subparsers.add_parser("export", help="one row per call for BI tools (CSV or JSON lines)")
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export.add_argument("--query", default="", help="only calls whose transcript matches")
    _add_filters(export)
    export.add_argument("--output", "-o", type=Path, default=None, metavar="FILE", help="default: stdout")
    add_connection_args(export)
    export.set_defaults(func=export_calls)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", default="", help="agent id")
    parser.add_argument(
        "--from", dest="date_from", default=None, metavar="DATE", help="started at or after (YYYY-MM-DD or ISO 8601)"
    )
    parser.add_argument(
        "--to",
        dest="date_to",
        default=None,
        metavar="DATE",
        help="started before (a date alone: up to the end of that day)",
    )
    parser.add_argument("--language", choices=sorted(SPOKEN_LANGUAGES), default=None)
    parser.add_argument("--min-duration", default=None, metavar="S", help="seconds")
    parser.add_argument("--max-duration", default=None, metavar="S", help="seconds")
    parser.add_argument("--role", choices=sorted(_ROLES), default=None, help="only this side's words match QUERY")
    parser.add_argument("--keyword", default="", metavar="K", help="calls with a hit of this phrase or list")
    parser.add_argument(
        "--missing-keyword", default="", metavar="K", help="calls where this required phrase or list was not said"
    )
    parser.add_argument("--min-silence", default=None, metavar="S", help="longest silence at least S seconds")
    parser.add_argument("--min-interruptions", default=None, metavar="N")
    parser.add_argument("--sentiment", choices=_SENTIMENTS, default=None)
    parser.add_argument("--min-qa", default=None, metavar="X", help="QA score at least X")
    parser.add_argument("--max-qa", default=None, metavar="X", help="QA score at most X")
    parser.add_argument("--tier", choices=sorted(_TIERS), default=None, help="calls whose audio is in this tier")
    parser.add_argument(
        "--integrity", choices=sorted(_INTEGRITIES), default=None, help="what the integrity audit last found"
    )
    parser.add_argument(
        "--not-verified-since",
        default=None,
        metavar="TIME",
        help="calls the integrity audit has not re-hashed since TIME, never audited included (ISO 8601 with its "
        "offset, e.g. 2024-06-01T09:30:00+08:00; none means UTC; YYYY-MM-DD: that day's midnight UTC)",
    )


# -- arguments ---------------------------------------------------------------------------------------------------


def parse_when(text: str, flag: str, end_of_day: bool = False) -> dt.datetime:
    """YYYY-MM-DD (UTC midnight; with end_of_day the next midnight) or ISO 8601 (naive means UTC).

    The indexer's `started_to` is exclusive, so `--to 2024-05-31` (the next midnight) keeps all of the 31st.
    """
    value = text.strip()
    try:
        if _DATE_ONLY.fullmatch(value):
            day = dt.date.fromisoformat(value)
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return start + dt.timedelta(days=1) if end_of_day else start
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"{flag} {text!r}: expected a date YYYY-MM-DD or an ISO 8601 time such as 2024-05-01T09:30:00+08:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _timestamp(when: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _number(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"{flag} {text!r}: expected a number") from None
    if not math.isfinite(value):
        raise CliError(f"{flag} {text!r}: expected a finite number")
    return value


def _seconds_ms(text: str | None, flag: str) -> int | None:
    value = _number(text, flag)
    if value is None:
        return None
    if value < 0:
        raise CliError(f"{flag} {text!r}: seconds cannot be negative")
    return round(value * 1000)


def _count(text: str | None, flag: str, minimum: int = 0) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"{flag} {text!r}: expected a whole number") from None
    if value < minimum:
        raise CliError(f"{flag} {text!r}: must be at least {minimum}")
    return value


def build_filter(args: argparse.Namespace, query: str) -> pb.SearchRequest:
    """The SearchRequest the filter flags describe; raises CliError on a bad value."""
    request = pb.SearchRequest(
        tenant=args.tenant,
        query=query,
        agent_id=args.agent,
        keyword=args.keyword,
        missing_keyword=args.missing_keyword,
        sentiment_label=args.sentiment or "",
    )
    start = parse_when(args.date_from, "--from") if args.date_from is not None else None
    end = parse_when(args.date_to, "--to", end_of_day=True) if args.date_to is not None else None
    if start and end and start >= end:
        raise CliError(f"--from {args.date_from} is not before --to {args.date_to} (--to is exclusive)")
    if start:
        request.started_from.CopyFrom(_timestamp(start))
    if end:
        request.started_to.CopyFrom(_timestamp(end))
    if args.language:
        request.language = SPOKEN_LANGUAGES[args.language]
    if args.role:
        request.role = _ROLES[args.role]
    shortest = _seconds_ms(args.min_duration, "--min-duration")
    longest = _seconds_ms(args.max_duration, "--max-duration")
    if shortest is not None and longest is not None and shortest > longest:
        raise CliError(f"--min-duration {args.min_duration} is over --max-duration {args.max_duration}")
    if shortest:
        request.min_duration_ms = shortest
    if longest is not None:
        if longest == 0:
            raise CliError("--max-duration must be above 0 seconds")
        request.max_duration_ms = longest
    silence = _seconds_ms(args.min_silence, "--min-silence")
    if silence:
        request.min_longest_silence_ms = silence
    interruptions = _count(args.min_interruptions, "--min-interruptions")
    if interruptions:
        request.min_interruptions = interruptions
    low, high = _number(args.min_qa, "--min-qa"), _number(args.max_qa, "--max-qa")
    if low is not None and high is not None and low > high:
        raise CliError(f"--min-qa {args.min_qa} is over --max-qa {args.max_qa}")
    if low is not None:
        request.min_qa_score = low
    if high is not None:
        request.max_qa_score = high
    if args.tier:
        request.tier = _TIERS[args.tier]
    if args.integrity:
        request.integrity = _INTEGRITIES[args.integrity]
    if args.not_verified_since is not None:
        request.not_verified_since.CopyFrom(_timestamp(parse_when(args.not_verified_since, "--not-verified-since")))
    return request


# -- formatting --------------------------------------------------------------------------------------------------


def _color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def render_highlight(highlight: str, color: bool) -> str:
    """`<em>` marks from the search as bold (terminal) or [brackets] (pipes, files)."""
    start, end = (BOLD, RESET) if color else ("[", "]")
    return highlight.replace("<em>", start).replace("</em>", end)


def _role(role: int) -> str:
    return c.SpeakerRole.Name(role).removeprefix("SPEAKER_ROLE_") if role in c.SpeakerRole.values() else "?"


def _enum_word(enum: Any, value: int, prefix: str) -> str:
    """`LANGUAGE_ZH` -> `zh`; unset -> ``."""
    if not value or value not in enum.values():
        return ""
    return enum.Name(value).removeprefix(prefix).lower()


def _mmss(ms: int) -> str:
    return f"{ms // 60000:02d}:{ms % 60000 // 1000:02d}"


def _mmss_tenth(ms: int) -> str:
    tenths = round(ms / 100)
    return f"{tenths // 600:02d}:{tenths % 600 / 10:04.1f}"


def _clock(ms: int) -> str:
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _num(value: float, digits: int) -> str:
    """A float32 from the wire as a short decimal: 85.0 -> 85, 0.61999 -> 0.62 (digits=2)."""
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _secs(ms: int) -> str:
    return f"{_num(ms / 1000, 1)}s"


def _when(stamp: Timestamp) -> str:
    return stamp.ToJsonString() if stamp.seconds or stamp.nanos else ""


def _qa(analytics: pb.CallAnalytics) -> str:
    if not analytics.HasField("qa"):
        return ""
    return f"QA {_num(analytics.qa.score, 1)}/{_num(analytics.qa.max_score, 1)}"


def format_hit(hit: pb.CallHit, color: bool) -> str:
    head = [
        shown(hit.recording_id),
        f"call={shown(hit.call_id)}" if hit.call_id else "",
        f"agent={shown(hit.agent_id)}" if hit.agent_id else "",
        _when(hit.started_at),
        _clock(hit.duration_ms),
        _qa(hit.analytics) if hit.HasField("analytics") else "",
    ]
    lines = ["  ".join(part for part in head if part)]
    for u in hit.utterances:
        text = render_highlight(shown(u.highlight), color) if u.highlight else shown(u.text)
        lines.append(f"  [{_mmss(u.start_ms)}] {_role(u.role)}: {text}")
    return "\n".join(lines)


def _rate_unit(call: pb.Call) -> str:
    languages = [call.metadata.language] + [u.language for u in call.utterances]
    for language in languages:
        if language == c.LANGUAGE_ZH:
            return "chars/min"
        if language == c.LANGUAGE_EN:
            return "wpm"
    return "/min"


def format_call(call: pb.Call, color: bool) -> str:
    meta = call.metadata
    dim, reset = (DIM, RESET) if color else ("", "")
    facts = [
        ("call", shown(meta.call_id)),
        ("agent", shown(meta.agent_id)),
        ("customer", shown(meta.customer_id)),
        ("started", _when(meta.started_at)),
        ("duration", _clock(call.audio.duration_ms) if call.audio.duration_ms else ""),
        ("language", _enum_word(c.Language, meta.language, "LANGUAGE_")),
        ("layout", _enum_word(c.ChannelLayout, meta.channel_layout, "CHANNEL_LAYOUT_")),
        ("sha256", call.object.sha256),
        *lifecycle_facts(call, color),
    ]
    lines = [f"recording {shown(call.recording_id)}", "  ".join(f"{k}={v}" for k, v in facts if v)]
    speakers = diarization_line(call.diarization)
    if speakers:
        lines.append(speakers)
    if call.utterances:
        lines += ["", "Transcript"]
    for u in call.utterances:
        text = shown(u.normalized_text or u.text)
        raw = f"  {dim}({shown(u.text)}){reset}" if u.normalized_text and u.text and u.text != u.normalized_text else ""
        unsure = "?" if u.speaker and 0 < u.role_confidence < UNSURE_ROLE else ""
        lines.append(f"  [{_mmss_tenth(u.start_ms)}-{_mmss_tenth(u.end_ms)}] {_role(u.role)}{unsure}: {text}{raw}")
    if call.HasField("analytics"):
        lines += _analytics_lines(call.analytics, _rate_unit(call))
    return "\n".join(lines)


def lifecycle_facts(call: pb.Call, color: bool) -> list[tuple[str, str]]:
    """Where the audio is and what the integrity audit found: `tier=cold moved=<time>` once moved (a hot call never
    moved says nothing), `integrity=ok verified=<time>` once audited; a finding other than ok in capitals (bold on
    a terminal): `integrity=MISMATCH`, `integrity=MISSING`."""
    facts: list[tuple[str, str]] = []
    moved = call.HasField("moved_at")
    if moved or call.tier not in (c.STORAGE_TIER_UNSPECIFIED, c.STORAGE_TIER_HOT):
        facts += [("tier", _enum_word(c.StorageTier, call.tier, "STORAGE_TIER_")), ("moved", _when(call.moved_at))]
    if call.integrity != c.INTEGRITY_UNSPECIFIED:
        finding = _enum_word(c.Integrity, call.integrity, "INTEGRITY_") or str(call.integrity)
        if call.integrity != c.INTEGRITY_OK:
            finding = f"{BOLD}{finding.upper()}{RESET}" if color else finding.upper()
        facts.append(("integrity", finding))
    if call.HasField("verified_at"):
        facts.append(("verified", _when(call.verified_at)))
    return facts


UNSURE_ROLE = 0.7  # a diarized utterance whose voice was assigned with less confidence is shown as AGENT?


_AGENT_RULES = {"first_speaker": "the first voice heard", "second_speaker": "the second voice heard"}


def diarization_line(d: c.Diarization) -> str:
    """How a mono call's speech was split between agent and customer; "" for a stereo (or undiarized) call."""
    if d.status == c.DIARIZATION_STATUS_DIARIZED:
        agent = next((s.speaker for s in d.speakers if s.role == c.SPEAKER_ROLE_AGENT), 0)
        rule = _AGENT_RULES.get(d.agent_rule, "the greeting" if d.agent_rule == "greeting" else shown(d.agent_rule))
        voices = ", ".join(
            f"voice {s.speaker} {_role(s.role).lower()} {_secs(s.speech_ms)} in {s.segment_count} segments"
            for s in sorted(d.speakers, key=lambda s: s.speaker)
        )
        agent_text = f"agent = voice {agent}, by {rule}" if agent else "no agent chosen"
        return f"speakers: mono call split in two voices ({voices}); {agent_text} (utterances marked ? are unsure)"
    if d.status == c.DIARIZATION_STATUS_MIXED:
        return f"speakers: mono call left MIXED: {shown(d.reason) or 'no reason given'}"
    return ""


def _analytics_lines(a: pb.CallAnalytics, unit: str) -> list[str]:
    out: list[str] = []
    if a.agent.talk_ms or a.customer.talk_ms:
        out.append(
            f"  talk: agent {_clock(a.agent.talk_ms)}, customer {_clock(a.customer.talk_ms)}, "
            f"agent share {_num(a.agent_talk_ratio * 100, 0)}%"
        )
    if a.silence_ms or a.longest_silence_ms or a.dead_air_count:
        threshold = f" (silences of {_secs(a.dead_air_threshold_ms)} or more)" if a.dead_air_threshold_ms else ""
        out.append(
            f"  silence: {_secs(a.silence_ms)} in all, longest {_secs(a.longest_silence_ms)}, "
            f"dead air {a.dead_air_count}{threshold}"
        )
    if a.overlap_ms:
        out.append(f"  overlap: {_secs(a.overlap_ms)}")
    if a.interruption_count or a.interruptions:
        out.append(
            f"  interruptions: {a.interruption_count or len(a.interruptions)} "
            f"(agent {a.agent.interruptions}, customer {a.customer.interruptions})"
        )
        for i in a.interruptions:
            whom = f" {_role(_OTHER_SIDE[i.by])}" if i.by in _OTHER_SIDE else ""
            out.append(f"    [{_mmss_tenth(i.at_ms)}] {_role(i.by)} interrupted{whom} ({_secs(i.overlap_ms)} overlap)")
    if a.agent.speaking_rate or a.customer.speaking_rate:
        out.append(
            f"  speaking rate: agent {_num(a.agent.speaking_rate, 0)} {unit}, "
            f"customer {_num(a.customer.speaking_rate, 0)} {unit}"
        )
    if a.keyword_hits:
        out.append(f"  keyword hits: {len(a.keyword_hits)}")
        for k in a.keyword_hits:
            said = f' (said "{k.matched}")' if k.matched and k.matched != k.phrase else ""
            out.append(f'    [{_mmss_tenth(k.start_ms)}] {_role(k.role)} {k.list}: "{k.phrase}"{said}')
    if a.sentiment_label:
        out.append(
            f"  sentiment: {a.sentiment_label} ({_num(a.sentiment, 2)}); "
            f"agent {_num(a.agent.sentiment, 2)}, customer {_num(a.customer.sentiment, 2)}"
        )
    if out:
        out = ["", "Analytics", *out]
    if a.HasField("qa"):
        out += ["", f"QA score {_num(a.qa.score, 1)}/{_num(a.qa.max_score, 1)}"]
        for d in a.qa.deductions:
            rule = f"{d.rule}: " if d.rule else ""
            out.append(f"  -{_num(abs(d.points), 1)}  {rule}{d.reason}")
    return out


def _dump(message: Any) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True)


# -- commands ----------------------------------------------------------------------------------------------------


def _stub(args: argparse.Namespace) -> tuple[indexer_pb2_grpc.IndexerServiceStub, Target]:
    target = resolve(args, "indexer")
    return indexer_pb2_grpc.IndexerServiceStub(channel(target, args.ca_cert)), target


def search_calls(args: argparse.Namespace) -> int:
    request = build_filter(args, args.query)
    request.page_size = _count(args.page_size, "--page-size", minimum=1) or 0
    stub, target = _stub(args)
    hits: list[pb.CallHit] = []
    total = 0
    with tqdm(unit="call", desc="search", leave=False, disable=args.json or not sys.stderr.isatty()) as bar:
        while True:
            page = stub.Search(request, metadata=auth_metadata(target))
            total = page.total
            bar.total = total
            bar.update(len(page.hits))
            hits.extend(page.hits)
            request.page_token = page.next_page_token
            if not page.next_page_token or not args.all or not page.hits:
                break
    more = bool(request.page_token) and not args.all
    if args.json:
        doc = {"total": total, "hits": [_dump(h) for h in hits], "next_page_token": request.page_token if more else ""}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    color = _color()
    for hit in hits:
        print(format_hit(hit, color))
    print(f"{len(hits)} of {total} calls", file=sys.stderr)
    if more:
        print("(more: pass --all)", file=sys.stderr)
    return 0


def show_call(args: argparse.Namespace) -> int:
    check_recording_id(args.recording_id)
    stub, target = _stub(args)
    call = stub.GetCall(
        pb.GetCallRequest(tenant=args.tenant, recording_id=args.recording_id), metadata=auth_metadata(target)
    )
    if args.json:
        print(json.dumps(_dump(call), indent=2, ensure_ascii=False))
    else:
        print(format_call(call, _color()))
    return 0


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace("=", "\\=")


def labels_cell(labels: Any) -> str:
    """The `labels` column: `k=v;k=v`, keys sorted, `\\`, `;` and `=` inside a key or value escaped by a backslash."""
    return ";".join(f"{_escape_label(key)}={_escape_label(labels[key])}" for key in sorted(labels))


def export_row(call: pb.Call) -> list[str]:
    """One CSV row (EXPORT_COLUMNS); analytics columns are empty where analytics were not computed, the lifecycle
    ones while the audio never moved (`moved_at`) or was never audited (`integrity`, `verified_at`)."""
    meta, audio = call.metadata, call.audio
    row = [
        call.recording_id,
        meta.call_id,
        call.tenant or meta.tenant,
        meta.agent_id,
        meta.customer_id,
        _when(meta.started_at),
        f"{audio.duration_ms / 1000:.3f}",
        _enum_word(c.Language, meta.language, "LANGUAGE_"),
        _enum_word(c.ChannelLayout, meta.channel_layout, "CHANNEL_LAYOUT_"),
        labels_cell(meta.labels),
        call.object.sha256,
        str(len(call.utterances)),
    ]
    lifecycle = [
        _enum_word(c.StorageTier, call.tier, "STORAGE_TIER_"),
        _when(call.moved_at),
        _enum_word(c.Integrity, call.integrity, "INTEGRITY_"),
        _when(call.verified_at),
    ]
    return row + _analytics_cells(call) + lifecycle


def _analytics_cells(call: pb.Call) -> list[str]:
    """The analytics columns of a row (`agent_talk_s` to `qa_deductions`), empty where not computed."""
    if not call.HasField("analytics"):
        return [""] * len(_ANALYTICS_COLUMNS)
    a = call.analytics
    cells = [
        f"{a.agent.talk_ms / 1000:.3f}",
        f"{a.customer.talk_ms / 1000:.3f}",
        _num(a.agent_talk_ratio, 4),
        f"{a.silence_ms / 1000:.3f}",
        f"{a.longest_silence_ms / 1000:.3f}",
        str(a.dead_air_count),
        f"{a.overlap_ms / 1000:.3f}",
        str(a.interruption_count),
        str(a.agent.interruptions),
        str(a.customer.interruptions),
        _num(a.agent.speaking_rate, 1),
        _num(a.customer.speaking_rate, 1),
        ";".join(f"{k.list}:{k.phrase}" for k in a.keyword_hits),
        _num(a.sentiment, 4),
        a.sentiment_label,
    ]
    if a.HasField("qa"):
        cells += [_num(a.qa.score, 2), _num(a.qa.max_score, 2), ";".join(d.reason for d in a.qa.deductions)]
    else:
        cells += ["", "", ""]
    return cells


def write_export(calls: Iterable[pb.Call], out: IO[str], fmt: str) -> int:
    count = 0
    if fmt == "csv":
        # The header waits for the stream's first answer: a refused export writes nothing at all.
        stream = iter(calls)
        first = next(stream, None)
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        for call in itertools.chain([first] if first is not None else [], stream):
            writer.writerow(export_row(call))
            count += 1
    else:
        for call in calls:
            out.write(json.dumps(_dump(call), ensure_ascii=False) + "\n")
            count += 1
    out.flush()
    return count


def _expected_total(stub: indexer_pb2_grpc.IndexerServiceStub, target: Target, request: pb.SearchRequest) -> int | None:
    """How many calls the export will hold, for the progress bar; None when Search cannot tell."""
    probe = pb.SearchRequest()
    probe.CopyFrom(request)
    probe.page_size = 1
    try:
        return stub.Search(probe, metadata=auth_metadata(target)).total
    except grpc.RpcError:
        return None


def export_calls(args: argparse.Namespace) -> int:
    request = build_filter(args, args.query)
    if args.output is not None and args.output.is_dir():
        raise CliError(f"--output {args.output}: is a directory")
    stub, target = _stub(args)
    total = _expected_total(stub, target, request) if sys.stderr.isatty() else None
    stream = stub.ExportCalls(pb.ExportCallsRequest(filter=request), metadata=auth_metadata(target))

    def counted(bar: tqdm) -> Iterator[pb.Call]:
        for call in stream:
            bar.update(1)
            yield call

    with tqdm(total=total, unit="call", desc="export", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        if args.output is None:
            count = write_export(counted(bar), sys.stdout, args.format)
        else:
            # A failed export leaves no file that looks complete: write aside, then rename.
            partial = args.output.with_name(args.output.name + ".partial")
            try:
                with partial.open("w", encoding="utf-8", newline="") as out:
                    count = write_export(counted(bar), out, args.format)
                os.replace(partial, args.output)
            finally:
                partial.unlink(missing_ok=True)
    where = f" to {args.output}" if args.output is not None else ""
    print(f"exported {count} calls{where}", file=sys.stderr)
    return 0
