"""Does every named config train under its paper recipe, at full size?

    python -m bench.recipes --npz=/path/to/cifar10_subset.npz
    python -m bench.recipes --configs=imagenet64 --batch_sizes=imagenet64=4

For each named config at its paper width and depth (a divergence needs
both: DESIGN section 4), this runs the real trainer (`train.main`'s
`Trainer`: AdamW, warm-up, decay, weight decay of the recipe, ActNorm and
weight-norm data-dependent init) for `--steps` steps, logging every step,
and prints one row per config: bits/dim at the start, its minimum, at the
end, the highest bits/dim after step 10 minus the bits/dim at step 10 (a
divergence makes it large), the largest gradient norm (bits/dim units), the
skipped steps, peak memory and images per CPU-second.

Data: `cifar10` trains on `--npz` (an .npz with uint8 `x_train` [N, 32, 32,
3], e.g. the CIFAR-10 subset) when given, else on the embedded synthetic
data; `imagenet64`, `lsun128` and `celebahq256` train on the embedded
synthetic data at their image sizes (no files needed). The batch sizes
default to what fits in 24 GB of CPU memory, far below the recipes' 40-512,
so the curves are noisier than the authors'.

Each config runs in its own subprocess, so peak memory is per config. The
workdirs go to a fresh temporary folder, deleted at the end unless
`--keep_workdirs`; nothing else is written.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

DEFAULT_BATCH = {"cifar10": 16, "imagenet64": 4, "lsun128": 2,
                 "celebahq256": 1, "tiny": 16}
PAPER_CONFIGS = ["cifar10", "imagenet64", "lsun128", "celebahq256"]


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_list("configs", PAPER_CONFIGS, "Named configs to run (also: "
                    "tiny, a smoke test).")
  flags.DEFINE_integer("steps", 100, "Training steps per config.")
  flags.DEFINE_list("batch_sizes", [],
                    "Overrides as config=batch, e.g. cifar10=64. Defaults: " +
                    ", ".join(f"{k}={v}" for k, v in DEFAULT_BATCH.items()))
  flags.DEFINE_string("npz", "", "Images for cifar10 (uint8 x_train "
                      "[N, 32, 32, 3]); empty: the embedded synthetic data.")
  flags.DEFINE_string("model", "glvae", "Model variant.")
  flags.DEFINE_integer("init_batch_size", 256,
                       "Images for the data-dependent init (the recipe: 1024).")
  flags.DEFINE_bool("keep_workdirs", False, "Keep the runs' workdirs.")
  flags.DEFINE_string("one", "", "Internal: run this one config and print "
                      "its result as JSON.")
  flags.DEFINE_string("workdir", "", "Internal: the run's workdir.")


FLAGS = flags.FLAGS


def _batch_sizes():
  sizes = dict(DEFAULT_BATCH)
  for item in FLAGS.batch_sizes:
    name, _, value = item.partition("=")
    if name not in DEFAULT_BATCH or not value.isdigit() or int(value) < 1:
      raise app.UsageError(f"--batch_sizes takes config=batch with a config "
                           f"in {', '.join(DEFAULT_BATCH)} and batch >= 1; "
                           f"got {item!r}.")
    sizes[name] = int(value)
  return sizes


def curve_summary(history):
  """The row's figures from a trainer history logged every step."""
  bpd = [record["bpd"] for record in history]
  grads = [record["gradient_norm"] for record in history]
  at_10 = bpd[min(9, len(bpd) - 1)]
  return {
      "start": bpd[0], "min": min(bpd), "end": bpd[-1],
      "rise_after_step_10": max(bpd[9:] or bpd[-1:]) - at_10,
      "max_gradient_norm": max(grads),
      "skipped": int(history[-1]["skipped_steps"]),
  }


def run_one(name: str, workdir: str) -> dict:
  """Trains config `name` in this process and returns its summary row."""
  import warnings  # pylint: disable=g-import-not-at-top
  warnings.filterwarnings("ignore")
  import tfglv  # pylint: disable=g-import-not-at-top
  import tfglv.training  # pylint: disable=g-import-not-at-top

  config = tfglv.configs.get(name, variant=FLAGS.model)
  batch = _batch_sizes()[name]
  data = ({"data.dataset": "npz", "data.path": FLAGS.npz}
          if name == "cifar10" and FLAGS.npz else
          {"data.dataset": "synthetic", "data.augmentation": "none",
           "data.synthetic_size": str(max(4 * batch, 256))})
  config = tfglv.configs.override(config, {
      **data, "train.batch_size": str(batch),
      "train.num_steps": str(FLAGS.steps), "train.log_every": "1",
      "train.init_batch_size": str(FLAGS.init_batch_size),
      "train.eval_every": str(10 * FLAGS.steps), "train.eval_batches": "1",
      "train.sample_every": str(10 * FLAGS.steps),
      "train.checkpoint_every": str(10 * FLAGS.steps),
      "train.strategy": "one_device"})
  from bench import harness  # pylint: disable=g-import-not-at-top
  trainer = tfglv.training.Trainer(config, workdir)
  meter = harness.StepMeter(trainer.train_step.train_step)
  trainer.train_step.train_step = meter
  summary = trainer.run()
  history = summary["train_history"]
  row = {"config": name, "model": config.model.variant, "batch": batch,
         "data": config.data.dataset, "steps": summary["step"],
         "parameters": summary["num_parameters"], **curve_summary(history)}
  # The steps after the first (traced) one, as train_seconds counts them.
  row["train_seconds"] = summary["train_seconds_after_first_step"]
  row["images_per_second"], row["images_per_cpu_second"] = harness.speeds(
      batch * meter.calls, meter.timing)
  row["peak_rss_gb"] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  row["bpd_curve"] = [round(record["bpd"], 4) for record in history]
  return row


def _print_table(rows):
  header = (f"{'config':<12} {'batch':>5} {'data':<9} {'params':>8} "
            f"{'steps':>5} {'start':>7} {'min':>7} {'end':>7} "
            f"{'rise>10':>7} {'max|g|':>8} {'skip':>4} {'peak GB':>7} "
            f"{'img/s':>6} {'img/CPU-s':>9}")
  print(header)
  print("-" * len(header))
  for r in rows:
    if "error" in r:
      print(f"{r['config']:<12} failed: {r['error']}")
      continue
    print(f"{r['config']:<12} {r['batch']:>5} {r['data']:<9} "
          f"{r['parameters'] / 1e6:>7.2f}M {r['steps']:>5} {r['start']:>7.3f} "
          f"{r['min']:>7.3f} {r['end']:>7.3f} {r['rise_after_step_10']:>7.3f} "
          f"{r['max_gradient_norm']:>8.2f} {r['skipped']:>4} "
          f"{r['peak_rss_gb']:>7.1f} {r['images_per_second']:>6.2f} "
          f"{r['images_per_cpu_second']:>9.2f}")
  print("\nrise>10: highest bpd after step 10 minus bpd at step 10 (a "
        "diverging run makes it large); max|g|: gradient norm, bits/dim "
        "units; img/s and img/CPU-s: training steps after the first, per "
        "second and per CPU-second of the process.")


def main(argv):
  del argv
  if FLAGS.one:
    print("RESULT " + json.dumps(run_one(FLAGS.one, FLAGS.workdir)),
          flush=True)
    return
  unknown = [c for c in FLAGS.configs if c not in DEFAULT_BATCH]
  if unknown:
    raise app.UsageError(f"Unknown config(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(DEFAULT_BATCH)}.")
  if FLAGS.npz and not os.path.isfile(FLAGS.npz):
    raise app.UsageError(f"--npz {FLAGS.npz!r} is not a file.")
  _batch_sizes()
  root = tempfile.mkdtemp(prefix="tfglv_recipes_")
  rows = []
  try:
    for name in FLAGS.configs:
      workdir = os.path.join(root, name)
      command = [sys.executable, "-m", "bench.recipes", f"--one={name}",
                 f"--workdir={workdir}", f"--steps={FLAGS.steps}",
                 f"--model={FLAGS.model}", f"--npz={FLAGS.npz}",
                 f"--init_batch_size={FLAGS.init_batch_size}"]
      command += [f"--batch_sizes={','.join(FLAGS.batch_sizes)}"
                  ] if FLAGS.batch_sizes else []
      print(f"[{time.strftime('%H:%M:%S')}] {name}: "
            f"{FLAGS.steps} steps ...", flush=True)
      done = subprocess.run(command, capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__))))
      result = [line for line in done.stdout.splitlines()
                if line.startswith("RESULT ")]
      if done.returncode or not result:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        rows.append({"config": name, "error": tail})
      else:
        rows.append(json.loads(result[-1][len("RESULT "):]))
        print(f"  bpd every step: {rows[-1]['bpd_curve']}", flush=True)
  finally:
    if FLAGS.keep_workdirs:
      print(f"Workdirs kept in {root}")
    else:
      shutil.rmtree(root, ignore_errors=True)
  print()
  _print_table(rows)


if __name__ == "__main__":
  define_flags()
  app.run(main)
