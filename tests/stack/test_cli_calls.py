"""`callscribe search | show | export | dead-letters` against an in-process gRPC peer with canned replies.

The peer records every request, so the tests check both what the CLI sends for its flags and how it renders
what comes back. The end-to-end run against the real indexer and ingest is in the pipeline tests.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import sys
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from callscribe.cli.main import main
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb
from callscribe.v1 import indexer_pb2_grpc, ingest_pb2, ingest_pb2_grpc

TOKEN = "tok-acme"


def ts(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


def _authorized(context: grpc.ServicerContext) -> None:
    if dict(context.invocation_metadata()).get("authorization") != f"Bearer {TOKEN}":
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown token")


@dataclass
class FakeIndexer(indexer_pb2_grpc.IndexerServiceServicer):
    pages: dict[str, pb.SearchResponse] = field(default_factory=dict)  # by page_token
    calls: dict[str, pb.Call] = field(default_factory=dict)
    export: list[pb.Call] = field(default_factory=list)
    export_fails_after: int | None = None
    error: tuple[grpc.StatusCode, str] | None = None
    searches: list[pb.SearchRequest] = field(default_factory=list)
    gets: list[pb.GetCallRequest] = field(default_factory=list)
    exports: list[pb.ExportCallsRequest] = field(default_factory=list)

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        _authorized(context)
        self.searches.append(request)
        if self.error:
            context.abort(*self.error)
        return self.pages.get(request.page_token, pb.SearchResponse())

    def GetCall(self, request: pb.GetCallRequest, context: grpc.ServicerContext) -> pb.Call:
        _authorized(context)
        self.gets.append(request)
        if request.recording_id not in self.calls:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no call {request.recording_id}")
        return self.calls[request.recording_id]

    def ExportCalls(self, request: pb.ExportCallsRequest, context: grpc.ServicerContext) -> Iterator[pb.Call]:
        _authorized(context)
        self.exports.append(request)
        for n, call in enumerate(self.export):
            if n == self.export_fails_after:
                context.abort(grpc.StatusCode.INTERNAL, "elasticsearch went away")
            yield call


@dataclass
class FakeIngest(ingest_pb2_grpc.IngestServiceServicer):
    pages: dict[str, ingest_pb2.ListDeadLettersResponse] = field(default_factory=dict)
    dead: list[str] = field(default_factory=list)
    lists: list[ingest_pb2.ListDeadLettersRequest] = field(default_factory=list)
    requeues: list[ingest_pb2.RequeueDeadLettersRequest] = field(default_factory=list)
    # GetRecording answers each recording's replies in turn, then keeps answering the last one.
    recordings: dict[str, list[ingest_pb2.Recording]] = field(default_factory=dict)
    got: list[ingest_pb2.GetRecordingRequest] = field(default_factory=list)

    def GetRecording(self, request, context):  # noqa: ANN001, ANN201
        _authorized(context)
        self.got.append(request)
        replies = self.recordings.get(request.recording_id)
        if not replies:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no recording {request.recording_id}")
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def ListDeadLetters(self, request, context):  # noqa: ANN001, ANN201
        _authorized(context)
        self.lists.append(request)
        return self.pages.get(request.page_token, ingest_pb2.ListDeadLettersResponse())

    def RequeueDeadLetters(self, request, context):  # noqa: ANN001, ANN201
        _authorized(context)
        self.requeues.append(request)
        if request.recording_id:
            if request.recording_id not in self.dead:
                context.abort(grpc.StatusCode.NOT_FOUND, f"recording {request.recording_id} has no dead letter")
            return ingest_pb2.RequeueDeadLettersResponse(recording_ids=[request.recording_id])
        return ingest_pb2.RequeueDeadLettersResponse(recording_ids=self.dead)


@dataclass
class Peer:
    address: str
    indexer: FakeIndexer
    ingest: FakeIngest


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    indexer, ingest = FakeIndexer(), FakeIngest()
    indexer_pb2_grpc.add_IndexerServiceServicer_to_server(indexer, server)
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(ingest, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Peer(f"127.0.0.1:{port}", indexer, ingest)
    finally:
        server.stop(None)


def run(capsys: pytest.CaptureFixture[str], peer_address: str, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--address", peer_address, "--token", TOKEN])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- canned data ---------------------------------------------------------------------------------------------------


def full_analytics() -> pb.CallAnalytics:
    return pb.CallAnalytics(
        agent=pb.SideStats(talk_ms=83_000, speaking_rate=212.4, interruptions=1, sentiment=0.25, words=290),
        customer=pb.SideStats(talk_ms=50_000, speaking_rate=180.0, interruptions=2, sentiment=-0.6, words=150),
        agent_talk_ratio=0.624,
        silence_ms=12_300,
        longest_silence_ms=4_500,
        dead_air_count=2,
        dead_air_threshold_ms=3_000,
        overlap_ms=2_100,
        interruption_count=3,
        interruptions=[
            pb.Interruption(by=c.SPEAKER_ROLE_CUSTOMER, at_ms=62_300, overlap_ms=800),
            pb.Interruption(by=c.SPEAKER_ROLE_AGENT, at_ms=95_000, overlap_ms=400),
        ],
        keyword_hits=[
            pb.KeywordHit(
                list="refund", phrase="退费", matched="退费", role=c.SPEAKER_ROLE_CUSTOMER, start_ms=5_000, end_ms=6_000
            ),
            pb.KeywordHit(list="forbidden", phrase="保证", matched="保证", role=c.SPEAKER_ROLE_AGENT, start_ms=70_000),
        ],
        sentiment=-0.35,
        sentiment_label="negative",
        qa=pb.QaResult(
            score=75,
            max_score=100,
            deductions=[
                pb.QaDeduction(rule="closing", points=15, reason="没有说结束语, closing phrase missing"),
                pb.QaDeduction(rule="forbidden", points=10, reason='said "保证"\nat 01:10'),
            ],
        ),
    )


def full_call() -> pb.Call:
    return pb.Call(
        recording_id="0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        tenant="acme",
        metadata=c.RecordingMetadata(
            tenant="acme",
            call_id="call,42",
            agent_id="agent-7",
            customer_id='客户 "王", VIP',
            started_at=ts("2024-05-01T01:30:00Z"),
            channel_layout=c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT,
            language=c.LANGUAGE_ZH,
        ),
        audio=c.AudioFacts(duration_ms=205_000),
        object=c.ObjectRef(sha256="ab" * 32),
        utterances=[
            pb.Utterance(
                role=c.SPEAKER_ROLE_AGENT,
                start_ms=1_200,
                end_ms=4_500,
                text="您好请问有什么可以帮您",
                normalized_text="您好，请问有什么可以帮您？",
            ),
            pb.Utterance(
                role=c.SPEAKER_ROLE_CUSTOMER,
                start_ms=65_000,
                end_ms=68_250,
                text="我要退费一百二十块",
                normalized_text="我要退费120块",
            ),
            pb.Utterance(role=c.SPEAKER_ROLE_AGENT, start_ms=70_000, end_ms=72_000, text="好的", normalized_text=""),
        ],
        analytics=full_analytics(),
    )


def bare_call() -> pb.Call:
    """Indexed before analytics existed: no analytics, no QA."""
    return pb.Call(
        recording_id="e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2",
        tenant="acme",
        metadata=c.RecordingMetadata(call_id="c2", agent_id="agent-9", language=c.LANGUAGE_EN),
        audio=c.AudioFacts(duration_ms=3_723_400),
        utterances=[pb.Utterance(role=c.SPEAKER_ROLE_AGENT, start_ms=0, end_ms=900, text="hello")],
    )


def hit(rec: str, *utterances: pb.UtteranceHit, qa: float | None = 85) -> pb.CallHit:
    analytics = pb.CallAnalytics(qa=pb.QaResult(score=qa, max_score=100)) if qa is not None else None
    return pb.CallHit(
        recording_id=rec,
        call_id=f"call-{rec}",
        agent_id="agent-7",
        started_at=ts("2024-05-01T01:30:00Z"),
        duration_ms=205_000,
        utterances=list(utterances),
        analytics=analytics,
    )


# -- search ----------------------------------------------------------------------------------------------------------


def test_search_sends_every_filter_flag(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, peer.address,
        "search", "退费", "--tenant", "acme", "--agent", "agent-7", "--from", "2024-05-01", "--to", "2024-05-31",
        "--language", "zh", "--min-duration", "30", "--max-duration", "600.5", "--role", "customer",
        "--keyword", "refund", "--missing-keyword", "closing", "--min-silence", "2.5", "--min-interruptions", "3",
        "--sentiment", "negative", "--min-qa", "0", "--max-qa", "80", "--page-size", "7",
        "--tier", "cold", "--integrity", "mismatch", "--not-verified-since", "2024-06-01T08:00:00+08:00",
    )  # fmt: skip
    assert code == 0, err
    (request,) = peer.indexer.searches
    assert request.tenant == "acme"
    assert request.query == "退费"
    assert request.agent_id == "agent-7"
    assert request.started_from.ToJsonString() == "2024-05-01T00:00:00Z"
    assert request.started_to.ToJsonString() == "2024-06-01T00:00:00Z"  # exclusive: all of May 31st
    assert request.language == c.LANGUAGE_ZH
    assert (request.min_duration_ms, request.max_duration_ms) == (30_000, 600_500)
    assert request.role == c.SPEAKER_ROLE_CUSTOMER
    assert (request.keyword, request.missing_keyword) == ("refund", "closing")
    assert request.min_longest_silence_ms == 2_500
    assert request.min_interruptions == 3
    assert request.sentiment_label == "negative"
    assert request.HasField("min_qa_score") and request.min_qa_score == 0  # 0 is a bound, not "unset"
    assert request.HasField("max_qa_score") and request.max_qa_score == 80
    assert request.page_size == 7
    assert request.tier == c.STORAGE_TIER_COLD
    assert request.integrity == c.INTEGRITY_MISMATCH
    assert request.not_verified_since.ToJsonString() == "2024-06-01T00:00:00Z"
    assert "0 of 0 calls" in err


def test_search_without_filters_sends_none(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, peer.address, "search", "")
    assert code == 0, err
    (request,) = peer.indexer.searches
    assert request.query == ""
    assert not request.HasField("started_from") and not request.HasField("started_to")
    assert not request.HasField("min_qa_score") and not request.HasField("max_qa_score")
    assert (request.language, request.role, request.min_duration_ms, request.max_duration_ms) == (0, 0, 0, 0)
    assert (request.tier, request.integrity) == (c.STORAGE_TIER_UNSPECIFIED, c.INTEGRITY_UNSPECIFIED)
    assert not request.HasField("not_verified_since")
    assert request.page_size == 20


@pytest.mark.parametrize(
    ("argv", "tier", "integrity", "since"),
    [
        (("--tier", "hot"), c.STORAGE_TIER_HOT, c.INTEGRITY_UNSPECIFIED, None),
        (("--integrity", "ok"), c.STORAGE_TIER_UNSPECIFIED, c.INTEGRITY_OK, None),
        (("--integrity", "missing"), c.STORAGE_TIER_UNSPECIFIED, c.INTEGRITY_MISSING, None),
        (("--not-verified-since", "2024-06-01T09:30:00Z"), 0, 0, "2024-06-01T09:30:00Z"),
        (("--not-verified-since", "2024-06-01"), 0, 0, "2024-06-01T00:00:00Z"),  # a date: its midnight, UTC
    ],
)
def test_search_lifecycle_filters(
    peer: Peer, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], tier: int, integrity: int, since: str | None
) -> None:
    code, _, err = run(capsys, peer.address, "search", "", *argv)
    assert code == 0, err
    (request,) = peer.indexer.searches
    assert (request.tier, request.integrity) == (tier, integrity)
    assert request.HasField("not_verified_since") == (since is not None)
    if since is not None:
        assert request.not_verified_since.ToJsonString() == since


@pytest.mark.parametrize(("flag", "value"), [("--tier", "warm"), ("--integrity", "bad")])
def test_search_unknown_lifecycle_values_exit_2(
    peer: Peer, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exit_:  # argparse's choices: it names the ones there are
        main(["search", "", flag, value, "--address", peer.address, "--token", TOKEN])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: invalid choice: {value!r}" in err
    assert peer.indexer.searches == []


@pytest.mark.parametrize(
    ("start", "end", "sent_from", "sent_to"),
    [
        ("2024-05-01T09:30:00+08:00", "2024-05-02T10:00:00", "2024-05-01T01:30:00Z", "2024-05-02T10:00:00Z"),
        ("2024-05-01T09:30Z", "2024-05-01T23:00:00.250-05:00", "2024-05-01T09:30:00Z", "2024-05-02T04:00:00.250Z"),
        ("2024-05-01", "2024-05-01", "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"),  # one whole day
    ],
)
def test_search_iso_dates_are_sent_in_utc(
    peer: Peer, capsys: pytest.CaptureFixture[str], start: str, end: str, sent_from: str, sent_to: str
) -> None:
    code, _, err = run(capsys, peer.address, "search", "", "--from", start, "--to", end)
    assert code == 0, err
    (request,) = peer.indexer.searches
    assert request.started_from.ToJsonString() == sent_from
    assert request.started_to.ToJsonString() == sent_to


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--from", "2024-13-01"),
        ("--to", "yesterday"),
        ("--from", "05/01/2024"),
        ("--min-duration", "abc"),
        ("--max-duration", "-5"),
        ("--min-silence", "inf"),
        ("--min-interruptions", "2.5"),
        ("--min-qa", "nan"),
        ("--max-qa", "high"),
        ("--page-size", "0"),
        ("--not-verified-since", "last week"),
    ],
)
def test_search_bad_values_exit_2_before_any_call(
    peer: Peer, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    code, out, err = run(capsys, peer.address, "search", "x", flag, value)
    assert code == 2
    assert out == ""
    assert err.startswith("callscribe search: ")
    assert flag in err and repr(value) in err
    assert peer.indexer.searches == []


@pytest.mark.parametrize(
    "argv",
    [
        ("--from", "2024-06-01", "--to", "2024-05-01"),
        ("--from", "2024-05-01T10:00:00Z", "--to", "2024-05-01T18:00:00+08:00"),  # the same instant
        ("--min-duration", "60", "--max-duration", "30"),
        ("--min-qa", "90", "--max-qa", "50"),
    ],
)
def test_search_inverted_ranges_are_refused(peer: Peer, capsys: pytest.CaptureFixture[str], argv: tuple) -> None:
    code, _, err = run(capsys, peer.address, "search", "x", *argv)
    assert code == 2
    assert argv[0] in err and argv[2] in err
    assert peer.indexer.searches == []


def test_search_renders_hits_with_brackets_when_piped(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.pages[""] = pb.SearchResponse(
        total=2,
        hits=[
            hit(
                "rec-1",
                pb.UtteranceHit(
                    role=c.SPEAKER_ROLE_CUSTOMER, start_ms=83_400, text="我要退费", highlight="我要<em>退费</em>"
                ),
                pb.UtteranceHit(role=c.SPEAKER_ROLE_AGENT, start_ms=3_723_000, text="a <b> refund, sir"),
            ),
            hit("rec-2", qa=None),
        ],
    )
    code, out, err = run(capsys, peer.address, "search", "退费")
    assert code == 0, err
    assert out.splitlines() == [
        "rec-1  call=call-rec-1  agent=agent-7  2024-05-01T01:30:00Z  3:25  QA 85/100",
        "  [01:23] CUSTOMER: 我要[退费]",
        "  [62:03] AGENT: a <b> refund, sir",  # no highlight: the text as it is
        "rec-2  call=call-rec-2  agent=agent-7  2024-05-01T01:30:00Z  3:25",
    ]
    assert "\033[" not in out
    assert "2 of 2 calls" in err and "--all" not in err


def test_search_renders_bold_on_a_terminal(
    peer: Peer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer.indexer.pages[""] = pb.SearchResponse(
        total=1,
        hits=[
            hit(
                "rec-1",
                pb.UtteranceHit(role=c.SPEAKER_ROLE_AGENT, text="full refund", highlight="full <em>refund</em>"),
            )
        ],
    )
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code = main(["search", "refund", "--address", peer.address, "--token", TOKEN])
    out = capsys.readouterr().out
    assert code == 0
    assert "  [00:00] AGENT: full \033[1mrefund\033[0m" in out.splitlines()


def test_search_pages_only_with_all(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.pages = {
        "": pb.SearchResponse(total=5, hits=[hit("r1"), hit("r2")], next_page_token="p2"),
        "p2": pb.SearchResponse(total=5, hits=[hit("r3"), hit("r4")], next_page_token="p3"),
        "p3": pb.SearchResponse(total=5, hits=[hit("r5")]),
    }
    code, out, err = run(capsys, peer.address, "search", "", "--page-size", "2")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["r1", "r2"]
    assert "2 of 5 calls" in err and "(more: pass --all)" in err

    peer.indexer.searches.clear()
    code, out, err = run(capsys, peer.address, "search", "", "--page-size", "2", "--all")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["r1", "r2", "r3", "r4", "r5"]
    assert [r.page_token for r in peer.indexer.searches] == ["", "p2", "p3"]
    assert all(r.page_size == 2 for r in peer.indexer.searches)
    assert "5 of 5 calls" in err and "--all" not in err


def test_search_json(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.pages[""] = pb.SearchResponse(
        total=9,
        next_page_token="p2",
        hits=[hit("rec-1", pb.UtteranceHit(role=c.SPEAKER_ROLE_CUSTOMER, text="退费", highlight="<em>退费</em>"))],
    )
    code, out, _ = run(capsys, peer.address, "search", "退费", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["total"] == 9
    assert doc["next_page_token"] == "p2"
    assert doc["hits"][0]["recording_id"] == "rec-1"
    assert doc["hits"][0]["utterances"][0]["highlight"] == "<em>退费</em>"
    assert doc["hits"][0]["analytics"]["qa"]["score"] == 85
    assert "退费" in out  # not \u-escaped


def test_server_invalid_argument_is_reported(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.error = (grpc.StatusCode.INVALID_ARGUMENT, "query is 1500 characters long; at most 1000")
    code, out, err = run(capsys, peer.address, "search", "x" * 1500)
    assert code == 1
    assert out == ""
    assert err.strip() == "callscribe search: INVALID_ARGUMENT: query is 1500 characters long; at most 1000"


def test_wrong_token_is_put_in_cli_terms(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["show", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "--address", peer.address, "--token", "someone-else"])
    assert code == 1
    assert capsys.readouterr().err == (
        "callscribe show: the token was refused: check --token / CALLSCRIBE_TOKEN "
        "(or use --tenant T against the local stack)\n"
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "argv",
    [
        ("search", "x"),
        ("show", "f" * 32),
        ("export", "--format", "csv"),
        ("dead-letters",),
        ("dead-letters", "requeue", "--all"),
    ],
)
def test_unreachable_service_is_named_with_its_address(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    code, out, err = run(capsys, address, *argv)
    assert code == 1
    service = "ingest" if argv[0] == "dead-letters" else "indexer"
    reach = f"cannot reach {service} at {address} — is it running? `callscribe stack status`"
    assert err == f"callscribe {argv[0]}: {reach}\n"
    assert "recording_id" not in out  # no CSV header for an export that never started


def test_a_service_that_answers_unavailable_keeps_its_message(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.error = (grpc.StatusCode.UNAVAILABLE, "Elasticsearch is unreachable; try again")
    code, _, err = run(capsys, peer.address, "search", "x")
    assert code == 1
    assert err.strip() == "callscribe search: UNAVAILABLE: Elasticsearch is unreachable; try again"


# -- show ------------------------------------------------------------------------------------------------------------


def test_show_renders_transcript_analytics_and_qa(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.calls["0a1b2c3d4e5f60718293a4b5c6d7e8f9"] = full_call()
    code, out, err = run(capsys, peer.address, "show", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "--tenant", "acme")
    assert code == 0, err
    (request,) = peer.indexer.gets
    assert (request.tenant, request.recording_id) == ("acme", "0a1b2c3d4e5f60718293a4b5c6d7e8f9")
    lines = out.splitlines()
    assert lines[0] == "recording 0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert lines[1] == (
        'call=call,42  agent=agent-7  customer=客户 "王", VIP  started=2024-05-01T01:30:00Z  duration=3:25  '
        "language=zh  layout=stereo_agent_right  sha256=" + "ab" * 32
    )
    assert "  [00:01.2-00:04.5] AGENT: 您好，请问有什么可以帮您？  (您好请问有什么可以帮您)" in lines
    assert "  [01:05.0-01:08.2] CUSTOMER: 我要退费120块  (我要退费一百二十块)" in lines
    assert "  [01:10.0-01:12.0] AGENT: 好的" in lines  # not normalized yet: the raw text, once
    expected = [
        "Analytics",
        "  talk: agent 1:23, customer 0:50, agent share 62%",
        "  silence: 12.3s in all, longest 4.5s, dead air 2 (silences of 3s or more)",
        "  overlap: 2.1s",
        "  interruptions: 3 (agent 1, customer 2)",
        "    [01:02.3] CUSTOMER interrupted AGENT (0.8s overlap)",
        "    [01:35.0] AGENT interrupted CUSTOMER (0.4s overlap)",
        "  speaking rate: agent 212 chars/min, customer 180 chars/min",
        "  keyword hits: 2",
        '    [00:05.0] CUSTOMER refund: "退费"',
        '    [01:10.0] AGENT forbidden: "保证"',
        "  sentiment: negative (-0.35); agent 0.25, customer -0.6",
        "",
        "QA score 75/100",
        "  -15  closing: 没有说结束语, closing phrase missing",
        '  -10  forbidden: said "保证"',
        "at 01:10",
    ]
    start = lines.index("Analytics")
    assert lines[start:] == expected


def test_show_leaves_out_what_was_not_computed(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.calls["e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2"] = bare_call()
    code, out, _ = run(capsys, peer.address, "show", "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2")
    assert code == 0
    assert out.splitlines() == [
        "recording e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2",
        "call=c2  agent=agent-9  duration=1:02:03  language=en",
        "",
        "Transcript",
        "  [00:00.0-00:00.9] AGENT: hello",
    ]


def test_show_says_how_a_mono_call_was_split(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    """A diarized mono call names its voices and how the agent was chosen, and marks unsure utterances; a
    call left MIXED says why; a stereo call says nothing about it."""
    diarized = bare_call()
    diarized.diarization.CopyFrom(
        c.Diarization(
            status=c.DIARIZATION_STATUS_DIARIZED,
            agent_rule="greeting",
            speakers=[
                c.SpeakerSpeech(speaker=2, role=c.SPEAKER_ROLE_AGENT, speech_ms=41_000, segment_count=12),
                c.SpeakerSpeech(speaker=1, role=c.SPEAKER_ROLE_CUSTOMER, speech_ms=23_500, segment_count=9),
            ],
        )
    )
    diarized.utterances[0].speaker = 2
    diarized.utterances[0].role_confidence = 0.55
    diarized.utterances.add(role=c.SPEAKER_ROLE_CUSTOMER, start_ms=1000, end_ms=2000, text="hi", speaker=1)
    diarized.utterances[1].role_confidence = 0.95
    peer.indexer.calls["d1" * 16] = diarized
    code, out, _ = run(capsys, peer.address, "show", "d1" * 16)
    assert code == 0
    lines = out.splitlines()
    assert lines[2] == (
        "speakers: mono call split in two voices (voice 1 customer 23.5s in 9 segments, voice 2 agent 41s in 12 "
        "segments); agent = voice 2, by the greeting (utterances marked ? are unsure)"
    )
    assert "  [00:00.0-00:00.9] AGENT?: hello" in lines and "  [00:01.0-00:02.0] CUSTOMER: hi" in lines
    mixed = bare_call()
    mixed.diarization.CopyFrom(c.Diarization(status=c.DIARIZATION_STATUS_MIXED, reason="one voice heard"))
    peer.indexer.calls["d2" * 16] = mixed
    code, out, _ = run(capsys, peer.address, "show", "d2" * 16)
    assert code == 0 and out.splitlines()[2] == "speakers: mono call left MIXED: one voice heard"
    stereo = bare_call()
    stereo.diarization.status = c.DIARIZATION_STATUS_OFF
    peer.indexer.calls["d3" * 16] = stereo
    code, out, _ = run(capsys, peer.address, "show", "d3" * 16)
    assert code == 0 and not any(line.startswith("speakers:") for line in out.splitlines())


def test_show_says_where_the_audio_is_and_what_the_audit_found(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    cold = bare_call()
    cold.tier = c.STORAGE_TIER_COLD
    cold.moved_at.CopyFrom(ts("2024-06-01T02:00:00Z"))
    cold.integrity = c.INTEGRITY_OK
    cold.verified_at.CopyFrom(ts("2024-06-10T00:00:00Z"))
    peer.indexer.calls["c0" * 16] = cold
    code, out, _ = run(capsys, peer.address, "show", "c0" * 16)
    assert code == 0
    assert out.splitlines()[1] == (
        "call=c2  agent=agent-9  duration=1:02:03  language=en  tier=cold  moved=2024-06-01T02:00:00Z  "
        "integrity=ok  verified=2024-06-10T00:00:00Z"
    )
    for finding, shown in ((c.INTEGRITY_MISMATCH, "MISMATCH"), (c.INTEGRITY_MISSING, "MISSING")):
        hot = bare_call()
        hot.tier = c.STORAGE_TIER_HOT  # never moved: nothing said about the tier
        hot.integrity = finding
        hot.verified_at.CopyFrom(ts("2024-06-10T00:00:00Z"))
        peer.indexer.calls["c1" * 16] = hot
        code, out, _ = run(capsys, peer.address, "show", "c1" * 16)
        assert code == 0
        assert out.splitlines()[1] == (
            f"call=c2  agent=agent-9  duration=1:02:03  language=en  integrity={shown}  verified=2024-06-10T00:00:00Z"
        )


def test_show_partial_analytics_shows_only_what_is_there(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    call = bare_call()
    call.analytics.CopyFrom(
        pb.CallAnalytics(
            agent=pb.SideStats(talk_ms=600, speaking_rate=150), customer=pb.SideStats(talk_ms=300, speaking_rate=90)
        )
    )
    call.analytics.agent_talk_ratio = 0.667
    peer.indexer.calls["e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2"] = call
    code, out, _ = run(capsys, peer.address, "show", "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2")
    assert code == 0
    tail = out.splitlines()[out.splitlines().index("Analytics") :]
    assert tail == [
        "Analytics",
        "  talk: agent 0:01, customer 0:00, agent share 67%",
        "  speaking rate: agent 150 wpm, customer 90 wpm",
    ]


def test_show_unknown_recording(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, peer.address, "show", "d" * 32)
    assert code == 1
    assert out == ""
    assert err.strip() == f"callscribe show: NOT_FOUND: no call {'d' * 32}"


def test_show_json(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.calls["0a1b2c3d4e5f60718293a4b5c6d7e8f9"] = full_call()
    code, out, _ = run(capsys, peer.address, "show", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["metadata"]["call_id"] == "call,42"
    assert doc["analytics"]["qa"]["deductions"][0]["reason"] == "没有说结束语, closing phrase missing"
    assert doc["utterances"][1]["normalized_text"] == "我要退费120块"


# -- export ----------------------------------------------------------------------------------------------------------

COLUMNS = [
    "recording_id", "call_id", "tenant", "agent_id", "customer_id", "started_at", "duration_s", "language",
    "channel_layout", "labels", "sha256", "utterances", "agent_talk_s", "customer_talk_s", "agent_talk_ratio",
    "silence_s", "longest_silence_s", "dead_air_count", "overlap_s", "interruptions", "agent_interruptions",
    "customer_interruptions", "agent_wpm", "customer_wpm", "keyword_hits", "sentiment", "sentiment_label", "qa_score",
    "qa_max", "qa_deductions", "tier", "moved_at", "integrity", "verified_at",
]  # fmt: skip


def test_export_csv_quotes_chinese_commas_and_newlines(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.indexer.export = [full_call(), bare_call()]
    code, out, err = run(
        capsys, peer.address, "export", "--format", "csv", "--query", "退费", "--agent", "agent-7",
        "--from", "2024-05-01T08:00:00+08:00", "--max-qa", "80", "--missing-keyword", "closing",
    )  # fmt: skip
    assert code == 0, err
    (request,) = peer.indexer.exports
    f = request.filter
    assert (f.query, f.agent_id, f.missing_keyword) == ("退费", "agent-7", "closing")
    assert f.started_from.ToJsonString() == "2024-05-01T00:00:00Z"
    assert f.HasField("max_qa_score") and f.max_qa_score == 80 and not f.HasField("min_qa_score")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == COLUMNS
    assert len(rows) == 3
    first = dict(zip(COLUMNS, rows[1], strict=True))
    assert first == {
        "recording_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "call_id": "call,42",
        "tenant": "acme",
        "agent_id": "agent-7",
        "customer_id": '客户 "王", VIP',
        "started_at": "2024-05-01T01:30:00Z",
        "duration_s": "205.000",
        "language": "zh",
        "channel_layout": "stereo_agent_right",
        "labels": "",
        "sha256": "ab" * 32,
        "utterances": "3",
        "agent_talk_s": "83.000",
        "customer_talk_s": "50.000",
        "agent_talk_ratio": "0.624",
        "silence_s": "12.300",
        "longest_silence_s": "4.500",
        "dead_air_count": "2",
        "overlap_s": "2.100",
        "interruptions": "3",
        "agent_interruptions": "1",
        "customer_interruptions": "2",
        "agent_wpm": "212.4",
        "customer_wpm": "180",
        "keyword_hits": "refund:退费;forbidden:保证",
        "sentiment": "-0.35",
        "sentiment_label": "negative",
        "qa_score": "75",
        "qa_max": "100",
        "qa_deductions": '没有说结束语, closing phrase missing;said "保证"\nat 01:10',
        "tier": "",
        "moved_at": "",
        "integrity": "",
        "verified_at": "",
    }
    second = dict(zip(COLUMNS, rows[2], strict=True))
    assert (second["recording_id"], second["duration_s"], second["utterances"], second["language"]) == (
        "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2",
        "3723.400",
        "1",
        "en",
    )
    assert second["started_at"] == ""
    # No analytics: empty, not 0.
    assert all(second[col] == "" for col in COLUMNS[COLUMNS.index("agent_talk_s") : COLUMNS.index("qa_deductions") + 1])
    assert "exported 2 calls" in err


def test_export_has_the_lifecycle_columns_last(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    moved = full_call()
    moved.tier = c.STORAGE_TIER_COLD
    moved.moved_at.CopyFrom(ts("2024-06-01T02:00:00.250Z"))
    moved.integrity = c.INTEGRITY_MISMATCH
    moved.verified_at.CopyFrom(ts("2024-06-10T00:00:00Z"))
    hot = bare_call()
    hot.tier = c.STORAGE_TIER_HOT
    peer.indexer.export = [moved, hot]
    code, out, _ = run(capsys, peer.address, "export", "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0][-4:] == ["tier", "moved_at", "integrity", "verified_at"]
    assert rows[1][-4:] == ["cold", "2024-06-01T02:00:00.250Z", "mismatch", "2024-06-10T00:00:00Z"]
    assert rows[1][COLUMNS.index("qa_deductions")].startswith("没有说结束语")  # the analytics stay where they were
    assert rows[2][-4:] == ["hot", "", "", ""]


def test_export_has_the_labels_escaped_and_sorted(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    call = bare_call()
    call.metadata.labels.update({"queue": "billing", "campaign": "spring;sale", "a=b": "c\\d", "empty": ""})
    peer.indexer.export = [call, bare_call()]
    code, out, _ = run(capsys, peer.address, "export", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert rows[0]["labels"] == "a\\=b=c\\\\d;campaign=spring\\;sale;empty=;queue=billing"
    assert rows[1]["labels"] == ""


def test_export_progress_bar_stays_off_stdout(
    peer: Peer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer.indexer.export = [bare_call(), bare_call(), bare_call()]
    peer.indexer.pages[""] = pb.SearchResponse(total=3, hits=[hit("x")])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as on a terminal: the bar is drawn
    code, out, err = run(capsys, peer.address, "export", "--format", "csv", "--keyword", "refund")
    assert code == 0
    (probe,) = peer.indexer.searches  # the total for the bar comes from a one-hit Search with the same filter
    assert probe.page_size == 1 and probe.keyword == "refund"
    assert "3/3" in err
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == COLUMNS and len(rows) == 4
    assert all(row[0] == "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2" for row in rows[1:])


def test_export_jsonl_to_a_file(peer: Peer, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    peer.indexer.export = [full_call(), bare_call()]
    target = tmp_path / "calls.jsonl"
    code, out, err = run(capsys, peer.address, "export", "--format", "jsonl", "--output", str(target))
    assert code == 0, err
    assert out == ""
    docs = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [d["recording_id"] for d in docs] == ["0a1b2c3d4e5f60718293a4b5c6d7e8f9", "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2"]
    assert docs[0]["analytics"]["keyword_hits"][0]["phrase"] == "退费"
    assert "退费" in target.read_text(encoding="utf-8")
    assert f"exported 2 calls to {target}" in err


def test_export_csv_file_round_trips(peer: Peer, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    peer.indexer.export = [full_call()]
    target = tmp_path / "calls.csv"
    code, _, _ = run(capsys, peer.address, "export", "--output", str(target))
    assert code == 0
    with target.open(encoding="utf-8", newline="") as data:
        rows = list(csv.DictReader(data))
    assert len(rows) == 1
    assert rows[0]["customer_id"] == '客户 "王", VIP'
    assert rows[0]["qa_deductions"].endswith("\nat 01:10")


def test_failed_export_leaves_no_file(peer: Peer, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    peer.indexer.export = [full_call(), bare_call(), bare_call()]
    peer.indexer.export_fails_after = 1
    target = tmp_path / "calls.csv"
    code, _, err = run(capsys, peer.address, "export", "--output", str(target))
    assert code == 1
    assert err.strip().endswith("callscribe export: INTERNAL: elasticsearch went away")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its partial copy


def test_export_bad_date(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, peer.address, "export", "--to", "2024-02-30")
    assert code == 2
    assert out == ""
    assert "--to '2024-02-30'" in err
    assert peer.indexer.exports == []


# -- dead letters ----------------------------------------------------------------------------------------------------


A_ID, B_ID, C_ID = "a" * 32, "b" * 32, "c" * 32


def dead_letter(rec: str, stage: str, reason: str) -> ingest_pb2.DeadLetter:
    return ingest_pb2.DeadLetter(
        recording_id=rec, tenant="acme", stage=stage, attempts=5, reason=reason, failed_at=ts("2024-05-02T03:04:05Z")
    )


def test_dead_letters_lists_every_page(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.ingest.pages = {
        "": ingest_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter("rec-a", "asr", "CUDA out of memory\nat step 3")], next_page_token="1-0"
        ),
        "1-0": ingest_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter("rec-bbbbbb", "verify", "sha256 mismatch")]
        ),
    }
    code, out, err = run(capsys, peer.address, "dead-letters", "--tenant", "acme")
    assert code == 0, err
    assert [(r.tenant, r.page_token) for r in peer.ingest.lists] == [("acme", ""), ("acme", "1-0")]
    assert out.splitlines() == [
        "RECORDING_ID  STAGE   ATTEMPTS  FAILED_AT             REASON",
        "rec-a         asr     5         2024-05-02T03:04:05Z  CUDA out of memory at step 3",
        "rec-bbbbbb    verify  5         2024-05-02T03:04:05Z  sha256 mismatch",
    ]
    assert "2 dead letters" in err


def test_dead_letters_json_and_empty(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, peer.address, "dead-letters")
    assert (code, out) == (0, "")
    assert "no dead letters" in err
    peer.ingest.pages[""] = ingest_pb2.ListDeadLettersResponse(dead_letters=[dead_letter("rec-a", "vad", "boom")])
    code, out, _ = run(capsys, peer.address, "dead-letters", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert (row["recording_id"], row["stage"], row["attempts"], row["reason"]) == ("rec-a", "vad", 5, "boom")


@pytest.mark.parametrize(
    "argv",
    [
        ("dead-letters", "requeue", A_ID, "--tenant", "acme"),
        ("dead-letters", "--tenant", "acme", "requeue", A_ID),
    ],
)
def test_requeue_one(peer: Peer, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    peer.ingest.dead = [A_ID, B_ID]
    code, out, err = run(capsys, peer.address, *argv)
    assert code == 0, err
    (request,) = peer.ingest.requeues
    assert (request.tenant, request.recording_id, request.all) == ("acme", A_ID, False)
    assert out == f"requeued {A_ID}\n"


def test_requeue_all(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.ingest.dead = [A_ID, B_ID]
    code, out, err = run(capsys, peer.address, "dead-letters", "requeue", "--all")
    assert code == 0
    (request,) = peer.ingest.requeues
    assert (request.recording_id, request.all) == ("", True)
    assert out.splitlines() == [f"requeued {A_ID}", f"requeued {B_ID}"]
    assert "2 requeued" in err
    code, out, _ = run(capsys, peer.address, "dead-letters", "requeue", "--all", "--json")
    assert json.loads(out) == {"requeued": [A_ID, B_ID]}


@pytest.mark.parametrize(
    "argv",
    [("dead-letters", "requeue"), ("dead-letters", "requeue", A_ID, "--all"), ("dead-letters", "list", "rec-a")],
)
def test_requeue_needs_one_target(peer: Peer, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    code, _, err = run(capsys, peer.address, *argv)
    assert code == 2
    assert err.startswith("callscribe dead-letters: ")
    assert peer.ingest.requeues == [] and peer.ingest.lists == []


def test_requeue_unknown_recording(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, peer.address, "dead-letters", "requeue", C_ID)
    assert code == 1
    assert out == ""
    assert err.strip() == f"callscribe dead-letters: NOT_FOUND: recording {C_ID} has no dead letter"


# -- status ------------------------------------------------------------------------------------------------------------

REC_ID = "5f" * 16


def recording(state: int, detail: str = "", progress: ingest_pb2.StageProgress | None = None) -> ingest_pb2.Recording:
    return ingest_pb2.Recording(
        recording_id=REC_ID,
        tenant="acme",
        metadata=c.RecordingMetadata(
            tenant="acme",
            call_id="call-7",
            agent_id="agent-dana",
            customer_id="cust-42",
            started_at=ts("2024-05-01T01:30:00Z"),
            channel_layout=c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT,
            language=c.LANGUAGE_EN,
            labels={"source": "demo", "queue": "billing"},
        ),
        audio=c.AudioFacts(container="WAV", codec="PCM_16", sample_rate_hz=16000, channels=2, duration_ms=205_000),
        object=c.ObjectRef(
            bucket="callscribe-hot", key=f"recordings/acme/{REC_ID}/audio", version_id="v-123", sha256="ab" * 32
        ),
        lock=c.LockInfo(mode=c.LOCK_MODE_COMPLIANCE, retain_until=ts("2029-05-01T00:00:00Z"), legal_hold=True),
        state=state,
        state_detail=detail,
        archived_at=ts("2024-05-01T02:00:00Z"),
        progress=progress,
    )


ASR_PROGRESS = ingest_pb2.StageProgress(
    stage=c.PIPELINE_STATE_ASR, done_ms=93_400, total_ms=310_000, eta_seconds=72.2, chunks_done=3, chunks_total=10
)
ASR_DETAIL = "chunk 4/10, 93 of 310 s of speech (30%), about 72 s left"


def test_status_is_human_readable(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.ingest.recordings[REC_ID] = [recording(c.PIPELINE_STATE_ASR, ASR_DETAIL, ASR_PROGRESS)]
    code, out, err = run(capsys, peer.address, "status", REC_ID, "--tenant", "acme")
    assert code == 0, err
    (request,) = peer.ingest.got
    assert (request.tenant, request.recording_id) == ("acme", REC_ID)
    assert out.splitlines() == [
        f"recording {REC_ID}  tenant acme",
        "  state        ASR 30% (chunk 4/10, 93 of 310 s of speech), about 72 s left",
        "  call         call-7",
        "  agent        agent-dana",
        "  customer     cust-42",
        "  started at   2024-05-01T01:30:00Z",
        "  duration     3:25 (205.0 s)",
        "  audio        WAV PCM_16 16000 Hz",
        "  channels     2 (stereo, agent left)",
        "  language     en",
        "  labels       queue=billing, source=demo",
        "  lock         COMPLIANCE until 2029-05-01T00:00:00Z, legal hold on",
        f"  object       callscribe-hot/recordings/acme/{REC_ID}/audio",
        "  version      v-123",
        "  sha256       " + "ab" * 32,
        "  archived at  2024-05-01T02:00:00Z",
        "  last audit   not audited yet",
    ]


def test_status_shows_the_tier_the_last_audit_and_a_tombstone(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    moved = recording(c.PIPELINE_STATE_DONE, "", None)
    moved.tier = c.STORAGE_TIER_COLD
    moved.moved_at.CopyFrom(ts("2024-08-01T03:00:00Z"))
    moved.object.bucket = "callscribe-cold"
    moved.integrity = c.INTEGRITY_MISMATCH
    moved.verified_at.CopyFrom(ts("2024-09-01T00:00:00Z"))
    moved.integrity_detail = "COLD s3://callscribe-cold/... hashed to 00ff..., not ab..."
    peer.ingest.recordings[REC_ID] = [moved]
    code, out, _ = run(capsys, peer.address, "status", REC_ID, "--tenant", "acme")
    assert code == 0
    assert "  tier         cold (moved 2024-08-01T03:00:00Z)" in out.splitlines()
    assert f"  object       callscribe-cold/recordings/acme/{REC_ID}/audio" in out.splitlines()
    assert (
        "  last audit   MISMATCH at 2024-09-01T00:00:00Z: COLD s3://callscribe-cold/... hashed to 00ff..., not ab..."
    ) in out.splitlines()
    gone = ingest_pb2.Recording(
        recording_id=REC_ID,
        tenant="acme",
        tombstone=c.Tombstone(
            recording_id=REC_ID, tenant="acme", sha256="ab" * 32, archived_at=ts("2019-05-01T00:00:00Z"),
            retain_until=ts("2024-05-01T00:00:00Z"), deleted_at=ts("2024-05-02T03:00:00Z"),
            reason="retention ended", versions_deleted=4,
        ),
    )  # fmt: skip
    peer.ingest.recordings[REC_ID] = [gone]
    code, out, _ = run(capsys, peer.address, "status", REC_ID, "--tenant", "acme")
    assert code == 0
    assert out.splitlines() == [
        f"recording {REC_ID}  tenant acme",
        "  state        expired: retention ended, deleted 2024-05-02T03:00:00Z",
        "  sha256       " + "ab" * 32,
        "  archived at  2019-05-01T00:00:00Z",
        "  retained to  2024-05-01T00:00:00Z",
        "  deleted      4 object versions, in every tier; this tombstone is kept",
    ]


def test_status_shows_a_wait_and_a_failure_reason(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    waiting = "waiting for asr: RESOURCE_EXHAUSTED: queue full; trying again in 4 s (attempt not counted)"
    peer.ingest.recordings[REC_ID] = [recording(c.PIPELINE_STATE_ASR, waiting, ASR_PROGRESS)]
    _, out, _ = run(capsys, peer.address, "status", REC_ID)
    progress = "ASR 30% (chunk 4/10, 93 of 310 s of speech), about 72 s left"
    assert out.splitlines()[1] == f"  state        {progress} — {waiting}"
    peer.ingest.recordings[REC_ID] = [recording(c.PIPELINE_STATE_FAILED, "asr: undecodable audio", ASR_PROGRESS)]
    code, out, _ = run(capsys, peer.address, "status", REC_ID)
    assert code == 0  # without --wait, a failed recording is a fact to show, not an error of the command
    assert out.splitlines()[1] == "  state        FAILED — asr: undecodable audio"


def test_status_json_keeps_every_field(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    peer.ingest.recordings[REC_ID] = [recording(c.PIPELINE_STATE_ASR, ASR_DETAIL, ASR_PROGRESS)]
    code, out, _ = run(capsys, peer.address, "status", REC_ID, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["progress"] == {
        "stage": "PIPELINE_STATE_ASR",
        "done_ms": "93400",
        "total_ms": "310000",
        "eta_seconds": 72.2,
        "chunks_done": 3,
        "chunks_total": 10,
    }
    assert doc["lock"]["legal_hold"] is True and doc["metadata"]["labels"] == {"source": "demo", "queue": "billing"}


def _pipeline_run(final: ingest_pb2.Recording) -> list[ingest_pb2.Recording]:
    vad = ingest_pb2.StageProgress(stage=c.PIPELINE_STATE_VAD, done_ms=0, total_ms=205_000)
    return [
        recording(c.PIPELINE_STATE_QUEUED),
        recording(c.PIPELINE_STATE_VAD, "", vad),
        recording(c.PIPELINE_STATE_ASR, ASR_DETAIL, ASR_PROGRESS),
        recording(c.PIPELINE_STATE_INDEXING),
        final,
    ]


def test_status_wait_follows_the_stages_with_a_bar_until_done(
    peer: Peer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("callscribe.cli.status.WAIT_POLL_S", 0.01)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as on a terminal: the bar is drawn
    peer.ingest.recordings[REC_ID] = _pipeline_run(recording(c.PIPELINE_STATE_DONE))
    code, out, err = run(capsys, peer.address, "status", REC_ID, "--wait")
    assert code == 0, err
    assert len(peer.ingest.got) == 5  # polled until DONE, then no more
    for stage in ("\rqueued [", "\rVAD:   0%", "\rASR:  30%", "\rindexing ["):  # each stage names the bar
        assert stage in err
    assert "| 93/310 s, chunk 4/10, about 72 s left [" in err  # seconds of speech done of the stage's total
    assert out.splitlines()[1] == "  state        done"


def test_status_wait_exits_1_with_the_reason_on_failure(
    peer: Peer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("callscribe.cli.status.WAIT_POLL_S", 0.01)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # piped: one line per change instead of a bar
    failed = recording(c.PIPELINE_STATE_FAILED, "asr: INVALID_ARGUMENT: undecodable audio")
    peer.ingest.recordings[REC_ID] = _pipeline_run(failed)
    code, out, err = run(capsys, peer.address, "status", REC_ID, "--wait")
    assert code == 1
    assert err.splitlines() == [
        f"{REC_ID}: queued",
        f"{REC_ID}: VAD 0% (0 of 205 s of audio)",
        f"{REC_ID}: ASR 30% (chunk 4/10, 93 of 310 s of speech), about 72 s left",
        f"{REC_ID}: indexing",
        "callscribe status: the pipeline failed: asr: INVALID_ARGUMENT: undecodable audio",
    ]
    assert out.splitlines()[1] == "  state        FAILED — asr: INVALID_ARGUMENT: undecodable audio"


@pytest.mark.parametrize(
    "argv",
    [
        ("status", "deadbeef"),
        ("status", "deadbeef", "--wait"),
        ("show", "deadbeef"),
        ("hold", "deadbeef", "on"),
        ("segments", "deadbeef"),
        ("dead-letters", "requeue", "deadbeef"),
    ],
)
def test_a_malformed_id_is_refused_before_any_call(
    peer: Peer, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, peer.address, *argv)
    assert code == 2
    assert out == ""
    assert err == f"callscribe {argv[0]}: recording_id 'deadbeef' is not a recording id (32 lowercase hex characters)\n"
    assert peer.ingest.got == [] and peer.indexer.gets == [] and peer.ingest.requeues == []
