"""Instances across blocks, and the label pyramids, as block tasks.

1. Each block labels the 4-connected components of ``P(object) > threshold``
   in itself (provisional, block-local numbers), writes them, and returns its
   label count, its object sizes and the labels on its four faces.
2. The driver offsets the local numbers to make them unique, joins every pair
   of labels that touch across a block face (a face-adjacency graph and its
   connected components), drops objects smaller than ``min_size`` pixels
   (sizes summed over blocks) and numbers the objects 1..N.
3. Each block rewrites its labels through that table.

The result equals the connected components of the whole volume's
probabilities, plane by plane, up to the numbering.
"""

from __future__ import annotations

import numpy as np

__all__ = ["label_instances", "write_pyramid", "merge_faces"]


def _map(client, fn, items: list[tuple]) -> list:
    if client is None:
        return [fn(*item) for item in items]
    futures = [client.submit(fn, *item, pure=False) for item in items]
    return client.gather(futures)


def _label_block(job, z: int, by: int, bx: int, threshold: float):
    import zarr

    from ..labels import connected_components
    from .predict import _block_index

    root = zarr.open_group(job.output, mode="r+")
    shape = root["labels/mask/0"].shape[-2:]
    rows, cols = _block_index(job, z, by, bx, shape)
    zi = (z,) if "z" in job.axes else ()
    prob = np.asarray(root["0"][(*zi, rows, cols)])
    local = connected_components(prob > threshold).astype(np.uint32)
    root["labels/instances/0"][(*zi, rows, cols)] = local
    n = int(local.max())
    sizes = np.bincount(local.ravel(), minlength=n + 1)
    faces = {"top": local[0].copy(), "bottom": local[-1].copy(), "left": local[:, 0].copy(), "right": local[:, -1].copy()}
    return (z, by, bx), n, sizes, faces


def merge_faces(results: list, threshold_min_size: int) -> tuple[dict, np.ndarray, int]:
    """Offsets per block, the table from offset labels to final labels, and the object count.

    ``results``: the block results of :func:`_label_block`. Labels that touch
    across a face (the same row or column position on both sides, both > 0)
    are one object; objects with fewer than ``threshold_min_size`` pixels
    become background.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    offsets, total = {}, 0
    for key, n, _, _ in results:
        offsets[key] = total
        total += n
    by_key = {key: (n, sizes, faces) for key, n, sizes, faces in results}
    edges = []
    for (z, by, bx), (_, _, faces) in by_key.items():
        for (dy, dx), mine, theirs in (((1, 0), "bottom", "top"), ((0, 1), "right", "left")):
            other = by_key.get((z, by + dy, bx + dx))
            if other is None:
                continue
            a, b = faces[mine].astype(np.int64), other[2][theirs].astype(np.int64)
            touch = (a > 0) & (b > 0)
            edges.append(np.stack([a[touch] + offsets[(z, by, bx)], b[touch] + offsets[(z, by + dy, bx + dx)]]))
    pairs = np.concatenate(edges, axis=1) if edges else np.zeros((2, 0), np.int64)
    graph = coo_matrix((np.ones(pairs.shape[1]), (pairs[0], pairs[1])), shape=(total + 1, total + 1))
    _, component = connected_components(graph, directed=False)
    sizes = np.zeros(total + 1, np.int64)
    for key, (n, block_sizes, _) in by_key.items():
        sizes[offsets[key] + 1: offsets[key] + n + 1] = block_sizes[1:]
    comp_size = np.bincount(component, weights=sizes, minlength=component.max() + 1)
    keep = comp_size >= max(threshold_min_size, 1)
    keep[component[0]] = False  # the background node
    # number the kept objects 1..N in the order of their first (smallest) offset label
    first = np.full(component.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, component, np.arange(total + 1))
    kept = np.flatnonzero(keep)
    number = np.zeros(component.max() + 1, np.uint32)
    number[kept[np.argsort(first[kept])]] = np.arange(1, kept.size + 1, dtype=np.uint32)
    table = number[component]
    table[0] = 0
    return offsets, table, int(kept.size)


def _relabel_block(job, z: int, by: int, bx: int, offset: int, table) -> None:
    import zarr

    from .predict import _block_index

    root = zarr.open_group(job.output, mode="r+")
    arr = root["labels/instances/0"]
    rows, cols = _block_index(job, z, by, bx, arr.shape[-2:])
    zi = (z,) if "z" in job.axes else ()
    local = np.asarray(arr[(*zi, rows, cols)]).astype(np.int64)
    arr[(*zi, rows, cols)] = np.where(local > 0, table[np.where(local > 0, local + offset, 0)], 0).astype(np.uint32)


def label_instances(job, plane_shape, config, *, client=None, log=None) -> int:
    """Steps 1-3 of the module docstring; returns the number of objects."""
    from .predict import _blocks

    if job.num_classes != 2:
        raise ValueError("distributed instances need a 2-class (background/object) model")
    blocks = _blocks(job, plane_shape)
    results = _map(client, _label_block, [(job, *b, config.threshold) for b in blocks])
    offsets, table, n = merge_faces(results, config.min_size)
    shared = client.scatter(table, broadcast=True) if client is not None else table
    _map(client, _relabel_block, [(job, *b, offsets[b], shared) for b in blocks])
    write_pyramid(job, "instances", client=client)
    if log:
        log(f"{n} objects over {len(blocks)} blocks")
    return n


def _downsample_chunk(job, name: str, level: int, index: tuple) -> None:
    import zarr

    root = zarr.open_group(job.output, mode="r+")
    src, dst = root[f"labels/{name}/0"], root[f"labels/{name}/{level}"]
    step = 2**level
    region = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, dst.chunks, dst.shape))
    spatial = len(dst.shape) - 2
    read = tuple(r if d < spatial else slice(r.start * step, min(r.stop * step, src.shape[d]), step)
                 for d, r in enumerate(region))
    dst[region] = np.asarray(src[read])


def write_pyramid(job, name: str, *, client=None) -> None:
    """Levels 1, 2, ... of ``labels/<name>`` from level 0 (nearest neighbour: every 2**level-th pixel)."""
    import itertools

    import zarr

    group = zarr.open_group(job.output, mode="r")[f"labels/{name}"]
    levels = sorted(int(k) for k in group.array_keys())
    for level in levels[1:]:
        arr = group[str(level)]
        grid = [range(-(-s // c)) for s, c in zip(arr.shape, arr.chunks)]
        _map(client, _downsample_chunk, [(job, name, level, idx) for idx in itertools.product(*grid)])
