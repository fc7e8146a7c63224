from collections import Counter

import pytest

from video_processing.data.samplers import BalancedDistributedSampler

# 14 videos: class 0 has 1, class 1 has 10, class 2 has 3.
LABELS = [1, 1, 0, 1, 2, 1, 1, 2, 1, 1, 1, 2, 1, 1]


def test_every_class_is_drawn_equally_often_and_a_large_class_without_repeats():
    draws = list(BalancedDistributedSampler(LABELS, num_replicas=1, rank=0, seed=0))
    assert len(draws) == len(LABELS)  # the epoch keeps its length
    per_class = Counter(LABELS[i] for i in draws)
    assert sorted(per_class.values()) == [4, 5, 5]  # 14 draws over 3 classes (plain shuffling: 1, 10, 3)
    large = [i for i in draws if LABELS[i] == 1]
    assert len(set(large)) == len(large)  # 10 videos for 4-5 draws: none twice
    small = Counter(i for i in draws if LABELS[i] == 2)
    assert max(small.values()) - min(small.values()) <= 1  # a small class's videos recur evenly


def test_ranks_split_one_draw_sequence():
    alone = list(BalancedDistributedSampler(LABELS, num_replicas=1, rank=0, seed=3))
    ranks = [BalancedDistributedSampler(LABELS, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    shares = [list(sampler) for sampler in ranks]
    assert len(shares[0]) == len(shares[1]) == len(ranks[0]) == 7
    assert shares[0] == alone[0::2] and shares[1] == alone[1::2]  # disjoint positions of the same draws


def test_each_epoch_draws_anew_and_repeats_with_its_seed():
    sampler = BalancedDistributedSampler(LABELS, num_replicas=1, rank=0, seed=0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    sampler.set_epoch(0)
    assert list(sampler) == epoch0


def test_seed_defaults_to_seed_everything(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "11")
    assert BalancedDistributedSampler(LABELS).seed == 11
    assert list(BalancedDistributedSampler(LABELS)) == list(BalancedDistributedSampler(LABELS, 1, 0, seed=11))


def test_a_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match="rank"):
        BalancedDistributedSampler(LABELS, num_replicas=2, rank=2)
