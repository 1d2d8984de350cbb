"""Call analytics, QA score and sentiment, computed on every call before it is indexed.

    config = load_config(path or None)      # INDEXER_ANALYTICS_FILE, or the built-in defaults
    choose_agent(call, config)              # a diarized mono call: the agent is the voice that greets
    call.analytics.CopyFrom(analyze(call, config))   # also sets each utterance's sentiment

See services/indexer/README.md, "Call analytics, QA and sentiment".
"""

from callscribe.indexer.analytics.config import AnalyticsConfig, load_config
from callscribe.indexer.analytics.core import analyze
from callscribe.indexer.analytics.roles import choose_agent

__all__ = ["AnalyticsConfig", "analyze", "choose_agent", "load_config"]
