"""Tests of tfglv.data.tfds_source: the paper's datasets, strictly offline."""

import io
import os
import tarfile
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import cifar

from tfglv import configs
from tfglv import data

from data_testlib import assert_batches_equal
from data_testlib import assert_value_error
from data_testlib import first_batches
from run_testlib import write_cifar10_metadata


def test_tfds_cifar10_under_mock_data(tmp_path):
  write_cifar10_metadata(str(tmp_path))
  config = configs.override(configs.get("cifar10"), {
      "data.data_dir": str(tmp_path), "data.shuffle_buffer": "16"})
  with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
    assert data.num_examples(config, "train") == 40
    assert data.num_examples(config, "test") == 8
    batch = first_batches(config, 1, batch_size=4)[0]
    images, labels = data.load_arrays(config, "test")
  assert batch["image"].shape == (4, 32, 32, 3)
  assert batch["image"].dtype == np.uint8
  assert images.shape == (12, 32, 32, 3)
  assert set(labels) == {"label"} and labels["label"].min() >= 0


def prepare_tiny_cifar10(data_dir, train=24, test=10):
  """Really prepares a cifar10 of random images, from fake CIFAR binaries."""
  rng = np.random.RandomState(4)
  paths = {}
  for split, count in (("train", train), ("test", test)):
    paths[split] = os.path.join(data_dir, f"{split}.bin")
    with open(paths[split], "wb") as f:
      for i in range(count):  # CIFAR binary: label byte + 3072 pixel bytes.
        f.write(bytes([i % 10]) + rng.randint(0, 256, 3072, np.uint8).tobytes())

  def split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, [path])
            for split, path in paths.items()}

  with mock.patch.object(cifar.Cifar10, "_split_generators", split_generators):
    tfds.builder("cifar10", data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))


def test_tfds_prepared_dataset_reads_resumes_and_shards(tmp_path):
  prepare_tiny_cifar10(str(tmp_path))
  config = configs.override(configs.get("cifar10"), {
      "data.data_dir": str(tmp_path), "data.shuffle_buffer": "8"})
  assert data.num_examples(config, "train") == 24
  images, labels = data.load_arrays(config, "test")
  assert images.shape == (10, 32, 32, 3)
  assert sorted(labels["label"]) == list(range(10))
  stream = first_batches(config, 8, batch_size=4, seed=1)
  assert_batches_equal(stream, first_batches(config, 8, batch_size=4, seed=1))
  assert_batches_equal(first_batches(config, 2, batch_size=4, seed=1,
                                     start_batch=5), stream[5:7])
  iterator = iter(data.make_dataset(config, "train", 4, training=True,
                                    seed=1))
  for _ in range(3):
    next(iterator)
  path = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "it"))
  expected = next(iterator)
  fresh = iter(data.make_dataset(config, "train", 4, training=True, seed=1))
  tf.train.Checkpoint(iterator=fresh).restore(path)
  np.testing.assert_array_equal(next(fresh)["image"], expected["image"])
  shards = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(2, pipeline, 2)
    shard = data.make_dataset(config, "test", 3, training=False,
                              input_context=context)
    shards.extend(bytes(x) for b in shard.as_numpy_iterator()
                  for x in b["image"])
  assert sorted(shards) == sorted(bytes(x) for x in images)


def test_tfds_archive_names_match_tfds_checksums():
  for name, spec in data.TFDS_DATASETS.items():
    url_infos = tfds.builder_cls(name.split("/")[0]).url_infos
    if not url_infos:  # celeb_a_hq: manual archive, nothing registered.
      continue
    registered = {info.filename: url for url, info in url_infos.items()}
    for file_name, url in spec.archives:
      assert registered.get(file_name) == url, (name, file_name)


def test_tfds_not_prepared_fails_fast_without_download(tmp_path):
  config = configs.override(configs.get("cifar10"),
                            {"data.data_dir": str(tmp_path)})
  downloads = "tensorflow_datasets.core.download.download_manager"
  with mock.patch(f"{downloads}.DownloadManager.download",
                  side_effect=AssertionError("tried to download")), \
       mock.patch(f"{downloads}.DownloadManager.download_and_extract",
                  side_effect=AssertionError("tried to download")):
    assert_value_error(config, "not prepared", str(tmp_path),
                       os.path.join("downloads", "manual"),
                       "cifar-10-binary.tar.gz", "prepare_tfds")
    with pytest.raises(ValueError, match="missing cifar-10-binary.tar.gz"):
      data.prepare_tfds(config)
  # The paper's named configs each point at their TFDS dataset.
  for name, archives in (("imagenet64", ["train_64x64.tar", "valid_64x64.tar"]),
                         ("lsun128", ["bedroom_train_lmdb.zip",
                                      "bedroom_val_lmdb.zip"]),
                         ("celebahq256", ["data256x256.tar"])):
    named = configs.override(configs.get(name),
                             {"data.data_dir": str(tmp_path)})
    assert_value_error(named, "not prepared", *archives)
  lsun = configs.override(configs.get("lsun128"), {
      "data.data_dir": str(tmp_path), "data.augmentation": "none"})
  assert_value_error(lsun, "vary in size", "augmentation=center_crop")
  celeba = configs.override(configs.get("cifar10"), {
      "data.data_dir": str(tmp_path), "data.dataset": "celeb_a_hq/256"})
  assert_value_error(celeba, "256x256", "set model.image_size=256")


def test_prepare_tfds_uses_the_manual_archive_offline(tmp_path):
  manual = tmp_path / "downloads" / "manual"
  manual.mkdir(parents=True)
  with tarfile.open(manual / "cifar-10-binary.tar.gz", "w:gz") as archive:
    content = b"\0" * 3073
    info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
    info.size = len(content)
    archive.addfile(info, io.BytesIO(content))
  config = configs.override(configs.get("cifar10"),
                            {"data.data_dir": str(tmp_path)})
  # TFDS finds the archive in the manual dir (no download) and rejects it
  # because it is not the original file.
  with mock.patch(
      "tensorflow_datasets.core.download.download_manager.DownloadManager."
      "_download", side_effect=AssertionError("tried to download")):
    with pytest.raises(ValueError, match="not the original file"):
      data.prepare_tfds(config)
