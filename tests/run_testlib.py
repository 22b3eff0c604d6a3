"""Helpers shared by the tests that read training runs and TFDS fixtures."""

import json
import os

import tensorflow_datasets as tfds


def summary_of(workdir):
  """The `train_summary.json` a finished `train.main` run writes."""
  with open(os.path.join(workdir, "train_summary.json")) as f:
    return json.load(f)


def checkpoint_steps(workdir):
  """Sorted steps of the checkpoints in `<workdir>/checkpoints`."""
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  return sorted(int(n.split("-")[1].split(".")[0]) for n in names
                if n.startswith("ckpt-") and n.endswith(".index"))


def write_cifar10_metadata(data_dir, train=40, test=8):
  """Metadata of a prepared cifar10 without records, for `mock_data`."""
  builder = tfds.builder("cifar10", data_dir=data_dir)
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name="train", shard_lengths=[train], num_bytes=0),
      tfds.core.SplitInfo(name="test", shard_lengths=[test], num_bytes=0)]))
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)
