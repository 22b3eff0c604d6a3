"""Distribution strategies for training on one or several machines.

    configure_cpu_devices(2)        # before TF touches a device (tests, CPU)
    strategy = create_strategy("mirrored")
    with strategy.scope():
      model = tfglv.build_model(config)

* "mirrored": `tf.distribute.MirroredStrategy` over every local GPU, or over
  the logical CPUs when there is no GPU. NCCL has no CPU kernel, so CPU-only
  replicas reduce through one device.
* "one_device": `tf.distribute.OneDeviceStrategy` on the first GPU or CPU.
* "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`; the cluster
  comes from the `TF_CONFIG` environment variable (without it, one worker).
  Only the chief writes checkpoints, summaries and images; other workers
  save their (required) checkpoint copies under a temporary directory.
"""

import os
import tempfile

import tensorflow as tf

STRATEGIES = ("mirrored", "one_device", "multi_worker")


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


def create_strategy(name: str) -> tf.distribute.Strategy:
  """The strategy called `name` (one of STRATEGIES)."""
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; allowed: "
                     f"{', '.join(STRATEGIES)}.")
  gpus = tf.config.list_logical_devices("GPU")
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else
                                           "/cpu:0")
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if gpus:
    return tf.distribute.MirroredStrategy()
  cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(
      cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


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
  return os.path.join(tempfile.gettempdir(), "tfglv_workers",
                      f"{task_type}_{task_id}",
                      os.path.basename(os.path.normpath(directory)))
