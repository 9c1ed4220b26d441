"""socialmeta: meta-learning over ego-networks for cold-start users in social graphs."""
__version__ = "0.1.0"
