"""A run's config.json: written when a run starts, checked when it resumes.

The file holds the resolved `Config` (every default and override applied),
so evaluation and export rebuild exactly the trained model from the run
directory alone. A run may continue under changed `train.*` or `data.*`
fields (e.g. a longer `train.num_steps`); any other field defines the model,
and a checkpoint only fits a config that agrees on all of them.
"""

from typing import Dict

import tensorflow as tf

from tfglv import configs
from tfglv.rundir import layout

# Fields a resumed run may change: everything else defines the model.
_RUN_SECTIONS = ("train.", "data.")


def load_config(path: str) -> configs.Config:
  """A run's config.json; ValueError naming the file if it does not parse."""
  try:
    return configs.load(path)
  except (ValueError, TypeError) as e:  # Bad JSON, unknown or missing fields.
    raise ValueError(f"{path} is not a readable tfglv config: {e}") from None


def save_config(workdir: str, config: configs.Config):
  """Writes `config` as the run's config.json (atomically)."""
  configs.save(config, layout.config_path(workdir))


def _flatten(values: Dict, prefix: str = "") -> Dict:
  flat = {}
  for key, value in values.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def config_differences(old: configs.Config, new: configs.Config) -> Dict:
  """{field: (old value, new value)} for every field that differs."""
  old_flat = _flatten(configs.to_dict(old))
  new_flat = _flatten(configs.to_dict(new))
  return {key: (old_flat.get(key), new_flat.get(key))
          for key in sorted(set(old_flat) | set(new_flat))
          if old_flat.get(key) != new_flat.get(key)}


def describe_differences(differences: Dict) -> str:
  """"field: old -> new; ..." for a `config_differences` result."""
  return "; ".join(f"{key}: {old!r} -> {new!r}"
                   for key, (old, new) in differences.items())


def check_resume_config(workdir: str, config: configs.Config) -> Dict:
  """Checks that `config` may continue the run in `workdir`.

  Returns the differences in `train`/`data` fields (allowed, e.g. a longer
  `train.num_steps`); raises ValueError when a model field differs, since
  the checkpoints would not fit the model.
  """
  path = layout.config_path(workdir)
  if not tf.io.gfile.exists(path):
    return {}
  saved = load_config(path)
  differences = config_differences(saved, config)
  model_differences = {key: value for key, value in differences.items()
                       if not key.startswith(_RUN_SECTIONS)}
  if model_differences:
    raise ValueError(
        f"workdir {workdir!r} holds a run of a different model; its "
        f"{layout.CONFIG_FILE} differs in "
        f"{describe_differences(model_differences)}. Use a new --workdir, or "
        f"the saved settings to continue that run.")
  return differences
