"""What IndexCall does to a call before it is written: normalized text (script, ITN), sentiment and call analytics.

An enricher is `Callable[[indexer_pb2.Call, str], None]` that mutates the call: given the tenant's output
script for Chinese (`callscribe.indexer.script.SCRIPTS`), it sets each utterance's `normalized_text` (in that
script) and `sentiment`, and `call.analytics`. `make_enricher` builds the service's from
`callscribe.indexer.text` (TextNormalizer) and `callscribe.indexer.analytics` (load_config, analyze);
where one of them is not installed, its part is skipped with a warning at start, never silently
(normalized text then is the recognized text).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from callscribe.indexer import script as scripts
from callscribe.indexer.settings import IndexerSettings
from callscribe.kit.names import SPOKEN_LANGUAGES
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

log = logging.getLogger(__name__)

Enricher = Callable[[pb.Call, str], None]  # (call, zh_script)
_LANGUAGE_CODES = {value: name for name, value in SPOKEN_LANGUAGES.items()}  # auto falls through to the call's


def _optional_module(name: str, attributes: tuple[str, ...]) -> Any | None:
    """The module if it is there with every one of `attributes`; None (logged) if it is not built."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise  # the module is there but one of its own imports is missing: a broken install, not an absence
    if any(not hasattr(module, attribute) for attribute in attributes):
        return None
    return module


def utterance_language(utterance: pb.Utterance, call: pb.Call) -> str:
    """The language code (zh, en or auto) to normalize an utterance's text in."""
    return _LANGUAGE_CODES.get(utterance.language) or _LANGUAGE_CODES.get(call.metadata.language) or "auto"


def copy_text(call: pb.Call, script: str = scripts.AS_RECOGNIZED) -> None:
    """The fallback normalization (no ITN): the recognized text, utterances declared Chinese in `script`."""
    for utterance in call.utterances:
        chinese = utterance_language(utterance, call) == "zh"
        utterance.normalized_text = scripts.to_script(utterance.text, script) if chinese else utterance.text


def make_enricher(settings: IndexerSettings) -> Enricher:
    """The service's enricher: ITN where `callscribe.indexer.text` is installed, analytics where
    `callscribe.indexer.analytics` is (with INDEXER_ANALYTICS_FILE or its defaults)."""
    text = _optional_module("callscribe.indexer.text", ("TextNormalizer",))
    analytics = _optional_module("callscribe.indexer.analytics", ("load_config", "analyze", "choose_agent"))
    normalize: Callable[[str, str, str], str] | None = None
    if text is None:
        log.warning("callscribe.indexer.text is not installed: normalized_text is the recognized text (no ITN)")
    else:
        normalize = text.TextNormalizer().normalize
    if analytics is None:
        log.warning("callscribe.indexer.analytics is not installed: calls are indexed without analytics")
        config = None
    else:
        config = analytics.load_config(settings.analytics_file)  # a bad file stops the start, with its reason

    def enrich(call: pb.Call, script: str) -> None:
        scripts.check_script(script)
        if normalize is None:
            copy_text(call, script)
        else:
            for utterance in call.utterances:
                utterance.normalized_text = normalize(utterance.text, utterance_language(utterance, call), script)
        if analytics is not None:
            analytics.choose_agent(call, config)  # needs the normalized text; before the analytics use the roles
            call.analytics.CopyFrom(analytics.analyze(call, config))

    scripts.load()
    warm_up(enrich)
    return enrich


def warm_up(enrich: Enricher) -> None:
    """Run the enricher once on a small Chinese and English call, so that what it loads on first use (ITN
    graphs, script tables) is loaded before the service says SERVING, not during the first IndexCall."""
    started = time.perf_counter()
    call = pb.Call(
        recording_id="warm-up", metadata=c.RecordingMetadata(channel_layout=c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT)
    )
    call.utterances.add(
        channel=0, role=c.SPEAKER_ROLE_AGENT, end_ms=2_000, text="您好请问有什么可以帮您", language=c.LANGUAGE_ZH
    )
    call.utterances.add(
        channel=1,
        role=c.SPEAKER_ROLE_CUSTOMER,
        start_ms=2_500,
        end_ms=5_000,
        text="I paid twenty dollars twice",
        language=c.LANGUAGE_EN,
    )
    enrich(call, scripts.TRADITIONAL)
    log.info("enricher ready in %.2f s", time.perf_counter() - started)
