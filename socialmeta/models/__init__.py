"""Encoders and heads; each encoder has a dense and a sparse forward over one set of
parameters."""
from socialmeta.models.encoders import ENCODERS, Encoder

__all__ = ["ENCODERS", "Encoder"]
