"""Distribution strategies for training on one or several machines.

    configure_cpu_devices(2)        # before TF touches a device (tests, CPU)
    strategy = create_strategy("mirrored")
    with strategy.scope():
      model = tfglv.build_model(config.model)

* "mirrored": `tf.distribute.MirroredStrategy` over every local GPU, or over
  the logical CPUs when there is no GPU. NCCL has no CPU kernel, so CPU-only
  replicas reduce through one device.
* "one_device": `tf.distribute.OneDeviceStrategy` on the first GPU or CPU.
* "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`; the cluster
  comes from the `TF_CONFIG` environment variable (without it, one worker),
  which is checked first (`cluster.parse_tf_config`). Workers that cannot
  all reach each other within `multi_worker_timeout_seconds` raise
  ValueError instead of waiting forever. Only the chief writes checkpoints,
  summaries and images; other workers save their (required) checkpoint
  copies under a temporary directory that is removed after every save.

The workers' agreement is checked, not assumed: `check_workers_agree`,
`broadcast_from_chief`, `variables_digest` and, across the replicas of one
process, `replica_max_abs_difference`.
"""

import hashlib
import os
import shutil
import tempfile
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tfglv import _compat
from tfglv import configs
from tfglv import rundir
from tfglv.training import cluster as cluster_lib

# How long a worker waits for every other worker of TF_CONFIG to start.
DEFAULT_MULTI_WORKER_TIMEOUT_SECONDS = 600.0


def configure_cpu_devices(count: int):
  """Splits the physical CPU into `count` logical devices (replicas on CPU).

  Must run before TensorFlow initialises its devices, i.e. before the first
  op of the process; raises ValueError (with the reason) otherwise.
  """
  if count < 1:
    raise ValueError(f"The CPU device count must be >= 1; got {count}.")
  cpus = tf.config.list_physical_devices("CPU")
  current = tf.config.get_logical_device_configuration(cpus[0])
  if current is not None and len(current) == count:
    return
  if count == 1 and current is None:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
  except RuntimeError as e:
    raise ValueError(
        f"Cannot split the CPU into {count} logical devices: TensorFlow has "
        f"already initialised its devices in this process ({e}). Configure "
        f"them first thing, e.g. with train.main --num_cpu_devices.") from None


def create_strategy(
    name: str,
    multi_worker_timeout_seconds: float = DEFAULT_MULTI_WORKER_TIMEOUT_SECONDS
) -> tf.distribute.Strategy:
  """The strategy called `name` (one of `configs.STRATEGIES`).

  Args:
    name: one of `configs.STRATEGIES`.
    multi_worker_timeout_seconds: "multi_worker" only: how long to wait for
      every worker of TF_CONFIG to start and connect before raising
      ValueError.
  """
  if name not in configs.STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; allowed: "
                     f"{', '.join(configs.STRATEGIES)}.")
  if name == "multi_worker":
    # Before anything lists devices: that starts TF's runtime, after which
    # the coordination service can no longer be configured.
    return _multi_worker_strategy(multi_worker_timeout_seconds)
  gpus = tf.config.list_logical_devices("GPU")
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else
                                           "/cpu:0")
  if gpus:
    return tf.distribute.MirroredStrategy()
  cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(
      cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


def _bound_cluster_start_up(cluster, timeout_seconds: float):
  """Makes the strategy's start-up fail after `timeout_seconds`.

  MultiWorkerMirroredStrategy configures the same coordination service
  unless one is configured already, but without a deadline: the leader
  (chief, else worker 0) would wait forever for a worker that never comes.
  A service the caller configured is left alone.
  """
  leader = "chief" if "chief" in cluster else "worker"
  _compat.configure_coordination_service(
      f"/job:{leader}/replica:0/task:0",
      {job: len(cluster[job])
       for job in cluster_lib.MULTI_WORKER_JOBS if job in cluster},
      timeout_seconds)


def _multi_worker_strategy(timeout_seconds: float):
  if not timeout_seconds > 0:
    raise ValueError(f"The multi-worker timeout must be > 0 seconds; got "
                     f"{timeout_seconds}.")
  # NCCL has no CPU kernel; RING all-reduces over gRPC on any device.
  implementation = (
      tf.distribute.experimental.CommunicationImplementation.NCCL
      if tf.config.list_physical_devices("GPU") else
      tf.distribute.experimental.CommunicationImplementation.RING)
  options = tf.distribute.experimental.CommunicationOptions(
      implementation=implementation)
  text = os.environ.get("TF_CONFIG", "")
  if not text.strip():
    logging.warning("TF_CONFIG is not set: multi_worker trains on this "
                    "machine alone.")
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=options)
  cluster, task_type, task_index = cluster_lib.parse_tf_config(text)
  _bound_cluster_start_up(cluster, timeout_seconds)
  try:
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=options)
  except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as e:
    others = "; ".join(
        f"{job} {index} at {address}" for job, addresses in cluster.items()
        for index, address in enumerate(addresses)
        if (job, index) != (task_type, task_index))
    reason = (getattr(e, "message", None) or str(e)).strip().splitlines()[0]
    raise ValueError(
        f"TF_CONFIG task {task_type} {task_index} could not connect to all "
        f"the other workers ({others}) within {timeout_seconds:g} s "
        f"(multi_worker_timeout_seconds). Start the same command on every "
        f"address of the cluster, each with its own task, and check the "
        f"addresses and that their ports are open. TensorFlow: "
        f"{reason}") from None


def _task(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return None, 0
  return resolver.task_type, resolver.task_id or 0


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's outputs."""
  task_type, task_id = _task(strategy)
  if task_type is None:
    return True
  has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
  if has_chief:
    return task_type == "chief"
  return task_type == "worker" and task_id == 0


def worker_directory(directory: str, strategy: tf.distribute.Strategy) -> str:
  """`directory` on the chief; a private temporary directory elsewhere.

  MultiWorkerMirroredStrategy needs every worker to take part in a
  checkpoint save; non-chief workers write theirs where nobody reads it.
  """
  if is_chief(strategy):
    return directory
  task_type, task_id = _task(strategy)
  # The process id keeps apart two clusters that share a host.
  return os.path.join(tempfile.gettempdir(),
                      f"tfglv_{task_type}_{task_id}_{os.getpid()}",
                      os.path.basename(os.path.normpath(directory)))


def remove_worker_directory(directory: str, strategy: tf.distribute.Strategy):
  """Removes what `worker_directory` gave a non-chief worker (after a save,
  as TF's multi-worker guidance does); nothing on the chief."""
  if not is_chief(strategy):
    shutil.rmtree(os.path.dirname(worker_directory(directory, strategy)),
                  ignore_errors=True)


def num_workers(strategy: tf.distribute.Strategy) -> int:
  """Processes that train together (1 unless multi-worker)."""
  task_type, _ = _task(strategy)
  if task_type is None:
    return 1
  spec = strategy.cluster_resolver.cluster_spec().as_dict()
  return sum(len(spec.get(job, ())) for job in cluster_lib.MULTI_WORKER_JOBS)


def distributed_value(variable):
  """The (distributed) tf.Variable behind a Keras 3 or TF variable."""
  # Keras 3 variables hold it in `.value`; a tf.Variable's own `.value` is a
  # method.
  value = getattr(variable, "value", variable)
  return variable if callable(value) else value


def _gather(strategy, value: float) -> np.ndarray:
  """Every replica's `value` (exact for integers below 2**53), replica 0
  (on the chief) first. A collective: every worker calls it, in order."""
  values = strategy.experimental_distribute_values_from_function(
      lambda _: tf.constant([value], tf.float64))
  return strategy.gather(values, axis=0).numpy()


def chief_value(strategy: tf.distribute.Strategy, value: float) -> float:
  """The chief's `value`, on every worker (a collective)."""
  if num_workers(strategy) < 2:
    return value
  return float(_gather(strategy, value)[0])


def check_workers_agree(strategy: tf.distribute.Strategy, value: float,
                        what: str):
  """Raises ValueError on every worker unless all hold the same `value`.

  A collective: every worker must call it, in the same order.
  """
  if num_workers(strategy) < 2:
    return
  gathered = _gather(strategy, value)
  if np.any(gathered != gathered[0]):
    raise ValueError(f"The workers disagree on {what}: "
                     f"{sorted(set(gathered.tolist()))} (one value per "
                     f"replica).")


def checkpoint_to_resume(workdir: str, strategy: tf.distribute.Strategy
                         ) -> Optional[str]:
  """The checkpoint of `workdir` that every worker resumes from, if any.

  The latest one; with several workers, the one the chief, which saves and
  recovers the run's checkpoints, sees as latest, read by every worker from
  the workdir (the others only save to temporary directories, see
  `worker_directory`). A collective then: every worker calls it.
  """
  latest = rundir.latest_checkpoint(workdir)
  if num_workers(strategy) < 2:
    return latest
  chief_step = int(chief_value(
      strategy, rundir.recovery.checkpoint_step(latest) if latest else -1))
  if chief_step < 0:
    return None
  latest = os.path.join(rundir.checkpoint_directory(workdir),
                        f"ckpt-{chief_step}")
  if not tf.io.gfile.exists(latest + ".index"):
    raise ValueError(
        f"The chief resumes from {latest}, which this worker cannot read: "
        f"with several workers the workdir must be on a file system they "
        f"all read (e.g. GCS, NFS).")
  return latest


def broadcast_from_chief(strategy: tf.distribute.Strategy, variables
                         ) -> float:
  """Sets `variables` on every worker to the chief's values.

  Replica 0 lives on the chief; a sum over replicas of (value on replica
  0, zero elsewhere) is an exact copy. A collective: every worker calls it.
  Returns the largest change to this worker's values (0 when workers had
  computed identical values, as identical hosts do).
  """
  if num_workers(strategy) < 2 or not variables:
    return 0.0
  values = [distributed_value(v) for v in variables]

  def replica_fn():
    replica_context = tf.distribute.get_replica_context()
    # float64 holds every float32 (and narrower) value exactly.
    flat = tf.concat([tf.reshape(tf.cast(v, tf.float64), [-1])
                      for v in values], axis=0)
    keep = tf.equal(replica_context.replica_id_in_sync_group, 0)
    flat = tf.where(keep, flat, tf.zeros_like(flat))
    return replica_context.all_reduce(tf.distribute.ReduceOp.SUM, flat)

  summed = tf.function(lambda: strategy.run(replica_fn))()
  chief_values = strategy.experimental_local_results(summed)[0]
  pieces = tf.split(chief_values, [int(np.prod(v.shape)) for v in values])
  largest_change = 0.0
  with strategy.scope():
    for value, piece in zip(values, pieces):
      new = tf.cast(tf.reshape(piece, value.shape), value.dtype)
      old = strategy.experimental_local_results(value)[0]
      change = tf.reduce_max(tf.abs(tf.cast(new, tf.float64) -
                                    tf.cast(old, tf.float64)))
      largest_change = max(largest_change, float(change))
      value.assign(new)
  return largest_change


def variables_digest(strategy: tf.distribute.Strategy, variables) -> str:
  """SHA-256 of this process's copy of `variables` (dtype, shape, bytes).

  Two workers print the same digest iff they hold bit-identical values.
  """
  digest = hashlib.sha256()
  for variable in variables:
    value = strategy.experimental_local_results(
        distributed_value(variable))[0]
    array = np.ascontiguousarray(value.numpy())
    digest.update(f"{array.dtype}{array.shape}".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def replica_max_abs_difference(strategy: tf.distribute.Strategy,
                               variables) -> float:
  """Largest |difference| between replicas' copies of `variables` (0: same)."""
  worst = 0.0
  for variable in variables:
    copies = strategy.experimental_local_results(distributed_value(variable))
    if len(copies) < 2:
      continue
    first = np.asarray(copies[0].numpy(), np.float64)
    for copy in copies[1:]:
      difference = np.abs(np.asarray(copy.numpy(), np.float64) - first)
      worst = max(worst, float(np.max(difference, initial=0.0)))
  return worst
