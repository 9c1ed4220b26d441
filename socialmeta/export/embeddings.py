"""Export of meta-learned embeddings for downstream systems (ANN indexes, feature stores)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_geometric
from torch import Tensor, nn
from torch_geometric.utils import degree

import socialmeta
from socialmeta.data import SocialGraph, atomic_write
from socialmeta.models.item import item_table
from socialmeta.models.link import node_inputs


def tensor_digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over names, shapes and bytes of :obj:`tensors` (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def graph_digest(graph: SocialGraph) -> str:
    """Digest of a graph's tensors (friendships, features, interactions, labels)."""
    return tensor_digest({k: v for k, v in graph.to_dict().items() if isinstance(v, Tensor)})


@torch.no_grad()
def user_embeddings(model: nn.Module, params: dict[str, Tensor], graph: SocialGraph
                    ) -> Tensor:
    r"""Meta-init user embeddings ``[num_users, H]`` from the encoder's sparse forward
    over the whole friendship graph.

    There is no task center in a full-graph pass, so the task-only inputs are neutral:
    no hop one-hot, no support flag; the degree input is the degree in :obj:`graph`.
    """
    state = {n: p for n, p in params.items() if not n.startswith("lr::")}
    encoder_state = {n[len("encoder."):]: p for n, p in state.items()
                     if n.startswith("encoder.")}
    encoder = model.encoder
    x = graph["user"].x.float()
    n = graph.num_users
    deg = degree(graph.friend_index[0], n)
    inputs = node_inputs(x, deg, torch.full((n,), -1, dtype=torch.long),
                         torch.zeros(n), model.num_hops)
    if hasattr(model, "item_embedding"):  # ItemModel: users also carry their item taste
        weight = item_table(state["item_embedding.weight"], model.item_features,
                            state.get("item_proj.weight"))
        u, i = graph.interaction_index
        taste = torch.zeros(n, weight.size(1)).index_add_(0, u, weight[i])
        taste = taste / torch.bincount(u, minlength=n).clamp(min=1).unsqueeze(1)
        inputs = torch.cat([inputs, taste], 1)
    out = torch.func.functional_call(encoder, encoder_state, (inputs, graph.friend_index))
    return out.float()


def export_embeddings(model: nn.Module, params: dict[str, Tensor], graph: SocialGraph,
                      out_dir: str | Path, *, normalize: bool = False,
                      checkpoint: str | None = None) -> dict[str, Any]:
    r"""Writes ``user_embeddings.npy`` (float32), ``user_ids.txt`` (the dataset's own
    ids, row order), ``item_embeddings.npy``/``item_ids.txt`` for item models, and
    ``manifest.json``. Every file is written atomically. Returns the manifest.

    Example:
        >>> export_embeddings(model, params, graph, "export/", normalize=True)
    """
    out_dir = Path(out_dir)
    users = user_embeddings(model, params, graph)
    if normalize:
        users = torch.nn.functional.normalize(users, dim=1)
    files = {"user_embeddings.npy": users.numpy(), "user_ids.txt": graph.raw_ids["user"]}
    if "item_embedding.weight" in params:
        items = params["item_embedding.weight"].detach().float()
        if normalize:
            items = torch.nn.functional.normalize(items, dim=1)
        files["item_embeddings.npy"] = items.numpy()
        files["item_ids.txt"] = graph.raw_ids["item"]
    for name, content in files.items():
        if name.endswith(".npy"):
            with atomic_write(out_dir / name, "wb") as f:
                np.save(f, content.astype(np.float32))
        else:
            with atomic_write(out_dir / name, "w") as f:
                f.write("\n".join(content) + "\n")
    manifest = {
        "kind": "meta-init",
        "dimension": int(users.size(1)),
        "normalization": "l2" if normalize else "none",
        "users": int(users.size(0)),
        "items": int(files["item_embeddings.npy"].shape[0]) if "item_embeddings.npy" in files
        else 0,
        "files": sorted(files),
        "model": type(model).__name__, "encoder": model.encoder.conv_name,
        "model_sha256": tensor_digest({n: p for n, p in params.items()}),
        "data_sha256": graph_digest(graph), "dataset": graph.name,
        "checkpoint": checkpoint,
        "versions": {"socialmeta": socialmeta.__version__, "torch": torch.__version__,
                     "torch_geometric": torch_geometric.__version__, "numpy": np.__version__},
    }
    with atomic_write(out_dir / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest
