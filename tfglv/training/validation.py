"""Checks of a training config against the replicas and the data.

They run before the trainer builds anything, so a bad setting stops a run
with a ValueError that names it, instead of an out-of-memory error or a
shape mismatch deep inside a traced step.
"""

from tfglv import configs
from tfglv import data

# TrainConfig fields that count something and must be >= 1.
_POSITIVE_COUNTS = ("num_steps", "log_every", "checkpoint_every",
                    "eval_every", "sample_every", "keep_checkpoints",
                    "init_batch_size", "num_posterior_samples",
                    "eval_posterior_samples")


def check_batch_sizes(train_config, num_replicas: int):
  """Raises ValueError unless the global batch splits evenly."""
  batch = train_config.batch_size
  if batch % num_replicas:
    nearest = max(num_replicas, batch // num_replicas * num_replicas)
    raise ValueError(
        f"train.batch_size {batch} (the global batch) is not divisible by "
        f"the {num_replicas} replicas in sync; use a multiple of "
        f"{num_replicas}, e.g. {nearest}.")
  per_replica = batch // num_replicas
  accumulation = train_config.grad_accumulation
  if per_replica % accumulation:
    raise ValueError(
        f"The per-replica batch {per_replica} (train.batch_size {batch} / "
        f"{num_replicas} replicas) is not divisible by "
        f"train.grad_accumulation {accumulation}.")
  for name in _POSITIVE_COUNTS:
    if getattr(train_config, name) < 1:
      raise ValueError(f"train.{name} must be >= 1; got "
                       f"{getattr(train_config, name)}.")
  if train_config.eval_batches < 0:
    raise ValueError(f"train.eval_batches must be >= 0 (0: the whole test "
                     f"split); got {train_config.eval_batches}.")


def check_data(config: configs.Config):
  """Reads both splits' sizes (surfacing missing data) and checks the batch.

  Raises ValueError for missing or unreadable data, or a global batch
  larger than the training split.
  """
  num_train_examples = data.num_examples(config, "train")
  data.num_examples(config, "test")
  batch = config.train.batch_size
  if batch > num_train_examples:
    # Training batches repeat the split; a larger batch is a typo that
    # would only show up as running out of memory.
    raise ValueError(
        f"train.batch_size {batch} exceeds the {num_train_examples} "
        f"training images of {config.data.dataset}; use at most "
        f"{num_train_examples}.")
