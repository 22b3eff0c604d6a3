"""Tests of tfglv.data.pipeline: order, seeds, resuming, sharding."""

import numpy as np
import pytest
import tensorflow as tf

from tfglv import data

from data_testlib import assert_batches_equal
from data_testlib import first_batches
from data_testlib import tiny


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


def test_bad_batch_size():
  with pytest.raises(ValueError, match="batch_size"):
    data.make_dataset(tiny(), "train", 0, training=True)
