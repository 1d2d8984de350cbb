"""A tenant's PII redaction policy: what the indexer masks before a transcript is indexed (tenants file key
``redaction``).

    "redaction": {"categories": ["card", "cn_id", "bank_account", "phone", "email", "verification_code"],
                  "keep_unredacted": false, "keep_last": 0}

Every key is optional. Without the key (or with ``{}``) every category is masked, no unredacted transcript is
kept and no digit of a card or account is shown: what a DPO expects of a system that records calls. An empty
``categories`` list turns masking off for the tenant. ``keep_unredacted: true`` asks for the unredacted
transcript to be kept, encrypted with the recording's data key, for users with a privileged role.
``keep_last`` (0 to 4) shows that many last digits of cards and bank accounts in their mask (PCI DSS allows
the last four).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# What the indexer can find (services/indexer/README.md "PII redaction"), in the order masks are listed.
PII_CATEGORIES = ("card", "cn_id", "bank_account", "phone", "email", "verification_code")
MAX_KEEP_LAST = 4
_KEYS = ("categories", "keep_unredacted", "keep_last")


@dataclass(frozen=True)
class RedactionPolicy:
    categories: tuple[str, ...] = PII_CATEGORIES  # masked ones, in PII_CATEGORIES' order
    keep_unredacted: bool = False  # keep an encrypted unredacted transcript for privileged users
    keep_last: int = 0  # last digits of cards and bank accounts left readable in their mask


DEFAULT_REDACTION = RedactionPolicy()


def parse_redaction(tenant: str, value: object) -> RedactionPolicy:
    """The policy of a tenants file's ``redaction`` value (None: the default); ValueError naming the tenant
    and the field when it is not one."""
    if value is None:
        return DEFAULT_REDACTION
    if not isinstance(value, Mapping):
        raise ValueError(f'tenant {tenant}: redaction must be an object such as {{"categories": ["card"]}}')
    unknown = sorted(str(key) for key in value if key not in _KEYS)
    if unknown:
        raise ValueError(
            f"tenant {tenant}: redaction has unknown key(s) {', '.join(unknown)} (known: {', '.join(_KEYS)})"
        )
    return RedactionPolicy(
        categories=_categories(tenant, value.get("categories", list(PII_CATEGORIES))),
        keep_unredacted=_flag(tenant, "keep_unredacted", value.get("keep_unredacted", False)),
        keep_last=_keep_last(tenant, value.get("keep_last", 0)),
    )


def _categories(tenant: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"tenant {tenant}: redaction.categories must be a list of names, got {value!r}")
    unknown = [item for item in value if item not in PII_CATEGORIES]
    if unknown:
        raise ValueError(
            f"tenant {tenant}: redaction.categories has unknown {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(PII_CATEGORIES)})"
        )
    return tuple(name for name in PII_CATEGORIES if name in value)


def _flag(tenant: str, field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"tenant {tenant}: redaction.{field} must be true or false, got {value!r}")
    return value


def _keep_last(tenant: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KEEP_LAST:
        raise ValueError(
            f"tenant {tenant}: redaction.keep_last must be a whole number from 0 to {MAX_KEEP_LAST}, got {value!r}"
        )
    return value
