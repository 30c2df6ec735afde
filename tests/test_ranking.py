"""The shared ranking rule: best first, ties share a rank, missing scores stay unranked."""
import math

import pytest

from harness.stats import ranking
from harness.stats.ranking import competition_ranks


def test_higher_is_better_ties_share_and_skip():
    assert competition_ranks([0.7, 0.9, 0.8, 0.8]) == [4, 1, 2, 2]


def test_lower_is_better():
    assert competition_ranks([30.0, 10.0, 20.0, 10.0], direction="lower") == [4, 1, 3, 1]


def test_target_closer_is_better_both_sides():
    # 0.95 and 1.05 are equally far from 1.0 once rounded; 1.0 itself is best.
    assert competition_ranks([0.95, 1.05, 1.0, 1.3], direction="target", target=1.0, decimals=2) == [2, 2, 1, 4]


def test_decimals_makes_printed_ties_share_a_rank():
    values = [0.12341, 0.12344, 0.2]
    assert competition_ranks(values) == [3, 2, 1]
    assert competition_ranks(values, decimals=3) == [2, 2, 1]


def test_none_and_nan_are_unranked_and_do_not_take_a_rank():
    assert competition_ranks([None, 0.5, float("nan"), 0.9]) == [None, 2, None, 1]
    assert competition_ranks([None, math.nan]) == [None, None]
    assert competition_ranks([]) == []


def test_bad_direction_and_missing_target_are_refused():
    with pytest.raises(ValueError, match="higher, lower, target"):
        competition_ranks([1.0], direction="up")
    with pytest.raises(ValueError, match="target"):
        competition_ranks([1.0], direction="target")


def test_testset_fingerprint_depends_on_references_order_and_n():
    from harness.stats.ranking import testset_fingerprint

    fp = testset_fingerprint(["a b", "c d"])
    assert len(fp) == 64 and fp == testset_fingerprint(("a b", "c d"))
    assert fp != testset_fingerprint(["c d", "a b"])  # other order pairs outputs with other references
    assert fp != testset_fingerprint(["a b"]) and fp != testset_fingerprint(["a b", "c d", "a b"])
    assert fp != testset_fingerprint(["a b", "c e"])
    # several references per example: all of them count
    assert testset_fingerprint([["a b", "x"], ["c d", "y"]]) != testset_fingerprint([["a b", "x"], ["c d", "z"]])


def test_rows_fingerprint_covers_every_reference_of_a_multi_reference_row():
    one = [{"reference": "a b", "references": ["a b", "x y"]}, {"reference": "c", "references": ["c", "z"]}]
    other = [{"reference": "a b", "references": ["a b", "x q"]}, {"reference": "c", "references": ["c", "z"]}]
    assert ranking.testset_of_rows(one) != ranking.testset_of_rows(other)  # same first references, another second one
    assert ranking.testset_of_rows(one) == ranking.testset_fingerprint([["a b", "x y"], ["c", "z"]])
    single = [{"reference": "a b"}, {"reference": "c"}]  # single-reference rows: as before
    assert ranking.testset_of_rows(single) == ranking.testset_fingerprint(["a b", "c"])
