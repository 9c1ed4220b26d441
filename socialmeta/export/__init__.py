"""Embedding export: float32 matrices, id maps and a manifest."""
from socialmeta.export.embeddings import export_embeddings, graph_digest, user_embeddings

__all__ = ["export_embeddings", "graph_digest", "user_embeddings"]
