"""Deterministic, sticky assignment of units (users or API keys) to variants.

A unit's bucket is SHA-256 of the experiment's salt and the unit, mod 10,000: the same in
every process and on every machine (Python's `hash()` is salted per process). Buckets map
to variants through cumulative weight ranges. Whether a unit is in the experiment at all
comes from a second, independent bucket compared with the coverage, so raising the
coverage only adds units: those already in keep their bucket and so their variant.
"""

import hashlib
from collections.abc import Sequence

BUCKETS = 10_000


def bucket_for(salt: str, unit: str) -> int:
    digest = hashlib.sha256(f"{salt}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_coverage(salt: str, unit: str, coverage_percent: int) -> bool:
    # A different hash input from the variant bucket: coverage and variant are independent,
    # so the units a coverage change adds split over the variants by weight too.
    return bucket_for(f"{salt}\x00coverage", unit) < coverage_percent * BUCKETS // 100


def pick(weights: Sequence[tuple[str, int]], bucket: int) -> str:
    """The variant whose cumulative weight range (in percent, summing to 100) holds the bucket."""
    upper = 0
    for name, weight in weights:
        upper += weight * BUCKETS // 100
        if bucket < upper:
            return name
    raise ValueError(f"Weights {list(weights)} do not cover bucket {bucket}; they must sum to 100.")


def unit_digest(unit: str) -> str:
    """What the request log keeps of a unit: enough to count distinct units, not the user id."""
    return hashlib.sha256(unit.encode()).hexdigest()[:32]
