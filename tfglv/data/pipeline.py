"""Batched tf.data pipelines for training and evaluation.

    dataset = make_dataset(config, "train", batch_size=64, training=True,
                           seed=0)
    batch = next(iter(dataset))
    batch["image"]   # uint8 [64, H, W, C]   (H = W = config.model.image_size)
    batch["label"]   # int64 [64]            (-1 when the dataset has none)
    # synthetic also has batch["shape"], batch["palette"] (int64 [64]).

Training streams are shuffled (a fresh order each epoch), repeated, batched
with `drop_remainder=True`, augmented per `data.augmentation` and
prefetched; all of it is a function of `seed`, and the iterator is
checkpointable:

    iterator = iter(dataset)
    checkpoint = tf.train.Checkpoint(iterator=iterator)   # saves the position

Evaluation streams keep the file order, run once and keep the last partial
batch. With a distribution strategy:

    dataset = strategy.distribute_datasets_from_function(
        distributed_dataset_fn(config, "train", global_batch_size=512,
                               training=True, seed=0))
"""

from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfglv.data import preprocess
from tfglv.data import sources


def _prepare_fn(config, source: sources.Source, split: str, training: bool,
                seed: int, shard_index: int, num_shards: int) -> Callable:
  """fn(position, raw example) -> example with a config-shaped uint8 image."""
  decode = source.decode(split)
  augmentation = config.data.augmentation
  resize = source.always_resize or augmentation == "center_crop"
  image_shape = config.model.image_shape
  key = tf.constant(preprocess.augment_key(seed), tf.int64)

  def prepare(position, raw):
    example = dict(decode(raw))
    image = example["image"]
    if resize:
      image = preprocess.center_crop_and_resize(image, config.model.image_size)
    image = tf.ensure_shape(image, image_shape)
    if training:
      # One stream position per image across shards, so no two replicas
      # draw the same augmentation.
      stream_index = position * num_shards + shard_index
      image = preprocess.augment(image, augmentation,
                                 seed=tf.stack([key, stream_index]))
      image = tf.ensure_shape(image, image_shape)
    example["image"] = image
    return example

  return prepare


def make_dataset(config, split: str, batch_size: int, training: bool,
                 seed: int = 0, repeat: Optional[int] = None,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 start_batch: int = 0) -> tf.data.Dataset:
  """The batched pipeline of one split.

  Args:
    config: the Config (model.image_size, model.channels, `data`).
    split: "train" or "test".
    batch_size: examples per batch (per replica under a strategy).
    training: shuffle, augment, drop the last partial batch, and by default
      repeat forever; otherwise file order, one pass, partial batch kept.
    seed: determines shuffling and augmentation.
    repeat: number of passes over the split; None: forever when training,
      once otherwise.
    input_context: from `strategy.distribute_datasets_from_function`; this
      pipeline then reads shard `input_pipeline_id` of
      `num_input_pipelines`.
    start_batch: begin the stream after this many batches: the result equals
      `make_dataset(...).skip(start_batch)`, but in-memory datasets jump there
      at once (TFDS ones read and drop the skipped encoded examples). Resume
      with it when the iterator cannot be checkpointed, e.g. the distributed
      iterators of a tf.distribute strategy. (TFDS training order also
      depends on TF's global seed: set the same one when resuming.)

  Returns:
    tf.data.Dataset of dicts: "image" uint8 [B, H, W, C] and int64 [B] label
    columns ("label"; synthetic adds "shape" and "palette").
  """
  sources.check_split(split)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
  if start_batch < 0:
    raise ValueError(f"start_batch must be >= 0; got {start_batch}.")
  if repeat is not None and repeat < 1:
    raise ValueError(f"repeat must be None (forever when training) or >= 1; "
                     f"got {repeat}.")
  source = sources.get_source(config)
  if input_context is not None:
    shard_index = input_context.input_pipeline_id
    num_shards = input_context.num_input_pipelines
  else:
    shard_index, num_shards = 0, 1
  if repeat is None:
    repeat = -1 if training else 1
  if not training and repeat > 0:
    # A finite pass fits in one batch of its size. A larger batch_size would
    # change nothing but memory: tf.data's map-and-batch fusion allocates the
    # whole batch up front (10**9 images: 715 GiB at 16x16x3).
    batch_size = min(batch_size,
                     max(1, source.num_examples(split) * repeat))
  start = start_batch * batch_size
  dataset = source.examples(split, training=training, seed=seed,
                            shard_index=shard_index, num_shards=num_shards,
                            repeat=repeat, start=start)
  dataset = dataset.enumerate(start=start)
  dataset = dataset.map(
      _prepare_fn(config, source, split, training, seed, shard_index,
                  num_shards),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=training)
  return dataset.prefetch(tf.data.AUTOTUNE)


def distributed_dataset_fn(config, split: str, global_batch_size: int,
                           training: bool, seed: int = 0,
                           repeat: Optional[int] = None,
                           start_batch: int = 0) -> Callable:
  """fn(input_context) for `strategy.distribute_datasets_from_function`.

  Each input pipeline batches `global_batch_size / num_replicas_in_sync`
  examples (which must divide evenly) and reads its own shard. TF's
  distributed iterators are not checkpointable (TF 2.21), so resume by
  passing the number of global batches already consumed as `start_batch`.
  """

  def dataset_fn(input_context: tf.distribute.InputContext):
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    # Each pipeline feeds num_replicas / num_pipelines replicas per step.
    replicas_per_pipeline = (input_context.num_replicas_in_sync //
                             input_context.num_input_pipelines)
    return make_dataset(config, split, per_replica, training, seed=seed,
                        repeat=repeat, input_context=input_context,
                        start_batch=start_batch * replicas_per_pipeline)

  return dataset_fn


def num_examples(config, split: str) -> int:
  """Number of examples in the whole split (all shards)."""
  return sources.get_source(config).num_examples(sources.check_split(split))


def label_keys(config) -> Tuple[str, ...]:
  """The int64 columns examples carry besides "image"."""
  return sources.get_source(config).label_keys


def load_arrays(config, split: str, max_examples: Optional[int] = None,
                batch_size: int = 256
                ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
  """A split as numpy arrays, preprocessed as evaluation sees it.

  Args:
    config: the Config.
    split: "train" or "test".
    max_examples: keep only the first this many (file order); None: all.
    batch_size: pipeline batch size while reading.

  Returns:
    (images uint8 [N, H, W, C], labels) where labels maps each label key
    (see `label_keys`) to int64 [N]: "label" is the class (-1 when the
    dataset has none); synthetic data adds its factors "shape" and "palette".
  """
  if max_examples is not None and max_examples < 1:
    raise ValueError(f"max_examples must be None or >= 1; got "
                     f"{max_examples}.")
  dataset = make_dataset(config, split, batch_size, training=False)
  if max_examples is not None:
    dataset = dataset.unbatch().take(max_examples).batch(batch_size)
  parts = list(dataset.as_numpy_iterator())
  if not parts:
    raise ValueError(f"{config.data.dataset} split {split!r} is empty.")
  columns = {name: np.concatenate([part[name] for part in parts])
             for name in parts[0]}
  images = columns.pop("image")
  return images, columns
