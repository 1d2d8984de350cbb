"""Text normalization for the indexer: inverse text normalization (wetext + callscribe rules) and punctuation."""

from callscribe.indexer.text.normalizer import TextNormalizer, resolve_language

__all__ = ["TextNormalizer", "resolve_language"]
