"""Assignment is a pure function of salt and unit: these need no database."""

import subprocess
import sys
from collections import Counter

import pytest
from scipy import stats

from experiments.assignment import BUCKETS, bucket_for, in_coverage, pick

UNITS = [f"user:{i}" for i in range(10_000)]
SALT = "3f9a61c2d8e4b705"


def _assign(weights, salt=SALT, coverage=100):
    return {unit: pick(weights, bucket_for(salt, unit)) for unit in UNITS if in_coverage(salt, unit, coverage)}


def test_bucket_is_the_same_in_another_python_process_with_another_hash_seed():
    script = "from experiments.assignment import bucket_for; print([bucket_for('s', f'user:{i}') for i in range(50)])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        ).stdout
        for seed in ("1", "2")
    }

    assert outputs == {str([bucket_for("s", f"user:{i}") for i in range(50)]) + "\n"}


def test_same_unit_always_gets_the_same_bucket_and_salts_reshuffle():
    assert [bucket_for(SALT, u) for u in UNITS[:100]] == [bucket_for(SALT, u) for u in UNITS[:100]]
    moved = sum(bucket_for(SALT, u) != bucket_for("another-salt", u) for u in UNITS[:100])
    assert moved > 90


@pytest.mark.parametrize(
    "weights",
    [[("control", 50), ("treatment", 50)], [("a", 70), ("b", 20), ("c", 10)], [("control", 95), ("canary", 5)]],
    ids=["50-50", "70-20-10", "95-5"],
)
def test_ten_thousand_units_follow_the_weights_within_statistical_tolerance(weights):
    counts = Counter(_assign(weights).values())

    observed = [counts[name] for name, _ in weights]
    expected = [len(UNITS) * weight / 100 for _, weight in weights]
    assert sum(observed) == len(UNITS)
    # A fair split of 10,000 units fails this less than once in 1,000 salts.
    assert stats.chisquare(observed, expected).pvalue > 0.001
    for o, e in zip(observed, expected, strict=True):
        assert abs(o - e) < 4 * (e * (1 - e / len(UNITS))) ** 0.5


def test_raising_coverage_adds_units_and_moves_none_of_those_already_in():
    weights = [("control", 50), ("treatment", 50)]
    at_20, at_50, at_100 = _assign(weights, coverage=20), _assign(weights, coverage=50), _assign(weights, coverage=100)

    assert 1_800 < len(at_20) < 2_200 and 4_800 < len(at_50) < 5_200 and len(at_100) == len(UNITS)
    assert all(at_50[unit] == variant for unit, variant in at_20.items())
    assert all(at_100[unit] == variant for unit, variant in at_50.items())
    # The units a raise adds split by the weights too.
    added = Counter(at_50[u] for u in at_50.keys() - at_20.keys())
    assert abs(added["control"] - added["treatment"]) < 4 * (len(at_50) - len(at_20)) ** 0.5


def test_a_weight_change_moves_only_the_units_in_the_range_that_changed_hands():
    before = _assign([("control", 50), ("treatment", 50)])
    after = _assign([("control", 70), ("treatment", 30)])

    moved = [u for u in UNITS if before[u] != after[u]]
    assert all(before[u] == "treatment" and after[u] == "control" for u in moved)
    assert all(5_000 <= bucket_for(SALT, u) < 7_000 for u in moved)
    assert abs(len(moved) - 2_000) < 4 * (10_000 * 0.2 * 0.8) ** 0.5


def test_cumulative_ranges_cover_every_bucket_exactly():
    weights = [("a", 33), ("b", 33), ("c", 34)]

    counts = Counter(pick(weights, bucket) for bucket in range(BUCKETS))

    assert counts == {"a": 3_300, "b": 3_300, "c": 3_400}


def test_weights_that_do_not_sum_to_100_are_refused():
    with pytest.raises(ValueError, match="sum to 100"):
        pick([("a", 40), ("b", 40)], 9_999)
