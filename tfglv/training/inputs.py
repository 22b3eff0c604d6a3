"""The input pipelines of a training run, distributed over its replicas.

TF's distributed iterators cannot be checkpointed; every train step reads
one global batch, so `train_iterator(..., start_batch=step)` restarts the
stream exactly where a resumed run left off. The data-dependent
initialisation reads the unsharded stream: every worker sees the same
images.
"""

import tensorflow as tf

from tfglv import configs
from tfglv import data


def train_iterator(config: configs.Config, strategy: tf.distribute.Strategy,
                   start_batch: int):
  """The shuffled, repeated training stream from global batch `start_batch`."""
  dataset = strategy.distribute_datasets_from_function(
      data.distributed_dataset_fn(config, "train", config.train.batch_size,
                                  training=True, seed=config.train.seed,
                                  start_batch=start_batch))
  return iter(dataset)


def eval_dataset(config: configs.Config, strategy: tf.distribute.Strategy):
  """The test split, or its first `train.eval_batches` global batches."""
  base = data.distributed_dataset_fn(config, "test", config.train.batch_size,
                                     training=False)
  batches = config.train.eval_batches

  def dataset_fn(input_context):
    dataset = base(input_context)
    if batches:
      per_pipeline = (input_context.num_replicas_in_sync //
                      input_context.num_input_pipelines)
      dataset = dataset.take(batches * per_pipeline)
    return dataset

  return strategy.distribute_datasets_from_function(dataset_fn)


def init_images(config: configs.Config) -> tf.Tensor:
  """The `train.init_batch_size` images of the data-dependent init."""
  dataset = data.make_dataset(config, "train", config.train.init_batch_size,
                              training=True, seed=config.train.seed)
  return next(iter(dataset))["image"]
