"""Hydra entry points: the only place that turns a DictConfig into objects."""
