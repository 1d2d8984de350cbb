"""PII in transcripts: find it (`find_pii`), mask it as a tenant's policy says (`redact`), in a whole call
before it is indexed (`redact_call`). See services/indexer/README.md "PII redaction"."""

from callscribe.indexer.pii.detect import LANGUAGES, Span, check_language, find_pii
from callscribe.indexer.pii.redact import Masked, Redacted, mask_for, redact

__all__ = ["LANGUAGES", "Masked", "Redacted", "Span", "check_language", "find_pii", "mask_for", "redact"]
