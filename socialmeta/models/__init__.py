"""Encoders and heads; each encoder has a dense and a sparse forward over one set of
parameters."""
from socialmeta.models.encoders import ENCODERS, Encoder
from socialmeta.models.hybrid import HybridInterestModel, HybridItemModel, HybridLinkModel
from socialmeta.models.interest import InterestModel
from socialmeta.models.item import ItemModel
from socialmeta.models.link import LinkModel

__all__ = ["ENCODERS", "Encoder", "HybridInterestModel", "HybridItemModel", "HybridLinkModel",
           "InterestModel", "ItemModel", "LinkModel"]
