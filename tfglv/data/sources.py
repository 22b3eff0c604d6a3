"""Where images come from: one `Source` per `DataConfig.dataset`.

A source yields *raw* examples in stream order (shuffled and repeated for
training) and knows how to `decode` one raw example into
`{"image": uint8 [h, w, C], "label": int64, ...}`. The pipeline maps
`decode` in parallel, so expensive work (gathers, file reads, PNG/JPEG
decoding) never runs in the sequential part of the stream.

In-memory sources (synthetic, npz, folder) stream indices: each training
epoch is a stateless permutation keyed on (seed, epoch), so the order does
not depend on TF's global seed and a saved iterator holds no shuffle
buffer.
"""

import functools
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfglv.data import files
from tfglv.data import preprocess
from tfglv.data import synthetic
from tfglv.data import tfds_source

SPLITS = ("train", "test")
DATASET_NAMES = (("synthetic",) + tuple(tfds_source.TFDS_DATASETS) +
                 ("npz", "folder"))
# The synthetic test split has data.synthetic_size // 8 images.
SYNTHETIC_TEST_DIVISOR = 8
_SYNTHETIC_SEEDS = {"train": (0x7F1A, 1), "test": (0x7F1A, 2)}
_FOLDER_CHANNELS = (1, 3, 4)


def check_split(split: str) -> str:
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r}; allowed: {', '.join(SPLITS)}.")
  return split


def check_image_shape(config, shape, what: str):
  """Raises a ValueError when images of `shape` cannot feed `config`.

  Args:
    config: the Config (model.image_size, model.channels,
      data.augmentation).
    shape: (height, width, channels) of the dataset's images; None for a
      size that varies.
    what: names the images in the message.
  """
  height, width, channels = shape
  if channels != config.model.channels:
    raise ValueError(
        f"{what} images have {channels} channels but model.channels is "
        f"{config.model.channels}; set model.channels={channels}.")
  if config.data.augmentation == "center_crop":
    return  # Any size is cropped and resized to image_size.
  size = config.model.image_size
  if (height, width) != (size, size):
    if height is not None and height == width:
      fix = f"set model.image_size={height}, or "
    else:
      fix = ""
    raise ValueError(
        f"{what} images are {height}x{width} but model.image_size is "
        f"{size}; {fix}set data.augmentation=center_crop to crop and "
        f"resize them to {size}x{size}.")


class Source:
  """Raw examples of one dataset and how to decode them."""

  # Integer label columns every decoded example carries (-1: no label).
  label_keys: Tuple[str, ...] = ("label",)
  # Whether decoded images always need cropping/resizing to image_size.
  always_resize: bool = False

  def num_examples(self, split: str) -> int:
    raise NotImplementedError

  def examples(self, split: str, training: bool, seed: int, shard_index: int,
               num_shards: int, repeat: int, start: int = 0) -> tf.data.Dataset:
    """Raw examples of this shard in stream order, from position `start`.

    repeat < 0 repeats forever. The stream from `start` equals the full
    stream with its first `start` elements dropped.
    """
    raise NotImplementedError

  def decode(self, split: str) -> Callable:
    """fn(raw example) -> {"image": uint8 [h, w, C], label keys: int64}."""
    raise NotImplementedError


class InMemorySource(Source):
  """Columns of N rows per split, streamed by index."""

  def __init__(self, load_split: Callable[[str], Dict[str, np.ndarray]],
               label_keys=("label",), decode_row: Optional[Callable] = None,
               always_resize: bool = False):
    """Args:
      load_split: fn(split) -> columns {name: array [N, ...]}.
      label_keys: int64 columns passed through to examples.
      decode_row: fn(row dict of tensors) -> row with "image"; default: the
        "image" column already holds uint8 images.
      always_resize: see Source.
    """
    self._load_split = load_split
    self.label_keys = tuple(label_keys)
    self._decode_row = decode_row or (lambda row: row)
    self.always_resize = always_resize

  def columns(self, split: str) -> Dict[str, np.ndarray]:
    return self._load_split(check_split(split))

  def num_examples(self, split):
    return len(next(iter(self.columns(split).values())))

  def examples(self, split, training, seed, shard_index, num_shards, repeat,
               start=0):
    size = self.num_examples(split)
    if not training:
      indices = tf.data.Dataset.range(shard_index, size, num_shards)
      return indices.repeat(None if repeat < 0 else repeat).skip(start)
    key = tf.constant(preprocess.shuffle_key(seed), tf.int64)
    # Jump straight to the epoch and offset of `start`, so resuming costs
    # nothing however far into the stream it is.
    shard_size = len(range(shard_index, size, num_shards))
    if not shard_size:
      raise ValueError(f"{split} split has {size} examples, too few for "
                       f"{num_shards} input pipelines.")
    first_epoch, first_offset = divmod(start, shard_size)

    def epoch_indices(epoch):
      order = tf.random.experimental.stateless_shuffle(
          tf.range(size, dtype=tf.int64), seed=tf.stack([key, epoch]))
      # Shards take interleaved slices of one shared permutation, so together
      # they still visit every example exactly once per epoch.
      order = order[shard_index::num_shards]
      offset = tf.where(tf.equal(epoch, first_epoch),
                        tf.constant(first_offset, tf.int64),
                        tf.constant(0, tf.int64))
      return tf.data.Dataset.from_tensor_slices(order[offset:])

    if repeat < 0:
      epochs = tf.data.Dataset.counter(start=first_epoch)
    else:
      epochs = tf.data.Dataset.range(first_epoch, repeat)
    return epochs.flat_map(epoch_indices)

  def decode(self, split):
    tensors = {name: tf.constant(values)
               for name, values in self.columns(split).items()}

    def decode(index):
      row = {name: tf.gather(values, index) for name, values in tensors.items()}
      return self._decode_row(row)

    return decode


class TfdsSource(Source):
  """A prepared TFDS dataset (see tfds_source)."""

  def __init__(self, config):
    self._config = config
    name = config.data.dataset
    shape = tfds_source.image_shape(name)
    if shape[0] is None and config.data.augmentation != "center_crop":
      raise ValueError(
          f"{name} images vary in size, so they must be cropped and resized: "
          f"set data.augmentation=center_crop (got "
          f"{config.data.augmentation!r}).")
    check_image_shape(config, shape, name)
    tfds_source.builder(config)  # Fails early when not prepared.

  def num_examples(self, split):
    return tfds_source.num_examples(self._config, check_split(split))

  def examples(self, split, training, seed, shard_index, num_shards, repeat,
               start=0):
    return tfds_source.examples(self._config, check_split(split), training,
                                seed, shard_index, num_shards,
                                repeat).skip(start)

  def decode(self, split):
    return tfds_source.decoder(self._config)


@functools.lru_cache(maxsize=4)
def _synthetic_split(split, synthetic_size, image_size, channels):
  size = synthetic_size if split == "train" else max(
      1, synthetic_size // SYNTHETIC_TEST_DIVISOR)
  columns = synthetic.generate(size, image_size, channels,
                               seed=_SYNTHETIC_SEEDS[split])
  for values in columns.values():
    values.setflags(write=False)  # Shared by every caller of the cache.
  return columns


def _synthetic_source(config) -> Source:
  if config.data.synthetic_size < 1:
    raise ValueError(f"data.synthetic_size must be >= 1; got "
                     f"{config.data.synthetic_size}.")
  return InMemorySource(
      lambda split: _synthetic_split(split, config.data.synthetic_size,
                                     config.model.image_size,
                                     config.model.channels),
      label_keys=("label", "shape", "palette"))


def _npz_source(config) -> Source:
  splits = files.load_npz(config.data.path)
  for split, columns in splits.items():
    check_image_shape(config, columns["image"].shape[1:],
                      f"npz {config.data.path} {split}")
  return InMemorySource(lambda split: splits[split])


def _folder_source(config) -> Source:
  if config.model.channels not in _FOLDER_CHANNELS:
    raise ValueError(
        f"dataset 'folder' decodes images to 1, 3 or 4 channels; "
        f"model.channels is {config.model.channels}.")
  splits = files.load_folder(config.data.path, config.data.on_bad_image)
  for split, columns in splits.items():
    if not len(columns["path"]):
      total = sum(len(c["path"]) for c in splits.values())
      raise ValueError(
          f"image folder {config.data.path!r}: none of its {total} images "
          f"fell into the {split} split (~{files.TEST_FRACTION:.0%} of files "
          f"go to test, chosen by a hash of the file name); add images.")

  def decode_row(row):
    image = tf.io.decode_image(tf.io.read_file(row["path"]),
                               channels=config.model.channels,
                               expand_animations=False)
    return {"image": image, "label": row["label"]}

  return InMemorySource(lambda split: splits[split], decode_row=decode_row,
                        always_resize=True)


def get_source(config) -> Source:
  """The Source of `config.data.dataset`; raises ValueError on bad input."""
  name = config.data.dataset
  preprocess.check_augmentation(config.data.augmentation)
  if name == "synthetic":
    return _synthetic_source(config)
  if name == "npz":
    return _npz_source(config)
  if name == "folder":
    return _folder_source(config)
  if name in tfds_source.TFDS_DATASETS:
    return TfdsSource(config)
  raise ValueError(f"Unknown dataset {name!r}; allowed: "
                   f"{', '.join(DATASET_NAMES)}.")
