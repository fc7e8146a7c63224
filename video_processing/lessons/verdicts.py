"""The lessons' checks as verdicts: passed, failed, or not checked and why, with the exact test that decides.

    print(above_chance(correct=11, total=12, num_classes=6))
    print(better_than(wins=9, losses=1, names=("fine-tuned", "from scratch")))

Both are exact one-sided binomial tests at level `alpha`: no normal approximation, no rounding in either direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """`passed` True or False, or None when the data cannot decide (then `text` says why)."""

    passed: bool | None
    text: str

    def __str__(self) -> str:
        return self.text


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p), exactly."""
    return sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(successes, trials + 1))


def chance_accuracy_bound(num_items: int, num_classes: int, *, alpha: float = 0.01) -> float:
    """The lowest accuracy that uniform random guessing over `num_classes` reaches on `num_items` with
    probability below `alpha` (1.0 if even all right is not that rare): reaching it is above chance."""
    for k in range(num_items + 1):
        if binomial_tail(k, num_items, 1 / num_classes) < alpha:
            return k / num_items
    return 1.0


def above_chance(correct: int, total: int, num_classes: int, *, alpha: float = 0.01, items: str = "videos") -> Verdict:
    """Whether `correct` of `total` right beats uniform guessing over `num_classes`: passed when guessing gets
    `correct` or more right with probability under `alpha`; not checked when even `total` of `total` would not."""
    p = 1 / num_classes
    if binomial_tail(total, total, p) >= alpha:
        return Verdict(
            None,
            f"not checked: {total} {items} are too few for the chance bound (even all {total} right happens by "
            f"chance with p = {p**total:.2g} >= {alpha:g})",
        )
    needed = round(chance_accuracy_bound(total, num_classes, alpha=alpha) * total)
    tail = binomial_tail(correct, total, p)
    result = f"{correct} of {total} {items} right ({correct / total:.1%}); guessing among {num_classes} classes"
    rule = f"{needed} or more right (p < {alpha:g}, exact binomial test)"
    if tail < alpha:
        return Verdict(True, f"above chance: {result} gets this many with p = {tail:.2g}; the bound is {rule}")
    return Verdict(False, f"not above chance: {result} gets this many with p = {tail:.2g}; above chance is {rule}")


def better_than(
    wins: int, losses: int, *, names: tuple[str, str], alpha: float = 0.01, items: str = "videos"
) -> Verdict:
    """An exact sign test of two models on the same items: `wins` items only the first gets right, `losses` items
    only the second. Passed when so many wins of wins + losses has probability under `alpha` if neither were
    better (each such item a fair coin); not checked when even wins + losses wins would not be that rare."""
    first, second = names
    split = wins + losses
    counts = f"{wins} {items} only {first} gets right, {losses} only {second}"
    if split == 0 or 0.5**split >= alpha:
        return Verdict(
            None,
            f"not checked: {counts}; {split} {items} where they differ are too few for a sign test "
            f"(even all {split} going one way happens by chance with p = {0.5**split:.2g} >= {alpha:g})",
        )
    tail = binomial_tail(wins, split, 0.5)
    if tail < alpha:
        return Verdict(True, f"{first} is better: {counts} (sign test p = {tail:.2g} < {alpha:g})")
    return Verdict(False, f"{first} is not shown better: {counts} (sign test p = {tail:.2g} >= {alpha:g})")
