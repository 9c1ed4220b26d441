"""Export of meta-learned embeddings for downstream systems (ANN indexes, feature stores)."""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_geometric
from torch import Tensor, nn
from torch_geometric.utils import degree

import socialmeta
from socialmeta.data import SocialGraph, atomic_write
from socialmeta.models.link import node_inputs
from socialmeta.models.taste import item_table


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
def user_embeddings(model: nn.Module, params: dict[str, Tensor], graph: SocialGraph,
                    chunk_size: int | None = None) -> Tensor:
    r"""Meta-init user embeddings ``[num_users, H]`` from the encoder's sparse forward
    over the whole friendship graph.

    There is no task center in a full-graph pass, so the task-only inputs are neutral:
    no hop one-hot, no support flag, no hidden feature row; the degree input is the
    degree in :obj:`graph`.
    With :obj:`chunk_size`, inference runs layer by layer over chunks of that many
    users (:meth:`Encoder.forward_chunked`, same result, bounded memory).
    """
    state = {n: p for n, p in params.items() if not n.startswith("lr::")}
    encoder_state = {n[len("encoder."):]: p for n, p in state.items()
                     if n.startswith("encoder.")}
    encoder = model.encoder
    x = graph["user"].x.float()
    n = graph.num_users
    if x.size(1):  # the tasks' "feature row hidden" flag: every row is visible here
        x = torch.cat([x, torch.zeros(n, 1)], 1)
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
    if chunk_size is None:
        out = torch.func.functional_call(encoder, encoder_state, (inputs, graph.friend_index))
    else:
        encoder = copy.deepcopy(encoder)
        encoder.load_state_dict(encoder_state)
        out = encoder.forward_chunked(inputs, graph.friend_index, chunk_size)
    return out.float()


FORMATS = ("npy", "parquet", "safetensors", "faiss")


def export_embeddings(model: nn.Module, params: dict[str, Tensor], graph: SocialGraph,
                      out_dir: str | Path, *, normalize: bool = False,
                      checkpoint: str | None = None, formats: Sequence[str] = ("npy",),
                      chunk_size: int | None = None) -> dict[str, Any]:
    r"""Writes meta-init embeddings of every user (and item, for item models) for
    downstream systems. Every file is written atomically. Returns the manifest.

    Files, per :obj:`formats`:

    * ``npy`` (always): ``user_embeddings.npy`` (float32 ``[num_users, d]``),
      ``user_ids.txt`` (the dataset's own ids, one per row), and
      ``item_embeddings.npy``/``item_ids.txt`` for item models;
    * ``parquet``: ``user_embeddings.parquet`` (columns ``id``, ``embedding``) and
      ``item_embeddings.parquet`` (needs ``pyarrow``: ``pip install socialmeta[export]``);
    * ``safetensors``: ``embeddings.safetensors`` with tensors ``user_embeddings`` (and
      ``item_embeddings``) (needs ``safetensors``);
    * ``faiss``: ``user_index.faiss`` (and ``item_index.faiss``), an exact
      inner-product ``IndexIDMap(IndexFlatIP)`` whose ids are row numbers, i.e. lines of
      the id files; with ``normalize=True`` its scores are cosines (needs ``faiss-cpu``).

    ``manifest.json`` records dimension, normalisation, model and data hashes,
    versions, the files and their kind (``meta-init``).

    Example:
        >>> export_embeddings(model, params, graph, "export/", normalize=True,
        ...                   formats=["npy", "faiss"])
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export formats {sorted(unknown)}; choose from {list(FORMATS)}")
    writers = {name: _require(name) for name in formats if name != "npy"}
    out_dir = Path(out_dir)
    tables = {"user": user_embeddings(model, params, graph, chunk_size)}
    if "item_embedding.weight" in params:
        tables["item"] = params["item_embedding.weight"].detach().float()
    if normalize:
        tables = {k: torch.nn.functional.normalize(v, dim=1) for k, v in tables.items()}
    arrays = {k: v.contiguous().numpy().astype(np.float32) for k, v in tables.items()}
    written = []
    for kind, array in arrays.items():
        with atomic_write(out_dir / f"{kind}_embeddings.npy", "wb") as f:
            np.save(f, array)
        with atomic_write(out_dir / f"{kind}_ids.txt", "w") as f:
            f.write("\n".join(graph.raw_ids[kind]) + "\n")
        written += [f"{kind}_embeddings.npy", f"{kind}_ids.txt"]
        if "parquet" in writers:
            pa, pq = writers["parquet"]
            table = pa.table({"id": pa.array(graph.raw_ids[kind], pa.string()),
                              "embedding": pa.FixedSizeListArray.from_arrays(
                                  pa.array(array.reshape(-1)), array.shape[1])})
            with atomic_write(out_dir / f"{kind}_embeddings.parquet", "wb") as f:
                pq.write_table(table, f)
            written.append(f"{kind}_embeddings.parquet")
        if "faiss" in writers:
            faiss = writers["faiss"]
            index = faiss.IndexIDMap(faiss.IndexFlatIP(array.shape[1]))
            index.add_with_ids(array, np.arange(array.shape[0], dtype=np.int64))
            with atomic_write(out_dir / f"{kind}_index.faiss", "wb") as f:
                f.write(faiss.serialize_index(index).tobytes())
            written.append(f"{kind}_index.faiss")
    if "safetensors" in writers:
        with atomic_write(out_dir / "embeddings.safetensors", "wb") as f:
            f.write(writers["safetensors"]({f"{k}_embeddings": v.contiguous()
                                            for k, v in tables.items()},
                                           metadata={"normalization": "l2" if normalize
                                                     else "none"}))
        written.append("embeddings.safetensors")
    manifest = {
        "kind": "meta-init",
        "dimension": int(arrays["user"].shape[1]),
        "normalization": "l2" if normalize else "none",
        "faiss_metric": "inner_product" if "faiss" in writers else None,
        "users": int(arrays["user"].shape[0]),
        "items": int(arrays["item"].shape[0]) if "item" in arrays else 0,
        "files": sorted(written),
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


def _require(fmt: str):
    """The module(s) that writing :obj:`fmt` needs, or an ImportError saying what to
    install."""
    try:
        if fmt == "parquet":
            import pyarrow
            import pyarrow.parquet

            return pyarrow, pyarrow.parquet
        if fmt == "safetensors":
            from safetensors.torch import save

            return save
        import faiss

        return faiss
    except ImportError as e:
        package = {"parquet": "pyarrow", "safetensors": "safetensors",
                   "faiss": "faiss-cpu"}[fmt]
        raise ImportError(f"export format {fmt!r} needs {package}: pip install {package} "
                          f"(or socialmeta[{'faiss' if fmt == 'faiss' else 'export'}])") from e
