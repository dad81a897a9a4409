"""Beyond one machine: Dask-distributed segmentation of Zarr / OME-Zarr volumes, DDP training with torchrun.

:func:`segment_volume` runs block-wise prediction in one process or on a
:class:`distributed.Client` (a ``LocalCluster``, SLURM via dask-jobqueue,
Kubernetes: only the scheduler address changes); :func:`local_client` starts
a local cluster of worker processes. Distributed training: see
:mod:`unetkit.distributed.ddp` (``torchrun ... -m unetkit train``).
"""

from .predict import BlockJob, ModelPlugin, SegmentConfig, segment_volume

__all__ = ["SegmentConfig", "BlockJob", "ModelPlugin", "segment_volume", "local_client", "connect"]


def local_client(workers: int, threads_per_worker: int = 1):
    """A :class:`distributed.Client` on a new ``LocalCluster`` of ``workers`` processes (one task at a time each).

    ``threads_per_worker`` is the torch thread count of each worker, passed to
    :class:`SegmentConfig`; Dask runs one block at a time per worker.
    """
    from distributed import Client, LocalCluster

    if workers < 1 or threads_per_worker < 1:
        raise ValueError(f"workers and threads per worker must be >= 1, got {workers}, {threads_per_worker}")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=50)
    return Client(cluster)


def connect(address: str, timeout: float = 5.0):
    """A client of an existing scheduler (``tcp://HOST:PORT``); one clear error if it cannot be reached."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise OSError(f"cannot reach the Dask scheduler at {address!r} ({type(exc).__name__}: {exc})") from None
