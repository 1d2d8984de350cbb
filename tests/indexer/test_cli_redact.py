"""`callscribe redact` against the real indexer: what the caller's tenant's policy would store for a text."""

from __future__ import annotations

import io
import json

import pytest

from callscribe.cli.main import main

from .conftest import PiiIndexer

TEXT = "卡号6222 0212 3456 7894,手机13800138000"


def redact(pii: PiiIndexer, capsys: pytest.CaptureFixture[str], tenant: str, *argv: str) -> tuple[int, str, str]:
    service = pii.indexer
    code = main(["redact", *argv, "--address", service.server.address, "--token", service.tokens[tenant]])
    out, err = capsys.readouterr()
    return code, out, err


def test_redact_prints_the_stored_text_what_was_masked_and_the_policy(
    pii_indexer: PiiIndexer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = redact(pii_indexer, capsys, "acme", "--language", "zh", TEXT)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "卡号[CARD],手机[PHONE]",
        "",
        "masked: 2",
        "  card              '6222 0212 3456 7894' -> [CARD]",
        "  phone             '13800138000' -> [PHONE]",
        "policy: masks card, cn_id, bank_account, phone, email, verification_code; unredacted transcript not kept",
    ]


def test_redact_shows_what_a_narrower_policy_leaves_readable(
    pii_indexer: PiiIndexer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = redact(pii_indexer, capsys, "cards", "--language", "zh", TEXT)
    assert code == 0
    assert out.splitlines() == [
        "卡号[CARD ****7894],手机13800138000",
        "",
        "masked: 1",
        "  card              '6222 0212 3456 7894' -> [CARD ****7894]",
        "left readable by the policy: 1",
        "  phone             '13800138000'",
        "policy: masks card; unredacted transcript not kept; masks show the last 4 digits of cards and accounts",
    ]


def test_redact_json_and_text_from_standard_input(
    pii_indexer: PiiIndexer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("the code is four seven two nine\n"))
    code, out, _ = redact(pii_indexer, capsys, "keeper", "--language", "en", "--json", "-")
    assert code == 0
    assert json.loads(out) == {
        "text": "the code is [VERIFICATION_CODE]",
        "masked": [
            {
                "category": "verification_code",
                "start": 12,
                "end": 31,
                "text": "four seven two nine",
                "mask": "[VERIFICATION_CODE]",
            }
        ],
        "kept": [],
        "policy": {
            "categories": ["card", "cn_id", "bank_account", "phone", "email", "verification_code"],
            "keep_unredacted": True,
            "keep_last": 0,
        },
    }


def test_nothing_to_mask_says_so(pii_indexer: PiiIndexer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = redact(pii_indexer, capsys, "acme", "--language", "zh", "订单号是2024031588889999")
    assert code == 0
    assert out.splitlines()[:3] == ["订单号是2024031588889999", "", "masked: nothing"]


def test_a_bad_language_or_an_empty_text_is_refused_naming_the_flag(
    pii_indexer: PiiIndexer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        redact(pii_indexer, capsys, "acme", "--language", "fr", TEXT)
    assert exit_.value.code == 2
    assert "callscribe redact: error: argument --language: invalid choice: 'fr'" in capsys.readouterr().err
    code, _, err = redact(pii_indexer, capsys, "acme", "--language", "zh", " ")
    assert code == 2
    assert (
        err.strip()
        == "callscribe redact: TEXT is empty: give the text to check (or '-' and the text on standard input)"
    )


def test_a_refused_token_is_reported_as_such(pii_indexer: PiiIndexer, capsys: pytest.CaptureFixture[str]) -> None:
    address = pii_indexer.indexer.server.address
    code = main(["redact", "--language", "zh", TEXT, "--address", address, "--token", "not-a-token"])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        "callscribe redact: the token was refused: check --token / CALLSCRIBE_TOKEN (or use --tenant T against the "
        "local stack)"
    )
