"""Input pipelines: datasets, preprocessing, augmentation, batching.

Public API:
  make_dataset(config, split, batch_size, training, seed=0, repeat=None,
               input_context=None, start_batch=0)
      -> tf.data.Dataset of batched dicts {"image": uint8 [B,H,W,C],
         "label": int64 [B], ...}
  distributed_dataset_fn(config, split, global_batch_size, training, seed=0,
                         repeat=None, start_batch=0)
      -> fn(input_context) for strategy.distribute_datasets_from_function
  num_examples(config, split) -> int
  load_arrays(config, split, max_examples=None, batch_size=256)
      -> (images uint8 [N,H,W,C], {label key: int64 [N]})
  label_keys(config) -> int64 columns besides "image"
  prepare_tfds(config): builds a TFDS dataset offline from manual archives

Datasets (`DataConfig.dataset`): see DATASET_NAMES and the README section.
"""

from tfglv.data.pipeline import distributed_dataset_fn
from tfglv.data.pipeline import label_keys
from tfglv.data.pipeline import load_arrays
from tfglv.data.pipeline import make_dataset
from tfglv.data.pipeline import num_examples
from tfglv.data.preprocess import AUGMENTATIONS
from tfglv.data.sources import DATASET_NAMES
from tfglv.data.sources import SPLITS
from tfglv.data.synthetic import PALETTES
from tfglv.data.synthetic import SHAPE_NAMES
from tfglv.data.tfds_source import prepare as prepare_tfds
from tfglv.data.tfds_source import TFDS_DATASETS
