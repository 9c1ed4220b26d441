"""Export of meta-learned embeddings for downstream systems (ANN indexes, feature stores)."""
from __future__ import annotations

import copy
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
from socialmeta.data.cache import atomic_dir, graph_digest, tensor_digest
from socialmeta.models.link import node_inputs
from socialmeta.models.taste import item_table


@torch.no_grad()
def user_embeddings(model: nn.Module, params: dict[str, Tensor], graph: SocialGraph,
                    chunk_size: int | None = None) -> Tensor:
    r"""Meta-init user embeddings ``[num_users, H]`` from the encoder's sparse forward
    over the whole friendship graph.

    There is no task center in a full-graph pass, so the task-only inputs are neutral:
    no hop one-hot, no support flag, no hidden feature row, zero heuristics towards a
    center; the degree input is the degree in :obj:`graph`.
    With :obj:`chunk_size`, inference runs layer by layer over chunks of that many
    users (:meth:`Encoder.forward_chunked`, same result, bounded memory).
    """
    state = {n: p for n, p in params.items() if "::" not in n}   # model parameters only
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
    # heuristics towards a task's center (LinkModel and ItemModel with heuristics=True):
    # no center, zeros
    inputs = torch.cat([inputs, torch.zeros(n, getattr(model, "heuristic_channels", 0))], 1)
    if chunk_size is None:
        out = torch.func.functional_call(encoder, encoder_state, (inputs, graph.friend_index))
    else:
        encoder = copy.deepcopy(encoder)
        encoder.load_state_dict(encoder_state)
        out = encoder.forward_chunked(inputs, graph.friend_index, chunk_size)
    return out.float()


@torch.no_grad()
def adapted_user_embeddings(model: nn.Module, params: dict[str, Tensor], sampler,
                            inner, users: Tensor | None = None, batch_size: int = 256
                            ) -> Tensor:
    r"""Per-user adapted embeddings ``[len(users), H]``: each user becomes the center
    of a task whose support is all its own links (friends among training users for
    friend tasks, its items for item tasks; its context as the sampler's task config
    says), the learner adapts to that support as for a new user, and the row is the
    center's embedding under the adapted parameters (:meth:`center_embedding`; for
    item models the user vector whose dot product with an item row is the item's
    score; that dot product equals the adapted model's score exactly when the learner
    does not adapt the item table, e.g. ``meta.adapt_prefixes=[encoder.,head.]``,
    otherwise the exported meta-init item rows approximate the adapted ones).
    ``noadapt`` and ``protonet`` adapt nothing: their rows are the meta-init
    center embeddings of the same tasks. Runs :obj:`batch_size` users at a time.

    Args:
        sampler (TaskSampler): The run's sampler (graph, split, task config).
        inner (InnerLoop): The run's learner, as trained.
        users (Tensor, optional): Global user indices. (default: every user)
    """
    from torch.func import vmap

    from socialmeta.meta.inference import inner_for_new_users
    from socialmeta.meta.learners import _call, adapt, shared_inputs, task_tensors

    if users is None:
        users = torch.arange(sampler.num_users)
    params = {n: p.detach() for n, p in params.items()}
    eval_inner = inner_for_new_users(inner)

    rows = []
    for start in range(0, users.numel(), batch_size):
        batch = sampler.support_batch(users[start:start + batch_size])
        # what the tasks read besides their own tensors (the hybrid's candidate tower),
        # as the evaluator passes it
        shared, per_task_inputs = shared_inputs(model, params, batch)

        def per_task(task: dict[str, Tensor], shared=shared) -> Tensor:
            task = {**task, **shared}
            fast = adapt(model, params, task, eval_inner)
            return model.center_embedding(_call(model, fast), task)

        rows.append(vmap(per_task, randomness="different")(
            {**task_tensors(model, batch), **per_task_inputs}))
    return torch.cat(rows).float()


@torch.no_grad()
def hybrid_tables(model: nn.Module, params: dict[str, Tensor], users: Tensor
                  ) -> dict[str, Tensor]:
    r"""The dot-product part of a :class:`~socialmeta.models.HybridLinkModel`'s score
    (its ``tower`` term ``c_v · fold(q_u)``) as two tables over every user:
    ``"candidate"`` (the candidate tower on the whole observed graph, ``c_v``) and
    ``"query"`` (``fold(q_u)`` of the user rows :obj:`users`, the encoder's vectors).
    ``query[u] · candidate[v]`` is the tower term of the score of ``v`` for ``u``; the
    ego-net and pair-feature terms depend on each task and have no fixed vector."""
    state = {n: p for n, p in params.items() if "::" not in n}
    full = (model.tower_folds,)
    towers = torch.func.functional_call(model, state, (), {"mode": "tower", "folds": full})
    candidates = towers[model.tower_folds]
    query = torch.nn.functional.linear(users, state["fold.weight"], state["fold.bias"])
    return {"candidate": candidates.float(), "query": query.float()}


def item_embeddings(model: nn.Module, params: dict[str, Tensor]) -> Tensor:
    """The item rows a model scores with (embedding table plus projected features)."""
    return item_table(params["item_embedding.weight"], model.item_features,
                      params.get("item_proj.weight")).detach().float()


FORMATS = ("npy", "parquet", "safetensors", "faiss")
#: tables whose rows are users (their ids are the users')
ID_TABLE = {"candidate": "user", "query": "user"}
KINDS = ("meta-init", "adapted")


def export_embeddings(model: nn.Module, params: dict[str, Tensor], graph: SocialGraph,
                      out_dir: str | Path, *, normalize: bool = False,
                      checkpoint: str | None = None, formats: Sequence[str] = ("npy",),
                      chunk_size: int | None = None, users: Tensor | None = None,
                      kind: str = "meta-init", feature_scaling: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    r"""Writes meta-init embeddings of every user (and item, for item models) for
    downstream systems. The files are written into a fresh temporary folder that
    replaces :obj:`out_dir` in one rename (:func:`~socialmeta.data.cache.atomic_dir`):
    an export never mixes with an earlier one's files, and a failed or killed export
    leaves the earlier one whole. Returns the manifest.

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

    A hybrid model (``model.scorer=hybrid`` with its tower) also writes
    ``candidate_embeddings`` (the tower's ``c_v`` of every user, on the whole observed
    graph) and ``query_embeddings`` (``fold(q_u)``): their dot product is the tower term
    of its score, and the manifest's ``user_score`` says which parts it leaves out.

    An item model with ``heuristics=True`` also scores an item by a learned bias and
    by counts over the new user's ego-net, which no fixed vector can carry: its
    exported rows give the dot-product part of the score only, the biases go to
    ``item_bias.npy``, and the manifest's ``item_score`` says so.

    ``manifest.json`` records dimension, normalisation, model and data hashes,
    versions, the files and their kind: ``meta-init`` (the encoder's full-graph
    forward, :func:`user_embeddings`) or ``adapted`` (per-user adapted rows that the
    caller passes as :obj:`users`, see :func:`adapted_user_embeddings`).

    Example:
        >>> export_embeddings(model, params, graph, "export/", normalize=True,
        ...                   formats=["npy", "faiss"])
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export formats {sorted(unknown)}; choose from {list(FORMATS)}")
    writers = {name: _require(name) for name in formats if name != "npy"}
    if kind not in KINDS or (kind == "adapted") != (users is not None):
        raise ValueError(f"kind must be one of {list(KINDS)}; 'adapted' comes with the "
                         "adapted user rows (users=...), 'meta-init' without")
    out_dir = Path(out_dir)
    tables = {"user": users.float() if users is not None
              else user_embeddings(model, params, graph, chunk_size)}
    if "item_embedding.weight" in params:
        tables["item"] = item_embeddings(model, params)
    if "tower" in getattr(model, "parts", ()):   # the hybrid scorer: c_v and fold(q_u)
        tables |= hybrid_tables(model, params, tables["user"])
    if normalize:
        tables = {k: torch.nn.functional.normalize(v, dim=1) for k, v in tables.items()}
    arrays = {k: v.contiguous().numpy().astype(np.float32) for k, v in tables.items()}
    with atomic_dir(out_dir) as tmp:
        manifest = _write(tmp, arrays, tables, writers, params, graph, model, kind,
                          normalize, checkpoint, chunk_size or 65536, feature_scaling)
    return manifest


def _chunks(total: int, size: int):
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def _write(out_dir: Path, arrays: dict[str, np.ndarray], tables: dict[str, Tensor],
           writers: dict[str, Any], params: dict[str, Tensor], graph: SocialGraph,
           model: nn.Module, kind: str, normalize: bool, checkpoint: str | None,
           chunk: int = 65536, feature_scaling: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """Writes every file of an export into :obj:`out_dir`, the ``.npy``, id and Parquet
    files :obj:`chunk` rows at a time (one Parquet row group per chunk); returns the
    manifest."""
    written = []
    for table, array in arrays.items():
        ids = graph.raw_ids[ID_TABLE.get(table, table)]
        # out_dir is the export's private temp folder (atomic_dir): files stream into it
        npy = np.lib.format.open_memmap(out_dir / f"{table}_embeddings.npy", mode="w+",
                                        dtype=np.float32, shape=array.shape)
        with open(out_dir / f"{table}_ids.txt", "w") as f:
            for rows in _chunks(len(ids), chunk):
                npy[rows] = array[rows]
                f.write("".join(f"{i}\n" for i in ids[rows]))
        npy.flush()
        del npy
        written += [f"{table}_embeddings.npy", f"{table}_ids.txt"]
        if "parquet" in writers:
            pa, pq = writers["parquet"]
            schema = pa.schema([("id", pa.string()),
                                ("embedding", pa.list_(pa.float32(), array.shape[1]))])
            with pq.ParquetWriter(out_dir / f"{table}_embeddings.parquet", schema) as w:
                for rows in _chunks(len(ids), chunk):  # one row group per chunk
                    part = array[rows]
                    w.write_table(pa.table({
                        "id": pa.array(ids[rows], pa.string()),
                        "embedding": pa.FixedSizeListArray.from_arrays(
                            pa.array(part.reshape(-1)), array.shape[1])}, schema=schema))
            written.append(f"{table}_embeddings.parquet")
        if "faiss" in writers:
            faiss = writers["faiss"]
            index = faiss.IndexIDMap(faiss.IndexFlatIP(array.shape[1]))
            index.add_with_ids(array, np.arange(array.shape[0], dtype=np.int64))
            with atomic_write(out_dir / f"{table}_index.faiss", "wb") as f:
                f.write(faiss.serialize_index(index).tobytes())
            written.append(f"{table}_index.faiss")
    if "safetensors" in writers:
        with atomic_write(out_dir / "embeddings.safetensors", "wb") as f:
            f.write(writers["safetensors"]({f"{k}_embeddings": v.contiguous()
                                            for k, v in tables.items()},
                                           metadata={"normalization": "l2" if normalize
                                                     else "none"}))
        written.append("embeddings.safetensors")
    if "item_bias.weight" in params:
        with atomic_write(out_dir / "item_bias.npy", "wb") as f:
            np.save(f, params["item_bias.weight"].detach().float()[:, 0].numpy())
        written.append("item_bias.npy")
    manifest = {
        "kind": kind,
        "dimension": int(arrays["user"].shape[1]),
        "normalization": "l2" if normalize else "none",
        "faiss_metric": "inner_product" if "faiss" in writers else None,
        "users": int(arrays["user"].shape[0]),
        "items": int(arrays["item"].shape[0]) if "item" in arrays else 0,
        "item_score": _item_score(model) if "item" in arrays else None,
        "user_score": _user_score(model, normalize) if "candidate" in arrays else None,
        "files": sorted(written),
        "model": type(model).__name__, "encoder": model.encoder.conv_name,
        "model_sha256": tensor_digest({n: p for n, p in params.items()}),
        "data_sha256": graph_digest(graph), "dataset": graph.name,
        "checkpoint": checkpoint,
        "versions": {"socialmeta": socialmeta.__version__, "torch": torch.__version__,
                     "torch_geometric": torch_geometric.__version__, "numpy": np.__version__},
    }
    if feature_scaling:   # how a new user's raw features become the model's inputs
        manifest["feature_scaling"] = {k: v.to_dict() for k, v in feature_scaling.items()}
    with atomic_write(out_dir / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _user_score(model: torch.nn.Module, normalize: bool) -> str:
    """What a hybrid model's score of candidate v for user u is, and the exported part."""
    left = [p for p in model.parts if p != "tower"]
    text = ("query_embeddings[u] . candidate_embeddings[v] is the tower term c_v . fold(q_u)"
            " of the score, with q_u the meta-init full-graph vector")
    if normalize:
        text += " (rows l2-normalized: a cosine, not the term itself)"
    if left:
        text += (f"; the score also adds the {' and '.join(left)} term(s), not exported: "
                 "they depend on each task's ego-net and support")
    return text


def _item_score(model: torch.nn.Module) -> str:
    """What an item model's score is, and which of its parts the export carries."""
    text = _item_model_score(model)
    if hasattr(model, "pair_gate"):   # the hybrid item scorer
        text += ("; the hybrid scorer also adds mlp(pair features) + gate(user) . pair "
                 "features (ItemKNN, UserKNN, popularity, social popularity of the user's "
                 "support; not exported: they depend on each user's items and friends)")
    return text


def _item_model_score(model: torch.nn.Module) -> str:
    if not getattr(model, "heuristics", False):
        return "user . item"
    if getattr(model, "item_knn", 0):
        return ("user . item + item_bias + a term over ego-net counts and the ItemKNN "
                "score from the user's items (not exported: it depends on each user's "
                "ego-net and items)")
    return ("user . item + item_bias + ego-net count term (not exported: it depends on "
            "each user's ego-net)")


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
