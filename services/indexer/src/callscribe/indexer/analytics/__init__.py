"""Call analytics, QA score and sentiment, computed on every call before it is indexed.

    config = load_config(path or None)      # INDEXER_ANALYTICS_FILE, or the built-in defaults
    call.analytics.CopyFrom(analyze(call, config))   # also sets each utterance's sentiment

See services/indexer/README.md, "Call analytics, QA and sentiment".
"""

from callscribe.indexer.analytics.config import AnalyticsConfig, load_config
from callscribe.indexer.analytics.core import analyze

__all__ = ["AnalyticsConfig", "analyze", "load_config"]
