"""Pair features: parameter-free scores of every (new user, candidate) pair over the
whole observed graph, from a task's support and context only (DESIGN §11).

They are functions of the observed graph and the task, not of model parameters, so
the task sampler computes them with the rest of a batch (``TaskConfig.pair_features``)
and the hybrid scorer (:class:`~socialmeta.models.HybridLinkModel`) reads them.
"""
from socialmeta.features.friend import (
    DEFAULT_ALPHAS,
    FRIEND_FEATURES,
    FriendPairFeatures,
    allowed_friend_features,
    friend_channels,
)
from socialmeta.features.interest import label_propagation, neighbour_labels
from socialmeta.features.item import (
    ITEM_FEATURES,
    RECENT_HALF_LIVES,
    ItemPairFeatures,
    allowed_item_features,
    item_channels,
)
from socialmeta.features.sparse import (
    CSR,
    Sparse,
    candidate_normalized,
    cosine_rows,
    support_matrix,
)

__all__ = ["CSR", "DEFAULT_ALPHAS", "FRIEND_FEATURES", "FriendPairFeatures",
           "ITEM_FEATURES", "ItemPairFeatures", "allowed_friend_features",
           "allowed_item_features", "friend_channels", "item_channels",
           "RECENT_HALF_LIVES", "Sparse",
           "candidate_normalized", "cosine_rows", "label_propagation", "neighbour_labels",
           "support_matrix"]
