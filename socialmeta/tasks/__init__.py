"""Tasks: SocialGraph + user split -> ego-net tasks, support/query, dense batches."""
from socialmeta.tasks.batch import TaskBatch
from socialmeta.tasks.egonet import CSR, EgoNets, induced_edges, sample_egonets
from socialmeta.tasks.loader import task_batches
from socialmeta.tasks.new_item import (
    ItemSplit,
    adoption_graph,
    is_adoption_graph,
    item_nodes,
    split_items,
)
from socialmeta.tasks.sampler import (
    CONTEXTS,
    KINDS,
    TaskConfig,
    TaskSampler,
    task_feature_channels,
)
from socialmeta.tasks.split import (
    TemporalSplit,
    UserSplit,
    observed_graph,
    split_temporal,
    split_users,
    time_cut,
)

__all__ = ["CONTEXTS", "CSR", "EgoNets", "ItemSplit", "KINDS", "TaskBatch", "TaskConfig",
           "TaskSampler", "TemporalSplit", "UserSplit", "adoption_graph", "induced_edges",
           "is_adoption_graph", "item_nodes", "observed_graph", "sample_egonets",
           "split_items", "split_temporal", "split_users", "task_batches",
           "task_feature_channels", "time_cut"]
