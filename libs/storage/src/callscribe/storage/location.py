"""Where a stored object is: its tier, bucket, key and version, and the SHA-256 it must hash to.

The tier says which store (endpoint + bucket) holds it: the hot and cold tiers may be different S3
servers (issue 18), so a reference names its tier and `Tiers` finds the store for it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Tier(enum.Enum):
    HOT = "HOT"
    COLD = "COLD"


@dataclass(frozen=True)
class ObjectRef:
    """One stored object version and the SHA-256 its plaintext must hash to."""

    bucket: str
    key: str
    version_id: str
    sha256: str
    tier: Tier = Tier.HOT

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key} version {self.version_id}"
