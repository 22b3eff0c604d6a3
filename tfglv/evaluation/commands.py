"""Evaluation commands: one per claim of the paper, run on a training workdir.

Each command takes an `EvaluationRun` (see `runs.load_run`), writes its
files into `<workdir>/eval/` and returns a dict of its numbers, with the
printed table under "table" where it has one.

    task             paper             files in <workdir>/eval/
    bpd              Table 1           bpd_<split>.json, bpd_<split>.csv
                                       (+ diagnostics of z: tfglv.diagnostics)
    samples          Figs 12-16        samples_t<temperature>.png
    reconstructions  -                 reconstructions.png, .json
    switch           Fig 1, Figs 7-11  switch.png, .json (+ transfer rates:
                                       switch_score)
    interpolate      Fig 5, Fig 6      interpolation_<i>.png, .json
    probe            Table 4           probe.json, probe.csv
    fid              Table 2           fid.json

`run_tasks(workdir, tasks, options)` checks every option, builds the FID
feature network (if asked for) and only then restores the run, so bad input
fails before any slow work. The figures live in `figures`, the linear probe
in `probe_command`.
"""

import dataclasses
import math
from typing import Dict, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from tfglv import data
from tfglv import diagnostics
from tfglv import grids
from tfglv import rundir
from tfglv.data import sources
from tfglv.evaluation import fid as fid_lib
from tfglv.evaluation import figures
from tfglv.evaluation import probe_command
from tfglv.evaluation import representations
from tfglv.evaluation import runs
from tfglv.evaluation import switch_score

TASKS = ("bpd", "samples", "reconstructions", "switch", "interpolate", "probe",
         "fid")
# Paper Table 1, CIFAR-10 (8-bit), bits/dim.
PAPER_CIFAR10_BPD = 3.27


@dataclasses.dataclass
class EvaluationOptions:
  """Settings of all tasks; `check_options` validates them.

  max_examples, probe_max_train and probe_max_test: None means the whole
  split.
  """
  split: str = "test"
  max_examples: Optional[int] = None
  batch_size: int = 64
  posterior_samples: int = 5  # k of the bits/dim bounds (wolf evaluates k=5).
  temperatures: Tuple[float, ...] = representations.SAMPLE_TEMPERATURES
  num_images: int = 64  # Per sample grid, and per reconstruction grid / 4.
  num_pairs: int = 8  # In the switch grid.
  # Pairs whose switches are scored, and the classifier's training images.
  switch_score_pairs: int = switch_score.DEFAULT_SCORE_PAIRS
  classifier_max_train: Optional[int] = (
      switch_score.DEFAULT_CLASSIFIER_MAX_TRAIN)
  num_interpolations: int = 2
  probe_C: float = probe_command.DEFAULT_C
  probe_max_train: Optional[int] = None
  probe_max_test: Optional[int] = None
  probe_max_iter: int = 1000
  inception_weights: str = ""
  fid_num_samples: int = 1000
  fid_temperature: float = 1.0
  seed: int = 0
  progress: bool = True
  # Enlargement of the figures' cells (nearest neighbour); 0: >= 96 px.
  figure_scale: int = 0
  # Where results go; "" for <workdir>/eval.
  output_dir: str = ""


def resolve_tasks(tasks: Sequence[str], fid_available: bool) -> Tuple[str, ...]:
  """Expands "all" (FID only when a feature network is available)."""
  tasks = [task.strip() for task in tasks if task.strip()]
  unknown = sorted(set(tasks) - set(TASKS) - {"all"})
  if unknown or not tasks:
    raise ValueError(f"Unknown or missing tasks {unknown}; allowed: "
                     f"{', '.join(TASKS)}, all.")
  if "all" in tasks:
    if not fid_available:
      logging.info("Task 'all' skips fid: no Inception weights given "
                   "(--inception_weights).")
    return tuple(t for t in TASKS if t != "fid" or fid_available)
  return tuple(dict.fromkeys(tasks))


def check_options(options: EvaluationOptions) -> EvaluationOptions:
  """Raises ValueError naming the bad option and the allowed values."""
  sources.check_split(options.split)
  runs.check_count("max_examples", options.max_examples, allow_none=True)
  for name in ("probe_max_train", "probe_max_test", "classifier_max_train"):
    runs.check_count(name, getattr(options, name), allow_none=True)
  for name in ("batch_size", "posterior_samples", "num_images", "num_pairs",
               "num_interpolations", "probe_max_iter", "fid_num_samples",
               "switch_score_pairs"):
    runs.check_count(name, getattr(options, name))
  if options.fid_num_samples < 2:
    raise ValueError(f"fid_num_samples must be >= 2 (a covariance needs two "
                     f"feature vectors); got {options.fid_num_samples}.")
  if not 0 < options.probe_C < math.inf:
    raise ValueError(f"probe_C must be > 0 and finite; got {options.probe_C}.")
  grids.cell_scale(1, 1, options.figure_scale)  # Raises for a bad scale.
  temperatures = representations.check_temperatures(options.temperatures)
  representations.check_temperatures([options.fid_temperature])
  return dataclasses.replace(options, temperatures=temperatures)


# ----------------------------------------------------------------- bits/dim
def evaluate_bits_per_dim(run: runs.EvaluationRun, split: str = "test",
                          posterior_samples: int = 5,
                          max_examples: Optional[int] = None,
                          batch_size: int = 64, seed: int = 0,
                          progress: bool = True) -> Dict:
  """Bits/dim bounds on a split, averaged over its images.

  "bpd" is the k-sample negative ELBO (DESIGN §1, as wolf reports it),
  "iw_bpd" the importance-weighted bound -log mean_k exp(elbo_k) (tighter;
  equal to "bpd" for the exact "glow"), "nll" and "kl" the two terms of the
  ELBO; each with its standard error over images. Batch i draws its
  dequantisation and posterior noise from the seed (seed, i). Also the
  diagnostics of z over these images (`diagnostics.summarize`: KL in
  bits/image, active units, the mixture estimate of I(x; z)); a z near
  collapse is logged as a WARNING and ends the table.
  """
  sources.check_split(split)
  runs.check_count("posterior_samples", posterior_samples)
  runs.check_count("max_examples", max_examples, allow_none=True)
  total = data.num_examples(run.config, split)
  if max_examples is not None:
    total = min(total, max_examples)
  if total < 1:
    raise ValueError(f"The {split} split of {run.config.data.dataset} is "
                     f"empty.")
  dataset = data.make_dataset(run.config, split, batch_size, training=False)
  if max_examples is not None:
    dataset = dataset.unbatch().take(max_examples).batch(batch_size)
  bar = runs.ImageProgress(total, enabled=progress)
  per_image = {key: [] for key in ("loss", "iw_loss", "nll", "kl")}
  moments = ([], [])  # Posterior means and log-variances of z.
  running_sum, running_count = 0.0, 0
  for index, batch in enumerate(dataset):
    losses = run.model.compute_losses(
        batch["image"], tf.constant([seed % (2**31 - 1), index], tf.int32),
        training=False, num_samples=posterior_samples)
    for key, values in per_image.items():
      values.append(losses[key].numpy().astype(np.float64))
    for part, moment in zip(moments, run.model.posterior(batch["image"])):
      part.append(moment.numpy())
    running_sum += float(np.sum(per_image["loss"][-1]))
    running_count += len(per_image["loss"][-1])
    bar.add(len(per_image["loss"][-1]), {"bpd": running_sum / running_count})
  values = {key: np.concatenate(parts) for key, parts in per_image.items()}
  count = len(values["loss"])
  result = {"split": split, "num_images": count,
            "posterior_samples": posterior_samples, "step": run.step,
            "config": run.config.name, "model": run.config.model.variant,
            "dataset": run.config.data.dataset, "seed": seed,
            # What "per dim" means here: every value of an H x W x C image
            # at n_bits (no padding), so tables of other sizes don't compare.
            "image_shape": list(run.config.model.image_shape),
            "n_bits": run.config.model.n_bits}
  names = {"loss": "bpd", "iw_loss": "iw_bpd", "nll": "nll", "kl": "kl"}
  for key, name in names.items():
    result[name] = float(np.mean(values[key]))
    result[name + "_stderr"] = (float(np.std(values[key], ddof=1) /
                                      math.sqrt(count)) if count > 1 else 0.0)
  if not all(math.isfinite(result[name]) for name in names.values()):
    logging.warning("Some bits/dim are not finite: %s", result)
  result.update(diagnostics.summarize(
      *(np.concatenate(part) for part in moments), result["kl"],
      run.model.num_dims, seed=seed))
  warning = diagnostics.collapse_warning(result, f"on the {split} split")
  if warning:
    logging.warning("%s", warning)
  result["table"] = format_bits_per_dim_table(result, warning)
  rows = [(name, result[name], result[name + "_stderr"])
          for name in names.values()]
  run.write_json(f"bpd_{split}.json", result)
  run.write_csv(f"bpd_{split}.csv", ("metric", "bits_per_dim", "stderr"),
                rows)
  return result


def format_bits_per_dim_table(result: Dict,
                              warning: Optional[str] = None) -> str:
  """The bits/dim results as a printed table (and the collapse warning)."""
  k = result["posterior_samples"]
  height, width, channels = result["image_shape"]
  lines = [
      f"Bits/dim on the {result['split']} split ({result['num_images']} "
      f"images, k = {k} posterior samples, step {result['step']}); per "
      f"value of the {height}x{width}x{channels} images, "
      f"{height * width * channels} dims, at {result['n_bits']} bits",
      f"{'Bound':<36}{'bits/dim':>10}{'std. err':>10}",
  ]
  for label, name in (
      (f"negative ELBO (mean of {k} samples)", "bpd"),
      (f"importance weighted (k = {k})", "iw_bpd"),
      ("  ELBO term E_q[-log p(x|z)]", "nll"),
      ("  ELBO term KL(q(z|x) || p(z))", "kl")):
    lines.append(f"{label:<36}{result[name]:>10.4f}"
                 f"{result[name + '_stderr']:>10.4f}")
  lines.append(f"(paper Table 1, CIFAR-10 at 8 bits: {PAPER_CIFAR10_BPD} "
               f"bits/dim)")
  if result.get("latent_dim"):
    lines.append(f"Global code z: {diagnostics.format_summary(result)}")
  return "\n".join(lines + ([warning] if warning else []))


# --------------------------------------------------------------------- FID
def inception_feature_fn(inception_weights: str) -> fid_lib.FeatureFn:
  """InceptionV3 pool features from a weights file (or "imagenet")."""
  if not inception_weights:
    raise ValueError(
        "FID needs InceptionV3 weights: --inception_weights=<path of the "
        "Keras no-top InceptionV3 weights, e.g. inception_v3_weights_tf_dim_"
        "ordering_tf_kernels_notop.h5> (or 'imagenet' to let Keras download "
        "them, which needs network access).")
  return fid_lib.InceptionFeatureExtractor(inception_weights)


def evaluate_fid(run: runs.EvaluationRun, feature_fn: fid_lib.FeatureFn,
                 num_samples: int = 1000, temperature: float = 1.0,
                 split: str = "test", max_examples: Optional[int] = None,
                 seed: int = 0, batch_size: int = 64,
                 feature_name: str = "custom") -> Dict:
  """FID between `num_samples` samples and the images of a split.

  The paper (Table 2) used 50k samples and the TF "FID Inception" graph;
  scores from fewer samples are biased upwards and comparable only at the
  same sample counts and feature network.
  """
  sources.check_split(split)
  real = runs.load_images(run, split, max_examples, minimum=2, what="FID")
  samples = representations.sample_in_batches(
      run.model, num_samples, temperature=temperature, seed=seed,
      batch_size=batch_size)
  score = fid_lib.compute_fid(real, samples, feature_fn, batch_size=50)
  result = {"fid": score, "num_samples": num_samples, "num_real": len(real),
            "split": split, "temperature": temperature, "seed": seed,
            "feature_network": feature_name, "step": run.step,
            "paper_cifar10_fid": 37.52}
  result["table"] = (f"FID ({feature_name} features): {score:.2f} "
                     f"({num_samples} samples at temperature "
                     f"{temperature:g} vs {len(real)} {split} images; paper "
                     f"Table 2, CIFAR-10, 50k samples: 37.52)")
  run.write_json("fid.json", result)
  return result


# -------------------------------------------------------------- dispatcher
def run_tasks(workdir: str, tasks: Sequence[str],
              options: Optional[EvaluationOptions] = None,
              checkpoint: Optional[str] = None,
              feature_fn: Optional[fid_lib.FeatureFn] = None,
              run: Optional[runs.EvaluationRun] = None) -> Dict[str, Dict]:
  """Runs `tasks` (names from TASKS, or "all") on the run in `workdir`.

  Args:
    workdir: a training run's directory.
    tasks: task names; "all" runs every task (FID only with a feature
      network: `feature_fn` or `options.inception_weights`).
    options: settings of every task; default: EvaluationOptions().
    checkpoint: a checkpoint path to evaluate instead of the latest.
    feature_fn: images -> features for FID (tests pass a small network);
      default: InceptionV3 with `options.inception_weights`.
    run: an already restored run of `workdir` (skips the restore; its own
      `figure_scale` applies).

  Returns:
    {task: its result dict}.
  """
  options = check_options(options or EvaluationOptions())
  tasks = resolve_tasks(tasks, fid_available=bool(
      feature_fn or options.inception_weights))
  feature_name = "custom"
  if "fid" in tasks and feature_fn is None:
    feature_fn = inception_feature_fn(options.inception_weights)
    feature_name = f"InceptionV3 ({options.inception_weights})"
  if run is None:
    runs.check_run_directory(workdir)
  output_dir = options.output_dir or runs.default_output_dir(
      run.workdir if run is not None else workdir)
  # Before any slow work: a result that cannot be written is lost.
  rundir.layout.check_writable(
        output_dir, "The evaluation output directory",
      "" if options.output_dir else "; pass --output_dir (e.g. a "
      "directory of your own) to write the results elsewhere")
  with rundir.lock.DirectoryLock(output_dir, "evaluation"):
    if run is None:
      run = runs.load_run(workdir, checkpoint)
      run.figure_scale = options.figure_scale
    run.output_directory = options.output_dir
    return _run_each(run, workdir, tasks, options, feature_fn, feature_name,
                     explicit=set(task.strip() for task in tasks))


def _run_each(run, workdir, tasks, options, feature_fn, feature_name,
              explicit=()):
  # A split name can be valid yet not exist for this dataset's files.
  data.num_examples(run.config, options.split)
  tasks = switch_score.runnable_tasks(run, tasks, explicit)
  results = {}
  for task in tasks:
    logging.info("Evaluating %s of %s (step %d).", task, workdir, run.step)
    if task == "bpd":
      results[task] = evaluate_bits_per_dim(
          run, options.split, options.posterior_samples, options.max_examples,
          options.batch_size, options.seed, options.progress)
    elif task == "samples":
      results[task] = figures.write_samples(
          run, options.temperatures, options.num_images, options.seed,
          options.batch_size)
    elif task == "reconstructions":
      results[task] = figures.write_reconstructions(
          run, options.split, max(1, options.num_images // 4),
          options.batch_size)
    elif task == "switch":
      results[task] = switch_score.evaluate_switch(
          run, options.split, options.num_pairs, options.switch_score_pairs,
          options.classifier_max_train, options.batch_size, options.seed)
    elif task == "interpolate":
      results[task] = figures.write_interpolation_grids(
          run, options.split, options.num_interpolations)
    elif task == "probe":
      results[task] = probe_command.run_linear_probe(
          run, C=options.probe_C, max_train=options.probe_max_train,
          max_test=options.probe_max_test, max_iter=options.probe_max_iter,
          batch_size=options.batch_size, progress=options.progress)
    elif task == "fid":
      results[task] = evaluate_fid(
          run, feature_fn, options.fid_num_samples, options.fid_temperature,
          options.split, options.max_examples, options.seed,
          options.batch_size, feature_name)
  return results
