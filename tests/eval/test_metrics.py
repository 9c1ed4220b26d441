"""Ranking metrics on hand-computed rankings."""
import math

import pytest
import torch

from socialmeta.eval import mean_ci, ranking_metrics


def test_hand_computed_ranking():
    # 6 candidates, ranked 0 > 1 > 2 > 3 > 4 > 5 by score; positives at ranks 2 and 4
    scores = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    positives = torch.tensor([[False, True, False, True, False, False]])
    candidates = torch.ones(1, 6, dtype=torch.bool)
    m = ranking_metrics(scores, positives, candidates, ks=(1, 2, 4))
    assert m["recall@1"].item() == 0 and m["recall@2"].item() == 0.5
    assert m["recall@4"].item() == 1.0 and m["hr@2"].item() == 1.0
    assert m["mrr"].item() == 0.5
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg@4"].item() == pytest.approx(dcg / idcg)
    # negatives: 4; positive at rank 2 beats 3 of them, at rank 4 beats 2 -> 5/8
    assert m["auc"].item() == pytest.approx(5 / 8)


def test_non_candidates_and_empty_rows():
    scores = torch.tensor([[9.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    positives = torch.tensor([[False, True, False], [False, False, False]])
    candidates = torch.tensor([[False, True, True], [True, True, True]])
    m = ranking_metrics(scores, positives, candidates, ks=(1,))
    assert m["recall@1"][0].item() == 0.0 and m["mrr"][0].item() == 0.5
    assert m["auc"][0].item() == 0.0
    assert torch.isnan(m["recall@1"][1])
    with pytest.raises(ValueError, match="every positive must be a candidate"):
        ranking_metrics(scores, positives, torch.zeros(2, 3, dtype=torch.bool))


def test_perfect_and_reversed_ranking():
    scores = torch.arange(10.0).flip(0).view(1, -1)
    positives = torch.zeros(1, 10, dtype=torch.bool)
    positives[0, :3] = True
    cands = torch.ones(1, 10, dtype=torch.bool)
    best = ranking_metrics(scores, positives, cands, ks=(3,))
    worst = ranking_metrics(-scores, positives, cands, ks=(3,))
    assert best["ndcg@3"].item() == pytest.approx(1.0) and best["auc"].item() == 1.0
    assert worst["recall@3"].item() == 0.0 and worst["auc"].item() == 0.0


def test_mean_ci():
    mean, half, n = mean_ci(torch.tensor([1.0, 2.0, 3.0, float("nan")]))
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(1.96 * 1.0 / math.sqrt(3))


def test_average_precision_and_r_precision_by_hand():
    # positives at ranks 2 and 4 of 6: AP = (1/2 + 2/4) / 2; R-precision: 1 of the top 2
    scores = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    positives = torch.tensor([[False, True, False, True, False, False],
                              [False, False, False, False, False, True]])
    candidates = torch.ones(2, 6, dtype=torch.bool)
    m = ranking_metrics(scores, positives, candidates, ks=(1,))
    assert m["map"][0].item() == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["rprec"][0].item() == pytest.approx(0.5)
    assert m["map"][1].item() == 1.0 and m["rprec"][1].item() == 1.0   # ranked first
    empty = ranking_metrics(scores[:1], torch.zeros(1, 6, dtype=torch.bool), candidates[:1])
    assert torch.isnan(empty["map"]).all() and torch.isnan(empty["rprec"]).all()


def test_macro_f1_of_the_top_labels_by_hand():
    """Three tasks over labels a, b, c. Task 0: truth {a}, top-1 predicted a (TP a).
    Task 1: truth {b}, predicted a (FP a, FN b). Task 2: truth {b, c}, its top |y| = 2
    labels {b, a} (TP b, FP a, FN c). F1: a = 2/(2+2+0) = 0.5, b = 2/(2+0+1) = 2/3,
    c = 0."""
    from socialmeta.eval.metrics import label_f1_counts, macro_f1

    scores = torch.tensor([[3.0, 1.0, 0.0], [3.0, 2.0, 1.0], [2.0, 3.0, 1.0]])
    truth = torch.tensor([[True, False, False], [False, True, False], [False, True, True]])
    valid = torch.ones(3, 3, dtype=torch.bool)
    counts = label_f1_counts(scores, truth, valid)
    assert counts.tolist() == [[1, 1, 0], [2, 0, 0], [0, 1, 1]]
    assert macro_f1(counts) == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    # an invalid label is never predicted: task 1 without label a predicts b
    valid[1, 0] = False
    counts = label_f1_counts(scores, truth, valid)
    assert counts[:, 1].tolist() == [2, 0, 0] and counts[:, 0].tolist() == [1, 1, 0]
    assert math.isnan(macro_f1(torch.zeros(3, 4, dtype=torch.long)))
    with pytest.raises(ValueError, match="true label must be a valid label"):
        label_f1_counts(scores, truth, torch.zeros(3, 3, dtype=torch.bool))
