"""Data layer: raw files, networkx graphs and generators -> validated SocialGraph."""
from socialmeta.data.cache import atomic_write, load_or_build, torch_save_atomic
from socialmeta.data.csv_graph import read_csv_graph
from socialmeta.data.datasets import DATASETS, DatasetSpec, load_dataset
from socialmeta.data.ego_facebook import read_ego_facebook
from socialmeta.data.errors import GraphValidationError
from socialmeta.data.graph import FRIEND, INTERACTS, MEMBER_OF, SocialGraph, validate_graph
from socialmeta.data.lastfm import read_lastfm
from socialmeta.data.networkx_graphs import davis, from_networkx, karate
from socialmeta.data.stats import graph_info
from socialmeta.data.synthetic import generate_synthetic
from socialmeta.data.transforms import StructuralFeatures, structural_features

__all__ = [
    "DATASETS", "DatasetSpec", "FRIEND", "GraphValidationError", "INTERACTS", "MEMBER_OF",
    "SocialGraph", "StructuralFeatures", "atomic_write", "davis", "from_networkx",
    "generate_synthetic", "graph_info", "karate", "load_dataset", "load_or_build",
    "read_csv_graph", "read_ego_facebook", "read_lastfm", "structural_features",
    "torch_save_atomic", "validate_graph",
]
