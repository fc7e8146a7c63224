"""The lessons' checks: exact binomial tests that pass, fail, or say why they cannot decide."""

import pytest

from video_processing.lessons.verdicts import above_chance, better_than, binomial_tail, chance_accuracy_bound


def test_chance_bound_is_the_exact_binomial_tail():
    # 20 videos of 2 classes: P(>= 15 right by coin flips) = 0.0207, P(>= 16) = 0.0059
    assert binomial_tail(15, 20, 0.5) == pytest.approx(0.0207, abs=1e-4)
    assert chance_accuracy_bound(20, 2, alpha=0.01) == 16 / 20
    assert chance_accuracy_bound(20, 2, alpha=0.05) == 15 / 20
    assert chance_accuracy_bound(1000, 10) < 0.13  # many items: just above 1/10
    assert chance_accuracy_bound(3, 2) == 1.0  # too few items to tell


def test_reaching_the_bound_passes_not_only_exceeding_it():
    # 12 videos of 6 classes: P(>= 6 right) = 0.0079 < 0.01, P(>= 5) = 0.036: 6 right (50.0%, the bound) passes
    assert chance_accuracy_bound(12, 6) == 0.5
    verdict = above_chance(6, 12, 6)
    assert verdict.passed is True and str(verdict).startswith("above chance: 6 of 12 videos right (50.0%)")
    assert "6 or more right (p < 0.01, exact binomial test)" in verdict.text


def test_below_the_bound_fails_with_the_numbers():
    verdict = above_chance(2, 12, 6)
    assert verdict.passed is False and verdict.text.startswith("not above chance: 2 of 12 videos right (16.7%)")
    assert "above chance is 6 or more right" in verdict.text


def test_too_few_items_are_not_checked_and_it_says_why():
    verdict = above_chance(2, 2, 6)  # all right, yet 1/36 of random guessers do as well
    assert verdict.passed is None
    assert verdict.text.startswith("not checked: 2 videos are too few for the chance bound")


def test_sign_test_passes_fails_and_cannot_decide():
    names = ("fine-tuned", "from scratch")
    passed = better_than(9, 0, names=names)  # P(9 of 9 heads) = 0.002
    assert passed.passed is True and "9 videos only fine-tuned gets right, 0 only from scratch" in passed.text
    failed = better_than(6, 4, names=names)
    assert failed.passed is False and "not shown better" in failed.text
    undecided = better_than(5, 0, names=names)  # 5 videos where they differ: even 5 of 5 has p = 0.031
    assert undecided.passed is None and undecided.text.startswith("not checked:")
    assert better_than(0, 0, names=names).passed is None
