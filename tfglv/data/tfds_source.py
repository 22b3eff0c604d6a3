"""The paper's four datasets through TensorFlow Datasets, strictly offline.

tfglv never downloads: datasets are read with `download=False` semantics
(`builder.as_dataset` only) and a dataset that is not prepared under
`data.data_dir` raises a ValueError telling where the original archives go.
`prepare(config)` then builds the TFDS files from those archives; it first
checks that every archive is present, so TFDS never falls back to the
network.

TFDS 4.9.10 looks for a registered archive in the manual directory
`<data_dir>/downloads/manual/<file name>` before downloading it, and checks
its size and sha256 against the registered checksum, so only the original,
unmodified files work.
"""

import dataclasses
import os
from typing import Dict, Optional, Tuple

import tensorflow as tf
import tensorflow_datasets as tfds

from tfglv import _compat


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
  """How one TFDS dataset maps onto tfglv's train/test splits."""
  splits: Dict[str, str]  # tfglv split -> TFDS split string.
  archives: Tuple[Tuple[str, str], ...]  # (file name, where it comes from).
  image_size: Optional[int]  # None: images vary in size.
  label_key: Optional[str] = None
  note: str = ""
  needs_tensorflow_io: bool = False


def _downloads(url: str, *file_names: str) -> Tuple[Tuple[str, str], ...]:
  """(file name, url + file name) for files in one online folder."""
  return tuple((name, url + name) for name in file_names)


# For datasets without a test split: their validation split stands in.
_VALIDATION_AS_TEST = {"train": "train", "test": "validation"}

TFDS_DATASETS = {
    "cifar10": TfdsDataset(
        splits={"train": "train", "test": "test"},
        archives=_downloads("https://www.cs.toronto.edu/~kriz/",
                            "cifar-10-binary.tar.gz"),
        image_size=32, label_key="label"),
    "downsampled_imagenet/64x64": TfdsDataset(
        splits=_VALIDATION_AS_TEST,
        archives=_downloads("http://image-net.org/small/",
                            "train_64x64.tar", "valid_64x64.tar"),
        image_size=64),
    "lsun/bedroom": TfdsDataset(
        splits=_VALIDATION_AS_TEST,
        archives=_downloads("http://dl.yf.io/lsun/scenes/",
                            "bedroom_train_lmdb.zip", "bedroom_val_lmdb.zip"),
        image_size=None, needs_tensorflow_io=True,
        note="Preparing reads LMDB through the tensorflow-io package, which "
             "is not in tfglv's pinned stack (its newest release, 0.37.1, "
             "predates TF 2.21); prepare in an environment where TFDS 4.9 and "
             "tensorflow-io work together, then copy the prepared "
             "lsun/bedroom folder into this data_dir."),
    "celeb_a_hq/256": TfdsDataset(
        # TFDS has only a train split (30000 images); the last 10% is test,
        # the 27000/3000 sizes of Glow's split (not the same images).
        splits={"train": "train[:90%]", "test": "train[90%:]"},
        archives=(("data256x256.tar",
                   "a tar of the 256x256 images, made as TFDS's celeb_a_hq "
                   "instructions say with the progressive_growing_of_gans "
                   "dataset tool"),),
        image_size=256),
}


def data_dir_root(config) -> str:
  """The TFDS data_dir: data.data_dir, else $TFDS_DATA_DIR or the default."""
  if config.data.data_dir:
    return os.path.expanduser(config.data.data_dir)
  return os.fspath(_compat.tfds_default_data_dir())


def manual_dir(config) -> str:
  return os.path.join(data_dir_root(config), "downloads", "manual")


def _how_to_prepare(name: str, config) -> str:
  spec = TFDS_DATASETS[name]
  manual = manual_dir(config)
  lines = [f"Put these unmodified archive(s) in {manual}/ :"]
  for file_name, origin in spec.archives:
    present = os.path.exists(os.path.join(manual, file_name))
    lines.append(f"  {file_name}  ({origin}){'  [found]' if present else ''}")
  if spec.note:
    lines.append(spec.note)
  lines.append(
      f"Then build the TFDS files once, offline, with "
      f"tfglv.data.prepare_tfds(config), or tfds.builder({name!r}, "
      f"data_dir={data_dir_root(config)!r}).download_and_prepare() (the "
      f"`tfds build` command needs apache-beam, not in tfglv's stack). "
      f"Or copy a {os.path.join(name, '<version>')} folder prepared "
      f"elsewhere to the same place under the data_dir.")
  return "\n".join(lines)


def builder(config, require_prepared: bool = True):
  """The TFDS builder of `config.data.dataset`, checked to be prepared."""
  name = config.data.dataset
  if name not in TFDS_DATASETS:
    raise ValueError(f"{name!r} is not a TFDS dataset tfglv knows; allowed: "
                     f"{', '.join(TFDS_DATASETS)}.")
  # Building a TFDS builder only reads local metadata (TFDS 4.9.10 ships
  # with GCS access off), so this cannot hang on a missing network.
  dataset_builder = tfds.builder(name, data_dir=data_dir_root(config))
  if require_prepared and not dataset_builder.is_prepared():
    raise ValueError(
        f"TFDS dataset {name!r} is not prepared under data_dir "
        f"{data_dir_root(config)!r} (no dataset_info.json in "
        f"{dataset_builder.data_dir}); tfglv never downloads data.\n"
        + _how_to_prepare(name, config))
  return dataset_builder


def image_shape(name: str) -> Tuple[Optional[int], Optional[int], int]:
  """(height, width, channels) of the dataset's images; None: varies."""
  size = TFDS_DATASETS[name].image_size
  return (size, size, 3)


def num_examples(config, split: str) -> int:
  dataset_builder = builder(config)
  return dataset_builder.info.splits[
      TFDS_DATASETS[config.data.dataset].splits[split]].num_examples


def examples(config, split: str, training: bool, seed: int, shard_index: int,
             num_shards: int, repeat: int) -> tf.data.Dataset:
  """Encoded examples {"image": PNG/JPEG string, "label": int64} in order.

  Training streams read files in a seeded order and pass through a seeded
  shuffle buffer of `data.shuffle_buffer` encoded images (encoded, so the
  buffer and a saved iterator stay small), then repeat. Shards read disjoint
  even slices of the split. Both shuffles are tf.data's seeded ones, so the
  order also depends on TF's global seed (`tf.random.set_seed`).
  """
  spec = TFDS_DATASETS[config.data.dataset]
  dataset_builder = builder(config)
  tfds_split = spec.splits[split]
  if num_shards > 1:
    tfds_split = tfds.even_splits(tfds_split, n=num_shards)[shard_index]
  read_config = tfds.ReadConfig(shuffle_seed=seed,
                                shuffle_reshuffle_each_iteration=True)
  dataset = dataset_builder.as_dataset(
      split=tfds_split, shuffle_files=training, read_config=read_config,
      decoders={"image": tfds.decode.SkipDecoding()})
  label_key = spec.label_key

  def select(example):
    label = (tf.cast(example[label_key], tf.int64) if label_key
             else tf.constant(-1, tf.int64))
    return {"image": example["image"], "label": label}

  dataset = dataset.map(select)
  if training:
    if config.data.shuffle_buffer < 1:
      raise ValueError(f"data.shuffle_buffer must be >= 1; got "
                       f"{config.data.shuffle_buffer}.")
    dataset = dataset.shuffle(config.data.shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
  return dataset.repeat(None if repeat < 0 else repeat)


def decoder(config):
  """Returns fn(example) decoding "image" to uint8 [h, w, 3]."""
  image_feature = builder(config).info.features["image"]

  def decode(example):
    example = dict(example)
    example["image"] = image_feature.decode_example(example["image"])
    return example

  return decode


def prepare(config):
  """Builds the TFDS files of `config.data.dataset` from manual archives.

  Raises ValueError, before touching TFDS, when an archive is missing, so
  the build never reaches for the network; and when an archive is not the
  original file (TFDS's checksum check).
  """
  name = config.data.dataset
  dataset_builder = builder(config, require_prepared=False)
  if dataset_builder.is_prepared():
    return dataset_builder
  manual = manual_dir(config)
  missing = [f for f, _ in TFDS_DATASETS[name].archives
             if not os.path.exists(os.path.join(manual, f))]
  if missing:
    raise ValueError(f"Cannot prepare {name!r} offline: missing "
                     f"{', '.join(missing)} in {manual}.\n"
                     + _how_to_prepare(name, config))
  if TFDS_DATASETS[name].needs_tensorflow_io:
    try:
      import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise ValueError(
          f"Cannot prepare {name!r} here: it reads LMDB with the "
          f"tensorflow-io package, which is not installed.\n"
          + _how_to_prepare(name, config)) from None
  download_config = tfds.download.DownloadConfig(
      manual_dir=manual, try_download_gcs=False)
  try:
    dataset_builder.download_and_prepare(download_config=download_config)
  except _compat.tfds_checksum_error() as e:
    raise ValueError(
        f"An archive for {name!r} in {manual} is not the original file "
        f"(size/sha256 differ from TFDS's registered checksum):\n{e}") from None
  return dataset_builder
