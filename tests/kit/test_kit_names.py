"""The enum names the services store and the CLI takes come from the protos, once."""

from __future__ import annotations

from callscribe.kit.names import LANGUAGE_NAMES, LANGUAGES, LAYOUT_NAMES, LAYOUTS, ROLES, SPOKEN_LANGUAGES
from callscribe.v1 import common_pb2 as c


def test_names_cover_every_value_but_unspecified_and_round_trip() -> None:
    assert LANGUAGES == {"auto": c.LANGUAGE_AUTO, "zh": c.LANGUAGE_ZH, "en": c.LANGUAGE_EN}
    assert SPOKEN_LANGUAGES == {"zh": c.LANGUAGE_ZH, "en": c.LANGUAGE_EN}
    assert LAYOUTS == {
        "MONO": c.CHANNEL_LAYOUT_MONO,
        "STEREO_AGENT_LEFT": c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT,
        "STEREO_AGENT_RIGHT": c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT,
    }
    assert ROLES == {"agent": c.SPEAKER_ROLE_AGENT, "customer": c.SPEAKER_ROLE_CUSTOMER, "mixed": c.SPEAKER_ROLE_MIXED}
    for names, values in ((LANGUAGE_NAMES, LANGUAGES), (LAYOUT_NAMES, LAYOUTS)):
        assert {values[name]: name for name in values} == names
    assert len(LANGUAGES) == len(c.Language.items()) - 1  # every value but UNSPECIFIED
