"""A run's config.json: written when a run starts, checked when it resumes.

The file holds the resolved `Config` (every default and override applied),
so evaluation and export rebuild exactly the trained model from the run
directory alone, and `python -m train.main --workdir=DIR` continues the run
from it with no other flag.

A resumed run may change only what neither the model nor the data stream
depends on: the length of the run, the learning rate and the bookkeeping
intervals (`RESUMABLE_FIELDS`). Any other `train.*` or `data.*` change (a
different dataset, say) is refused unless explicitly allowed; a `model.*`
change is always refused, since the checkpoints would not fit. Every
accepted change is recorded in the file's "history" list:

    {"history": [{"time": "2026-12-02T14:00:00Z",
                  "changes": {"train.num_steps": [300, 600]}}], ...}
"""

import datetime
import json
from typing import Dict, List

import tensorflow as tf

from tfglv import configs
from tfglv.rundir import layout

# Fields a resumed run may change without being asked to.
RESUMABLE_FIELDS = (
    "train.num_steps", "train.learning_rate", "train.log_every",
    "train.sample_every", "train.eval_every", "train.eval_batches",
    "train.checkpoint_every", "train.keep_checkpoints",
    "train.divergence_intervals", "train.figure_scale")
# Fields a resumed run may change when allowed to: they change the
# training, not the model (`model.*` and `name`: never).
_ALLOWABLE_SECTIONS = ("train.", "data.")
_HISTORY = "history"


def _read(path: str) -> Dict:
  with tf.io.gfile.GFile(path, "r") as f:
    return json.load(f)


def load_config(path: str) -> configs.Config:
  """A run's config.json; ValueError naming the file if it does not parse."""
  try:
    values = _read(path)
    values.pop(_HISTORY, None)
    return configs.from_dict(values)
  except (ValueError, TypeError, AttributeError) as e:
    # Bad JSON, unknown or missing fields.
    raise ValueError(f"{path} is not a readable tfglv config: {e}") from None


def load_history(workdir: str) -> List[Dict]:
  """The changes accepted on resume, oldest first ([] for none)."""
  path = layout.config_path(workdir)
  if not tf.io.gfile.exists(path):
    return []
  return list(_read(path).get(_HISTORY, []))


def saved_config(workdir: str):
  """The Config of the run in `workdir`, or None if there is none yet."""
  path = layout.config_path(workdir)
  return load_config(path) if tf.io.gfile.exists(path) else None


def save_config(workdir: str, config: configs.Config, changes: Dict = None):
  """Writes `config` as the run's config.json (atomically), keeping its
  history and appending `changes` ({field: (old, new)}) to it."""
  history = load_history(workdir)
  if changes:
    history.append({
        "time": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "changes": {key: list(value) for key, value in changes.items()}})
  configs.save(config, layout.config_path(workdir),
               **({_HISTORY: history} if history else {}))


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


def check_resume_config(workdir: str, config: configs.Config,
                        allow_changes: bool = False) -> Dict:
  """Checks that `config` may continue the run in `workdir`.

  Returns the differences from the saved config ({} for a new run). Raises
  ValueError naming the fields when a `model.*` field differs (the
  checkpoints would not fit), or when another field outside
  `RESUMABLE_FIELDS` differs and `allow_changes` is False.
  """
  saved = saved_config(workdir)
  if saved is None:
    return {}
  differences = config_differences(saved, config)
  model_differences = {key: value for key, value in differences.items()
                       if not key.startswith(_ALLOWABLE_SECTIONS)}
  if model_differences:
    raise ValueError(
        f"workdir {workdir!r} holds a run of a different model; its "
        f"{layout.CONFIG_FILE} differs in "
        f"{describe_differences(model_differences)}. Use a new --workdir, or "
        f"the saved settings to continue that run (--workdir alone "
        f"continues it as saved).")
  refused = {key: value for key, value in differences.items()
             if key not in RESUMABLE_FIELDS}
  if refused and not allow_changes:
    raise ValueError(
        f"workdir {workdir!r} holds a run whose {layout.CONFIG_FILE} "
        f"differs in {describe_differences(refused)}. Leave these settings "
        f"out to continue the run as saved (--workdir alone continues it), "
        f"use a new --workdir, or pass --allow_config_changes to continue "
        f"with them (recorded in its {layout.CONFIG_FILE}). A resume may "
        f"change {', '.join(RESUMABLE_FIELDS)} without asking.")
  return differences
