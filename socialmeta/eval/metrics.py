"""Full-ranking metrics over candidate lists, and intervals over users and seeds."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def rank_candidates(scores: Tensor, candidates: Tensor, seed: int = 0) -> Tensor:
    r"""Candidate indices of each row sorted by descending score, ``[T, C]``.

    Non-candidates go last; ties are broken by a seeded random permutation (not by
    index, which could favour low ids).
    """
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(scores.size(1), generator=gen).to(scores.device)
    masked = scores.masked_fill(~candidates, float("-inf"))[:, perm]
    return perm[torch.argsort(masked, dim=1, descending=True, stable=True)]


def ranking_metrics(scores: Tensor, positives: Tensor, candidates: Tensor,
                    ks: Sequence[int] = (10, 20), seed: int = 0) -> dict[str, Tensor]:
    r"""Per-task Recall@k, NDCG@k, HR@k, MRR, AUC, average precision (``map``: its
    mean over tasks is the mAP) and R-precision (``rprec``: the share of positives
    among the top :math:`|P|` candidates, i.e. the F1 of predicting the top
    :math:`|P|`; for a single positive, whether it ranks first) of a full ranking.

    Args:
        scores: ``[T, C]`` scores of every candidate.
        positives: ``[T, C]`` bool, the query links (must be candidates).
        candidates: ``[T, C]`` bool, what is ranked.
        ks: Cut-offs. (default: ``(10, 20)``)
        seed: Seed of the tie-breaking permutation.

    Returns:
        dict of ``[T]`` tensors; tasks without positives get NaN.

    Example:
        >>> m = ranking_metrics(scores, query_mask, candidate_mask)
        >>> m["recall@20"].nanmean()
    """
    if (positives & ~candidates).any():
        raise ValueError("every positive must be a candidate")
    order = rank_candidates(scores, candidates, seed)
    hit = positives.gather(1, order).float()                    # [T, C] in rank order
    num_pos = positives.sum(1).float()
    num_cand = candidates.sum(1).float()
    discount = 1.0 / torch.log2(torch.arange(scores.size(1), device=scores.device) + 2.0)
    out: dict[str, Tensor] = {}
    nan = torch.full_like(num_pos, float("nan"))
    for k in ks:
        hits = hit[:, :k].sum(1)
        ideal = torch.cumsum(discount, 0)[(num_pos.clamp(min=1, max=k) - 1).long()]
        out[f"recall@{k}"] = torch.where(num_pos > 0, hits / num_pos.clamp(min=1), nan)
        out[f"ndcg@{k}"] = torch.where(num_pos > 0, (hit[:, :k] * discount[:k]).sum(1) / ideal,
                                       nan)
        out[f"hr@{k}"] = torch.where(num_pos > 0, (hits > 0).float(), nan)
    rank = torch.arange(1, scores.size(1) + 1, device=scores.device).float()
    precision = torch.cumsum(hit, 1) / rank                      # precision at each rank
    out["map"] = torch.where(num_pos > 0, (precision * hit).sum(1) / num_pos.clamp(min=1),
                             nan)
    within = rank.unsqueeze(0) <= num_pos.unsqueeze(1)            # the top |P| ranks
    out["rprec"] = torch.where(num_pos > 0, (hit * within).sum(1) / num_pos.clamp(min=1),
                               nan)
    first = torch.where(hit.any(1), hit.argmax(1).float() + 1, torch.inf)
    out["mrr"] = torch.where(num_pos > 0, 1.0 / first, nan)
    # AUC: for every positive, the share of negative candidates ranked below it
    position = torch.arange(scores.size(1), device=scores.device).float()
    negatives_above = position.unsqueeze(0) - torch.cumsum(hit, 1) + hit  # at each rank
    num_neg = (num_cand - num_pos).clamp(min=1)
    below = ((num_neg.unsqueeze(1) - negatives_above) * hit).sum(1)
    out["auc"] = torch.where((num_pos > 0) & (num_cand > num_pos),
                             below / (num_pos.clamp(min=1) * num_neg), nan)
    return out


def label_f1_counts(scores: Tensor, truth: Tensor, valid: Tensor, seed: int = 0) -> Tensor:
    r"""Per-label true positives, false positives and false negatives, ``[3, L]``
    summed over tasks, of predicting each task's top :math:`|y|` valid labels, where
    :math:`|y|` is its number of true labels (the top one for single-label data).
    Tasks without a true label predict nothing. :func:`macro_f1` turns them into the
    macro-averaged F1, a dataset-level figure (not a per-task mean).

    Args:
        scores: ``[T, L]`` label scores.
        truth: ``[T, L]`` bool, the true labels (must be valid).
        valid: ``[T, L]`` bool, the labels that can be predicted.
    """
    if (truth & ~valid).any():
        raise ValueError("every true label must be a valid label")
    order = rank_candidates(scores, valid, seed)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.size(1), device=order.device).expand_as(order))
    predicted = (rank < truth.sum(1, keepdim=True)) & valid
    return torch.stack([(predicted & truth).sum(0), (predicted & ~truth).sum(0),
                        (~predicted & truth).sum(0)])


def macro_f1(counts: Tensor) -> float:
    r"""Macro-averaged F1 over the labels that occur (a true or a predicted one) of
    :func:`label_f1_counts` ``[3, L]`` (summed over batches or ranks);
    ``nan`` if none does."""
    tp, fp, fn = counts.double()
    seen = (tp + fp + fn) > 0
    if not seen.any():
        return float("nan")
    return float((2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])).mean())


def mean_ci(values: Tensor) -> tuple[float, float, int]:
    r"""Mean, 95% normal-approximation half-width and count of the non-NaN values."""
    v = values[~torch.isnan(values)].double()
    n = int(v.numel())
    if n == 0:
        return float("nan"), float("nan"), 0
    half = 1.96 * float(v.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("nan")
    return float(v.mean()), half, n
