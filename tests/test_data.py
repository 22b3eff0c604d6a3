"""Tests of tfglv.data: sources, preprocessing, pipelines, errors."""

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
from tfglv.data import preprocess
from tfglv.data import synthetic

from run_testlib import write_cifar10_metadata

CIFAR_SUBSET = os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                            "data", "cifar10_subset.npz")


def tiny(**fields):
  """The tiny config with dotted `fields` overridden."""
  config = configs.get("tiny")
  return configs.override(config, fields)


def first_batches(config, count, **kwargs):
  kwargs.setdefault("batch_size", 8)
  kwargs.setdefault("training", True)
  dataset = data.make_dataset(config, "train", **kwargs)
  return list(dataset.take(count).as_numpy_iterator())


def assert_batches_equal(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def write_npz(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


# --- synthetic -------------------------------------------------------------


def test_synthetic_is_deterministic_and_splits_are_disjoint():
  first = synthetic.generate(300, 16, 3, seed=(1, 1))
  again = synthetic.generate(300, 16, 3, seed=(1, 1))
  other = synthetic.generate(300, 16, 3, seed=(1, 2))
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  train = {bytes(image) for image in first["image"]}
  assert not train & {bytes(image) for image in other["image"]}
  config = tiny()
  train_images, _ = data.load_arrays(config, "train")
  test_images, _ = data.load_arrays(config, "test")
  assert len(test_images) == config.data.synthetic_size // 8
  assert not ({bytes(x) for x in train_images} &
              {bytes(x) for x in test_images})


@pytest.mark.parametrize("size,channels", [(16, 3), (32, 1), (64, 3)])
def test_synthetic_shapes_dtypes_and_factors(size, channels):
  columns = synthetic.generate(600, size, channels, seed=7)
  assert columns["image"].shape == (600, size, size, channels)
  assert columns["image"].dtype == np.uint8
  for key in ("label", "shape", "palette"):
    assert columns[key].dtype == np.int64 and columns[key].shape == (600,)
  np.testing.assert_array_equal(columns["label"], columns["shape"])
  shape_counts = np.bincount(columns["shape"],
                             minlength=len(synthetic.SHAPE_NAMES))
  assert shape_counts.max() - shape_counts.min() <= 1
  palette_counts = np.bincount(columns["palette"],
                               minlength=len(synthetic.PALETTES))
  expected = 600 / len(synthetic.PALETTES)
  assert palette_counts.min() > 0.5 * expected
  assert palette_counts.max() < 1.5 * expected
  # Local detail: images sharing both global factors still differ.
  same = np.flatnonzero((columns["shape"] == 0) & (columns["palette"] == 0))
  assert len({bytes(columns["image"][i]) for i in same}) == len(same)
  # The global factors show: the mean colour tells palettes apart.
  means = columns["image"].reshape(600, -1).mean(axis=1)
  per_palette = [means[columns["palette"] == p].mean()
                 for p in range(len(synthetic.PALETTES))]
  assert np.ptp(per_palette) > 50


def test_synthetic_batches_carry_factor_labels():
  config = tiny(**{"data.synthetic_size": "64"})
  batch = first_batches(config, 1)[0]
  assert batch["image"].shape == (8, 16, 16, 3)
  assert batch["image"].dtype == np.uint8
  assert set(batch) == {"image", "label", "shape", "palette"}
  assert data.label_keys(config) == ("label", "shape", "palette")
  images, labels = data.load_arrays(config, "test")
  assert images.shape == (8, 16, 16, 3)
  assert set(labels) == {"label", "shape", "palette"}
  assert all(v.dtype == np.int64 and v.shape == (8,) for v in labels.values())


# --- pipeline --------------------------------------------------------------


def test_train_stream_shuffles_each_epoch_and_covers_every_example():
  config = tiny(**{"data.synthetic_size": "40"})
  images, _ = data.load_arrays(config, "train")
  index_of = {bytes(image): i for i, image in enumerate(images)}
  batches = first_batches(config, 10, batch_size=8)  # 2 epochs of 40.
  order = [index_of[bytes(x)] for b in batches for x in b["image"]]
  first_epoch, second_epoch = order[:40], order[40:]
  assert sorted(first_epoch) == list(range(40))
  assert sorted(second_epoch) == list(range(40))
  assert first_epoch != second_epoch
  assert first_epoch != list(range(40))


def test_train_stream_is_a_function_of_the_seed():
  config = tiny(**{"data.synthetic_size": "64", "data.augmentation": "cifar"})
  assert_batches_equal(first_batches(config, 3, seed=5),
                       first_batches(config, 3, seed=5))
  other = first_batches(config, 3, seed=6)
  assert not np.array_equal(first_batches(config, 1, seed=5)[0]["image"],
                            other[0]["image"])


def test_eval_stream_keeps_order_and_remainder():
  config = tiny(**{"data.synthetic_size": "100"})  # test split: 12.
  batches = list(data.make_dataset(config, "test", 5, training=False)
                 .as_numpy_iterator())
  assert [len(b["image"]) for b in batches] == [5, 5, 2]
  images, _ = data.load_arrays(config, "test")
  np.testing.assert_array_equal(
      np.concatenate([b["image"] for b in batches]), images)
  assert data.num_examples(config, "train") == 100
  assert data.num_examples(config, "test") == 12
  train = data.make_dataset(config, "train", 16, training=True, repeat=1)
  assert [len(b["image"]) for b in train] == [16] * 6  # 100 // 16, no rest.


def test_iterator_checkpoint_restores_the_next_batch(tmp_path):
  config = tiny(**{"data.synthetic_size": "50", "data.augmentation": "cifar"})
  iterator = iter(data.make_dataset(config, "train", 8, training=True,
                                    seed=3))
  for _ in range(9):  # Past the first epoch boundary (50 / 8).
    next(iterator)
  checkpoint = tf.train.Checkpoint(iterator=iterator)
  path = checkpoint.save(str(tmp_path / "data"))
  expected = [next(iterator) for _ in range(2)]
  fresh = iter(data.make_dataset(config, "train", 8, training=True, seed=3))
  tf.train.Checkpoint(iterator=fresh).restore(path).assert_consumed()
  restored = [next(fresh) for _ in range(2)]
  assert_batches_equal([tf.nest.map_structure(np.asarray, b)
                        for b in expected],
                       [tf.nest.map_structure(np.asarray, b)
                        for b in restored])


def test_start_batch_equals_skipping():
  config = tiny(**{"data.synthetic_size": "50", "data.augmentation": "cifar"})
  stream = first_batches(config, 20, seed=2)
  for start in (1, 6, 13):
    resumed = first_batches(config, 3, seed=2, start_batch=start)
    assert_batches_equal(resumed, stream[start:start + 3])


def test_distributed_shards_split_the_data():
  config = tiny(**{"data.synthetic_size": "100"})
  dataset_fn = data.distributed_dataset_fn(config, "test", 4, training=False)
  seen = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2)
    batches = list(dataset_fn(context).as_numpy_iterator())
    assert all(len(b["image"]) <= 2 for b in batches)  # per-replica batch
    seen.extend(bytes(x) for b in batches for x in b["image"])
  images, _ = data.load_arrays(config, "test")
  assert sorted(seen) == sorted(bytes(x) for x in images)
  # Training shards are disjoint within an epoch.
  train_fn = data.distributed_dataset_fn(config, "train", 10, training=True)
  epoch = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(2, pipeline, 2)
    for batch in train_fn(context).take(10).as_numpy_iterator():
      epoch.extend(bytes(x) for x in batch["image"])
  assert len(set(epoch)) == 100


# --- augmentation ----------------------------------------------------------


def test_flip_and_cifar_augmentations_are_seeded_and_correct():
  config = tiny(**{"data.synthetic_size": "32"})
  images, _ = data.load_arrays(config, "train")
  originals = {bytes(x): x for x in images}
  for augmentation in ("flip", "cifar"):
    augmented = tiny(**{"data.synthetic_size": "32",
                        "data.augmentation": augmentation})
    batches = first_batches(augmented, 4, batch_size=8, seed=1)
    assert_batches_equal(batches, first_batches(augmented, 4, batch_size=8,
                                                seed=1))
    plain = first_batches(config, 4, batch_size=8, seed=1)
    changed = 0
    for got, before in zip(batches, plain):
      assert got["image"].shape == (8, 16, 16, 3)
      for image, source in zip(got["image"], before["image"]):
        source = originals[bytes(source)]
        changed += not np.array_equal(image, source)
        if augmentation == "flip":
          assert (np.array_equal(image, source) or
                  np.array_equal(image, source[:, ::-1]))
        else:
          padded = np.pad(source, [(4, 4), (4, 4), (0, 0)], mode="reflect")
          crops = [padded[i:i + 16, j:j + 16] for i in range(9)
                   for j in range(9)]
          assert any(np.array_equal(image, c) or
                     np.array_equal(image, c[:, ::-1]) for c in crops)
    assert changed > 8
  # Evaluation never applies random augmentation.
  eval_config = tiny(**{"data.synthetic_size": "32",
                        "data.augmentation": "cifar"})
  np.testing.assert_array_equal(data.load_arrays(eval_config, "test")[0],
                                data.load_arrays(config, "test")[0])


def test_center_crop_resizes_train_and_test(tmp_path):
  rng = np.random.RandomState(0)
  images = rng.randint(0, 256, size=(30, 24, 40, 3)).astype(np.uint8)
  path = write_npz(tmp_path / "wide.npz", images=images)
  config = tiny(**{"data.dataset": "npz", "data.path": path,
                   "data.augmentation": "center_crop"})
  for split in ("train", "test"):
    got, _ = data.load_arrays(config, split)
    assert got.shape[1:] == (16, 16, 3) and got.dtype == np.uint8
  train = first_batches(config, 2)
  assert_batches_equal(train, first_batches(config, 2))
  # A square image of the right size passes through unchanged.
  square = tf.constant(images[0, :16, :16])
  np.testing.assert_array_equal(
      preprocess.center_crop_and_resize(square, 16), square)
  # The crop is centred: 24x40 keeps columns 8..31 before resizing.
  centre = preprocess.center_crop_and_resize(tf.constant(images[0]), 24)
  np.testing.assert_array_equal(centre, images[0][:, 8:32])


# --- npz -------------------------------------------------------------------


def test_npz_train_test_arrays_with_labels(tmp_path):
  rng = np.random.RandomState(1)
  x_train = rng.randint(0, 256, (20, 16, 16, 3)).astype(np.uint8)
  x_test = rng.randint(0, 256, (6, 16, 16, 3)).astype(np.uint8)
  path = write_npz(tmp_path / "d.npz", x_train=x_train, x_test=x_test,
                   y_train=np.arange(20).reshape(20, 1) % 3,
                   y_test=np.arange(6) % 3)
  config = tiny(**{"data.dataset": "npz", "data.path": path})
  assert data.num_examples(config, "train") == 20
  images, labels = data.load_arrays(config, "test")
  np.testing.assert_array_equal(images, x_test)
  np.testing.assert_array_equal(labels["label"], np.arange(6) % 3)
  batch = first_batches(config, 1, batch_size=4)[0]
  assert batch["image"].shape == (4, 16, 16, 3)
  assert batch["label"].dtype == np.int64


def test_npz_single_array_splits_last_tenth_and_grey(tmp_path):
  x = np.random.RandomState(2).randint(0, 256, (50, 16, 16)).astype(np.uint8)
  path = write_npz(tmp_path / "grey.npz", x=x)
  config = tiny(**{"data.dataset": "npz", "data.path": path, "channels": "1"})
  train, train_labels = data.load_arrays(config, "train")
  test, _ = data.load_arrays(config, "test")
  np.testing.assert_array_equal(train, x[:45, ..., None])
  np.testing.assert_array_equal(test, x[45:, ..., None])
  assert (train_labels["label"] == -1).all()


def test_npz_real_cifar_subset():
  if not os.path.exists(CIFAR_SUBSET):
    pytest.skip(f"real CIFAR-10 subset not found at {CIFAR_SUBSET}")
  config = configs.override(configs.get("cifar10"), {
      "data.dataset": "npz", "data.path": CIFAR_SUBSET})
  with np.load(CIFAR_SUBSET) as archive:
    x_test, y_test = archive["x_test"], archive["y_test"]
    num_train = len(archive["x_train"])
  assert data.num_examples(config, "train") == num_train
  images, labels = data.load_arrays(config, "test", max_examples=300)
  np.testing.assert_array_equal(images, x_test[:300])
  np.testing.assert_array_equal(labels["label"],
                                y_test.reshape(-1)[:300].astype(np.int64))
  batch = first_batches(config, 1, batch_size=16)[0]
  assert batch["image"].shape == (16, 32, 32, 3)
  assert set(np.unique(batch["label"])) <= set(range(10))


# --- folder ----------------------------------------------------------------


def write_image(path, image, fmt="png"):
  encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(path, encode(tf.constant(image)))


def test_folder_of_images(tmp_path):
  rng = np.random.RandomState(3)
  for i in range(40):
    size = (24, 20) if i % 2 else (16, 16)
    image = rng.randint(0, 256, size + (3,)).astype(np.uint8)
    kind = "cats" if i % 4 < 2 else "dogs"
    fmt = "jpg" if i % 5 == 0 else "png"
    write_image(str(tmp_path / kind / f"img{i:02d}.{fmt}"), image, fmt)
  (tmp_path / "notes.txt").write_text("not an image")
  config = tiny(**{"data.dataset": "folder", "data.path": str(tmp_path)})
  train_count = data.num_examples(config, "train")
  test_count = data.num_examples(config, "test")
  assert train_count + test_count == 40 and 0 < test_count < 15
  images, labels = data.load_arrays(config, "train")
  assert images.shape == (train_count, 16, 16, 3)
  assert set(labels["label"]) == {0, 1}  # cats, dogs
  np.testing.assert_array_equal(data.load_arrays(config, "test")[0],
                                data.load_arrays(config, "test")[0])
  grey = tiny(**{"data.dataset": "folder", "data.path": str(tmp_path),
                 "channels": "1"})
  assert first_batches(grey, 1, batch_size=4)[0]["image"].shape == (
      4, 16, 16, 1)


# --- TFDS ------------------------------------------------------------------


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


# --- errors ----------------------------------------------------------------


def assert_value_error(config, *fragments, split="train"):
  with pytest.raises(ValueError) as error:
    data.make_dataset(config, split, 4, training=True)
  for fragment in fragments:
    assert fragment in str(error.value), str(error.value)


def test_bad_npz_inputs(tmp_path):
  def npz_config(path, **fields):
    return tiny(**{"data.dataset": "npz", "data.path": str(path), **fields})

  assert_value_error(npz_config(tmp_path / "missing.npz"), "not found",
                     "missing.npz")
  assert_value_error(npz_config(""), "data.path")
  floats = write_npz(tmp_path / "f.npz",
                     x_train=np.zeros((4, 16, 16, 3), np.float32),
                     x_test=np.zeros((4, 16, 16, 3), np.float32))
  assert_value_error(npz_config(floats), "x_train", "float32", "uint8")
  other = write_npz(tmp_path / "o.npz", pictures=np.zeros((4, 16), np.uint8),
                    names=np.array(["a"]))
  assert_value_error(npz_config(other), "no image arrays", "pictures",
                     "uint8", "names")
  rgb = write_npz(tmp_path / "rgb.npz",
                  images=np.zeros((20, 16, 16, 3), np.uint8))
  assert_value_error(npz_config(rgb, channels="1"), "3 channels",
                     "set channels=3")
  assert_value_error(npz_config(rgb, image_size="32"), "16x16",
                     "set image_size=16", "center_crop")
  rank = write_npz(tmp_path / "r.npz", images=np.zeros((20, 768), np.uint8))
  assert_value_error(npz_config(rank), "rank 2", "[N, H, W, C]")
  nchw = write_npz(tmp_path / "c.npz",
                   images=np.zeros((20, 3, 16, 16), np.uint8))
  assert_value_error(npz_config(nchw), "channels-first")
  half = write_npz(tmp_path / "h.npz",
                   x_train=np.zeros((20, 16, 16, 3), np.uint8))
  assert_value_error(npz_config(half), "x_test")


def test_bad_folder_and_names(tmp_path):
  assert_value_error(
      tiny(**{"data.dataset": "folder", "data.path": str(tmp_path / "no")}),
      "image folder not found")
  (tmp_path / "empty").mkdir()
  assert_value_error(
      tiny(**{"data.dataset": "folder", "data.path": str(tmp_path / "empty")}),
      "has no images", ".png")
  assert_value_error(tiny(**{"data.dataset": "mnist"}), "Unknown dataset",
                     "synthetic", "cifar10", "npz", "folder")
  assert_value_error(tiny(**{"data.augmentation": "rotate"}),
                     "Unknown augmentation", "center_crop")
  with pytest.raises(ValueError, match="Unknown split 'valid'"):
    data.make_dataset(tiny(), "valid", 4, training=False)
  with pytest.raises(ValueError, match="batch_size"):
    data.make_dataset(tiny(), "train", 0, training=True)


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
  assert_value_error(celeba, "256x256", "set image_size=256")


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
