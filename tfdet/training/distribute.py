"""tf.distribute for tfdet training: the strategy by name, and per-worker input.

Build and compile the model inside ``strategy.scope()``; feed ``fit`` from
:func:`distributed_batches`, which gives every input pipeline (one per worker) its own part of the
files and a per-replica batch. ``OneStageModel.train_step`` divides its loss by the number of
replicas, so the summed gradients are the mean of the replicas' -- the semantics of PyTorch DDP,
which mmdetection's learning rates assume.

Strategies:

- ``None`` / ``"default"``: no distribution (one device).
- ``"mirrored"``: MirroredStrategy over the devices of this machine (the GPUs, else the CPU).
- ``"multi_worker"``: MultiWorkerMirroredStrategy; the cluster and this process's role come from the
  ``TF_CONFIG`` environment variable that the training job (Kubeflow's TFJob, Vertex AI) sets.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def get_strategy(name: Optional[str] = None) -> tf.distribute.Strategy:
    """The strategy called ``name`` (see the module docstring)."""
    name = name or "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        if not config.get("cluster", {}).get("worker") and not config.get("cluster", {}).get("chief"):
            raise ValueError("distribution 'multi_worker' needs TF_CONFIG with a cluster, e.g. "
                             '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", '
                             '"index": 0}}; set by the training job (TFJob, Vertex AI) or by hand')
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown distribution {name!r}: choose one of {', '.join(STRATEGIES)}")


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public class name (MultiWorkerMirroredStrategy's instances are CollectiveAllReduceStrategy)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the outputs: always, except the non-chief workers of a multi-worker job."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def distributed_batches(strategy: tf.distribute.Strategy, global_batch_size: int,
                        make_dataset: Callable[[int, int, int], tf.data.Dataset]):
    """Training input for ``strategy``: ``make_dataset(num_shards, shard_index, per_replica_batch_size)``
    is called once per input pipeline and must return batches of that size from its shard.

    With one replica this is just ``make_dataset(1, 0, global_batch_size)``.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"the batch size {global_batch_size} must be a multiple of the {replicas} replicas "
                         f"of the {type(strategy).__name__}")
    if replicas == 1 and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return make_dataset(1, 0, global_batch_size)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return make_dataset(context.num_input_pipelines, context.input_pipeline_id,
                            context.get_per_replica_batch_size(global_batch_size))

    return strategy.distribute_datasets_from_function(dataset_fn)
