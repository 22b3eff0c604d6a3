r"""Does z take the global factors? Trains glvae, then measures it (issue 13).

For each setting (a model and training recipe, with or without the knobs
against collapse: free bits, KL warm-up) this trains glvae on the embedded
synthetic data, or on a user .npz, for a fixed budget, then prints one table:

  * bits/dim on the test split (the true negative ELBO, whatever the
    training objective), KL bits per image, active units of z;
  * linear-probe test accuracy of z, v and raw pixels for every label column
    (synthetic: shape, palette; an .npz: its `y_*` / `label` columns);
  * switch transfer per factor: how often decode(z_b, v_a) takes the factor
    from the z donor, and how often from the v donor.

Decoupling works where the global factors are predicted from z far above v
and follow z in the switch.

  python -m bench.decoupling                       # all settings, 15 min each
  python -m bench.decoupling --minutes=3 --settings=plain,free_bits
  python -m bench.decoupling --npz=my_images.npz --steps=2000
  python -m bench.decoupling --settings= \
      --custom='mine:train.free_bits=0.25;model.decoder.num_steps=[2, 2]'

--settings takes names from SETTINGS; --custom (repeatable) adds a setting
of your own, `name:field=value;field=value` (fields as in `train.main
--set`). Runs go to a
new directory (--workdir_root, new or empty; default a new temporary one);
nothing is deleted; --resume continues them (a run that reached its
steps is only evaluated again). Settings train one after another by default
(each with the whole machine, so the wall-clock budget means what it says);
--parallel trains them at once, one process each.
"""

import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np

from absl import app
from absl import flags
from absl import logging

from bench import harness

from tfglv import configs
from tfglv import training
from tfglv.evaluation import commands

FLAGS = flags.FLAGS

# The tiny-scale model of the table (16x16 synthetic; the size and channels
# follow an --npz): `tiny`'s flow with a wider encoder and a 16-dim z, so
# that z has room for both synthetic factors (log2 6 + log2 8 bits). The
# README ("Does z take the global factors?") has its table and the other
# flows tried.
MODEL = {
    "model.image_size": "16", "model.latent_dim": "16",
    "model.encoder.channels": "[16, 32]", "model.encoder.out_channels": "8",
    "model.prior.num_steps": "1", "model.prior.hidden_units": "32",
    "model.decoder.num_steps": "[1, [1, 1], 1]",
    "model.decoder.hidden_channels": "[8, 16, 16]",
}
RECIPE = {
    "train.strategy": "one_device", "train.batch_size": "32",
    "train.learning_rate": "1e-3", "train.warmup_steps": "20",
    "train.log_every": "100", "train.checkpoint_every": "500",
    "train.eval_every": "1000000", "train.sample_every": "1000000",
}
# Named settings: overrides on top of MODEL and RECIPE.
SETTINGS = {
    "plain": {},
    "free_bits": {"train.free_bits": "2"},
    "kl_warmup": {"train.kl_warmup_steps": "1000"},
    "free_bits+warmup": {"train.free_bits": "2",
                         "train.kl_warmup_steps": "1000"},
}


def define_flags():
  """The command's flags; defined only when run (another bench in the same
  process, e.g. a test session, may define flags of the same names)."""
  flags.DEFINE_string("npz", None,
                      "Any .npz of uint8 images x_train, x_test [N, H, W, C] "
                      "with class labels y_train, y_test (the probe and the "
                      "switch need them); the model takes their size. "
                      "Default: the embedded synthetic data at 16x16.")
  flags.DEFINE_list("settings", list(SETTINGS),
                    f"Named settings to train, from {', '.join(SETTINGS)}.")
  flags.DEFINE_multi_string("custom", [], "A setting of your own, "
                            "name:field=value;field=value (repeatable).")
  flags.DEFINE_float("minutes", 15.0, "Training wall time per setting.")
  flags.DEFINE_integer("steps", 0, "Train this many steps instead of a wall "
                       "time (0: use --minutes).")
  flags.DEFINE_multi_string("set", [], "Overrides for every setting, "
                            "field=value.")
  flags.DEFINE_integer("eval_images", 1000, "Test images of the bits/dim and "
                       "the probe's test split.")
  flags.DEFINE_integer("probe_train_images", 4000, "Train images of the "
                       "linear probe and of the switch's classifier.")
  flags.DEFINE_integer("switch_pairs", 500, "Test pairs whose switches are "
                       "scored.")
  flags.DEFINE_bool("parallel", False, "Train the settings at once, one "
                    "process each.")
  flags.DEFINE_string("workdir_root", None, "A new or empty directory for the "
                      "runs; default: a new temporary directory.")
  flags.DEFINE_bool("resume", False, "Continue the runs already in "
                    "--workdir_root (a finished one is only evaluated again).")
  flags.DEFINE_string("result_json", None, "Internal: where a child process "
                      "writes its row.")


def parse_setting(text: str) -> Tuple[str, Dict[str, str]]:
  """A name from SETTINGS, or `name:field=value;...`; returns (name, values).
  """
  name, colon, rest = text.partition(":")
  name = name.strip()
  if not colon:
    if name not in SETTINGS:
      raise ValueError(f"Unknown setting {name!r}; allowed: "
                       f"{', '.join(SETTINGS)}, or name:field=value;field=value.")
    return name, dict(SETTINGS[name])
  values = {}
  for assignment in filter(None, (part.strip() for part in rest.split(";"))):
    field, equals, value = assignment.partition("=")
    if not equals or not field:
      raise ValueError(f"Setting {text!r}: {assignment!r} is not "
                       f"field=value.")
    values[field.strip()] = value.strip()
  if not name or "/" in name:
    raise ValueError(f"Setting {text!r} needs a name without '/' before "
                     f"the ':'.")
  return name, values


def data_values(npz: str) -> Dict[str, str]:
  """The data fields, and the image shape an .npz sets."""
  if not npz:
    return {"data.dataset": "synthetic", "data.synthetic_size": "8192",
            "data.augmentation": "none"}
  with np.load(npz) as archive:
    _, height, _, channels = archive["x_train"].shape
  return {"data.dataset": "npz", "data.path": os.path.abspath(npz),
          "data.augmentation": "none", "model.image_size": str(height),
          "model.channels": str(channels)}


def setting_config(values: Dict[str, str], npz: str, steps: int,
                   extra: List[str] = ()) -> configs.Config:
  """tiny + MODEL + RECIPE + data + the setting's values + --set."""
  merged = dict(MODEL)
  merged.update(RECIPE)
  merged.update(data_values(npz))
  merged["train.num_steps"] = str(steps or 1000000)
  merged.update(values)
  for assignment in extra:
    field, _, value = assignment.partition("=")
    merged[field] = value
  return configs.override(configs.get("tiny"), merged)


def _options(workdir: str) -> commands.EvaluationOptions:
  return commands.EvaluationOptions(
      max_examples=FLAGS.eval_images, probe_max_train=FLAGS.probe_train_images,
      probe_max_test=FLAGS.eval_images, classifier_max_train=(
          FLAGS.probe_train_images), switch_score_pairs=FLAGS.switch_pairs,
      num_pairs=8, progress=False, output_dir=os.path.join(workdir, "eval"))


def row_of(name: str, summary: Dict, results: Dict) -> Dict:
  """The table row of one trained and evaluated setting."""
  bpd, probe, switch = results["bpd"], results["probe"], results["switch"]
  row = {"setting": name, "step": summary["step"],
         "train_seconds": summary.get("train_seconds_after_first_step"),
         "bpd": bpd["bpd"], "kl_bits_per_image": bpd["kl_bits_per_image"],
         "active_units": bpd["active_units"], "latent_dim": bpd["latent_dim"],
         "probe": probe["accuracy"], "chance": probe["chance"],
         "aliases": probe["aliases"],
         "switch": {factor: {"follows_z": rates["follows_z"],
                             "follows_v": rates["follows_v"]}
                    for factor, rates in switch["transfer"].items()}}
  return row


def train_and_measure(name: str, values: Dict[str, str]) -> Dict:
  config = setting_config(values, FLAGS.npz, FLAGS.steps, FLAGS.set)
  workdir = os.path.join(FLAGS.workdir_root, name)
  started = time.time()
  summary = training.Trainer(config, workdir).run(
      max_train_seconds=None if FLAGS.steps else 60 * FLAGS.minutes)
  results = commands.run_tasks(workdir, ["bpd", "probe", "switch"],
                               _options(workdir))
  row = row_of(name, summary, results)
  row["overrides"] = values
  logging.info("%s done in %.0f s", name, time.time() - started)
  return row


def _percent(value) -> str:
  return "-" if value is None else f"{100 * value:.0f}"


def format_table(rows: List[Dict]) -> str:
  """One line per setting; per factor: probe z/v/pixels and switch z/v (%)."""
  factors = list(rows[0]["probe"]) if rows else []
  aliases = rows[0].get("aliases", {}) if rows else {}
  titles = {f: "=".join([f] + list(aliases.get(f) or [])) for f in factors}
  header = ("| setting | steps | bpd | KL bits/img | active |" + "".join(
      f" {titles[f]} probe z/v/px % | {titles[f]} switch z/v % |"
      for f in factors))
  lines = [header, "|" + "---|" * (5 + 2 * len(factors))]
  for row in rows:
    cells = [row["setting"], str(row["step"]), f"{row['bpd']:.3f}",
             f"{row['kl_bits_per_image']:.1f}",
             f"{row['active_units']}/{row['latent_dim']}"]
    for factor in factors:
      probe = row["probe"].get(factor, {})
      cells.append("/".join(_percent(probe.get(name))
                            for name in ("z", "v", "raw pixels")))
      switch = row["switch"].get(factor, {})
      cells.append("/".join(_percent(switch.get(name))
                            for name in ("follows_z", "follows_v")))
    lines.append("| " + " | ".join(cells) + " |")
  if rows:
    lines.append("chance (majority class) %: " + ", ".join(
        f"{titles[f]} {_percent(rows[0]['chance'][f])}" for f in factors))
  return "\n".join(lines)


def run_in_processes(settings: List[str]) -> List[Dict]:
  children = []
  for text in settings:
    name, _ = parse_setting(text)
    result = os.path.join(FLAGS.workdir_root, f"{name}.json")
    args = [sys.executable, "-m", "bench.decoupling", "--settings=",
            f"--custom={text}" if ":" in text else f"--settings={text}",
            f"--result_json={result}", "--noparallel",
            f"--minutes={FLAGS.minutes}", f"--steps={FLAGS.steps}",
            f"--eval_images={FLAGS.eval_images}",
            f"--probe_train_images={FLAGS.probe_train_images}",
            f"--switch_pairs={FLAGS.switch_pairs}",
            f"--workdir_root={FLAGS.workdir_root}"]
    args += [f"--npz={FLAGS.npz}"] if FLAGS.npz else []
    args += [f"--set={value}" for value in FLAGS.set]
    children.append(harness.start_child(
        name, args[1:], os.path.join(FLAGS.workdir_root, f"{name}.log"),
        result))
  return harness.collect_rows(children)


def main(argv):
  del argv
  if FLAGS.npz and not os.path.exists(FLAGS.npz):
    raise app.UsageError(f"--npz {FLAGS.npz} not found: pass an .npz of "
                         "uint8 x_train, x_test (and label columns), or "
                         "leave it out for the embedded synthetic data.")
  try:
    texts = FLAGS.settings + FLAGS.custom
    if not texts:
      raise ValueError(f"No settings: pass --settings (from "
                       f"{', '.join(SETTINGS)}) or --custom.")
    parsed = [parse_setting(text) for text in texts]
    names = [name for name, _ in parsed]
    if len(set(names)) < len(names):
      raise ValueError(f"Settings need distinct names; got {names}.")
    for name, values in parsed:  # Every bad field before any training.
      setting_config(values, FLAGS.npz, FLAGS.steps, FLAGS.set)
  except ValueError as e:
    raise app.UsageError(str(e))
  if FLAGS.result_json:  # A child of run_in_processes.
    row = train_and_measure(*parsed[0])
    with open(FLAGS.result_json, "w") as f:
      json.dump(row, f)
    return
  if FLAGS.workdir_root is None:
    FLAGS.workdir_root = tempfile.mkdtemp(prefix="tfglv_decoupling_")
  elif (not FLAGS.resume and os.path.exists(FLAGS.workdir_root) and
        os.listdir(FLAGS.workdir_root)):
    raise app.UsageError(f"--workdir_root {FLAGS.workdir_root} is not empty; "
                         "pass a new or empty directory, or --resume to "
                         "continue its runs.")
  os.makedirs(FLAGS.workdir_root, exist_ok=True)
  print(f"Runs in {FLAGS.workdir_root}", flush=True)
  if FLAGS.parallel:
    rows = run_in_processes(texts)
  else:
    rows = [train_and_measure(name, values) for name, values in parsed]
  budget = (f"{FLAGS.steps} steps" if FLAGS.steps else
            f"{FLAGS.minutes:g} min of training")
  print(f"\nglvae, {budget} per setting; probe: linear SVM test accuracy; "
        f"switch: % of switched images taking the factor from the z / v "
        f"donor\n{format_table(rows)}")
  with open(os.path.join(FLAGS.workdir_root, "decoupling.json"), "w") as f:
    json.dump(rows, f, indent=1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
