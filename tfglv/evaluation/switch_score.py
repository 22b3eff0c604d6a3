"""The scored switch: which donor each factor of a switched image follows.

A switched image decode(z_b, v_a) has two donors: image b gave its global
code z, image a its local code v. For every label column of the dataset
(the synthetic set: `shape` and `palette`; a labelled set: its class), a
classifier trained on real images of the train split reads the factor of
each switched image, and for the pairs whose donors differ in that factor
we count how often it is the z donor's ("follows z"), the v donor's
("follows v") or neither. A model that decouples as the paper claims puts
the global factors in z: they follow z. Both switches of a pair,
decode(z_b, v_a) and decode(z_a, v_b), are scored.

The classifier: pixels scaled to [0, 1], standardised, then a one-hidden-
layer MLP (CLASSIFIER_HIDDEN units, scikit-learn's MLPClassifier, seeded).
A linear SVM on pixels reads the synthetic set's palette perfectly but its
shape at only ~51% (its palettes invert the contrast); this MLP, trained
on the 2048 training images of `tiny`, reads both at 100% on its 256 test
images (~25 s on 2 CPU cores for both factors). Its accuracy on the real
donor images is reported beside the rates: a rate can be read only as far
as the classifier is right, and on a perfect transfer "follows z" is about
that accuracy.
"""

from typing import Collection, Dict, Mapping, Optional, Sequence, Tuple

from absl import logging
import numpy as np
from sklearn import neural_network
from sklearn import pipeline
from sklearn import preprocessing

from tfglv import data
from tfglv.evaluation import figures
from tfglv.evaluation import probe_command
from tfglv.evaluation import representations
from tfglv.evaluation import runs

CLASSIFIER_HIDDEN = 128
DEFAULT_SCORE_PAIRS = 500
DEFAULT_CLASSIFIER_MAX_TRAIN = 5000
DEFAULT_CLASSIFIER_MAX_ITER = 200


def _pixels(images) -> np.ndarray:
  images = np.asarray(images)
  return images.reshape(len(images), -1).astype(np.float32) / 255.0


def fit_classifier(images, labels, seed: int = 0,
                   max_iter: int = DEFAULT_CLASSIFIER_MAX_ITER):
  """An MLP on the pixels of uint8 images [N, H, W, C] -> labels [N].

  Returns the fitted scikit-learn pipeline; `predict_images` applies it.
  """
  labels = np.asarray(labels).reshape(-1)
  if len(labels) != len(images):
    raise ValueError(f"{len(images)} images but {len(labels)} labels.")
  if np.unique(labels).size < 2:
    raise ValueError("A classifier needs at least 2 classes.")
  classifier = pipeline.Pipeline([
      ("standardize", preprocessing.StandardScaler()),
      ("mlp", neural_network.MLPClassifier(
          hidden_layer_sizes=(CLASSIFIER_HIDDEN,), max_iter=max_iter,
          random_state=seed)),
  ])
  classifier.fit(_pixels(images), labels)
  return classifier


def predict_images(classifier, images) -> np.ndarray:
  """Labels [N] of uint8 images by a classifier with `predict`."""
  return np.asarray(classifier.predict(_pixels(images)))


def transfer_rates(z_donor_labels, v_donor_labels, predicted) -> Dict:
  """How often switched images take a factor from each donor.

  Args:
    z_donor_labels, v_donor_labels: [N] true labels of the image that gave
      each switched image its z, and of the one that gave its v.
    predicted: [N] labels the classifier reads on the switched images.

  Returns:
    "num_scored": the switched images scored, those whose donors differ
    in the factor (only they tell the donors apart); over those, "follows_z",
    "follows_v" and "neither" (fractions summing to 1; None if no donors
    differ); "kept_when_donors_agree": over the others, how often the
    switched image keeps the common label (a check that switched images
    stay readable; None if donors never agree).
  """
  z_labels = np.asarray(z_donor_labels).reshape(-1)
  v_labels = np.asarray(v_donor_labels).reshape(-1)
  predicted = np.asarray(predicted).reshape(-1)
  if not len(z_labels) == len(v_labels) == len(predicted):
    raise ValueError(f"Label arrays must have one entry per switched image; "
                     f"got {len(z_labels)}, {len(v_labels)} and "
                     f"{len(predicted)}.")
  differ = z_labels != v_labels
  count = int(np.sum(differ))
  rates = {"num_scored": count, "follows_z": None, "follows_v": None,
           "neither": None, "kept_when_donors_agree": None}
  if count:
    follows_z = float(np.mean(predicted[differ] == z_labels[differ]))
    follows_v = float(np.mean(predicted[differ] == v_labels[differ]))
    rates.update(follows_z=follows_z, follows_v=follows_v,
                 neither=1.0 - follows_z - follows_v)
  if count < len(differ):
    rates["kept_when_donors_agree"] = float(
        np.mean(predicted[~differ] == z_labels[~differ]))
  return rates


def score_switches(classifiers: Mapping, images_a, images_b,
                   labels_a: Mapping, labels_b: Mapping, with_v_a,
                   with_v_b) -> Dict[str, Dict]:
  """Transfer rates per factor for pairs (a, b) and their two switches.

  Args:
    classifiers: {factor: classifier with `predict` on flattened pixels}.
    images_a, images_b: uint8 [N, H, W, C], the real pairs.
    labels_a, labels_b: {factor: [N] labels} of those images.
    with_v_a, with_v_b: decode(z_b, v_a) and decode(z_a, v_b).

  Returns:
    {factor: transfer_rates(...) plus "classifier_accuracy", its accuracy
    on the 2N real images}.
  """
  switched = np.concatenate([with_v_a, with_v_b])
  real = np.concatenate([images_a, images_b])
  scores = {}
  for factor, classifier in classifiers.items():
    a, b = np.asarray(labels_a[factor]), np.asarray(labels_b[factor])
    scores[factor] = transfer_rates(np.concatenate([b, a]),
                                    np.concatenate([a, b]),
                                    predict_images(classifier, switched))
    scores[factor]["classifier_accuracy"] = float(np.mean(
        predict_images(classifier, real) == np.concatenate([a, b])))
  return scores


def _percent(value: Optional[float]) -> str:
  return "-" if value is None else f"{100 * value:.1f}"


def format_switch_table(result: Dict) -> str:
  """The transfer rates per factor as a printed table."""
  lines = [
      f"Switch transfer: {2 * result['score_pairs']} switched images "
      f"(decode(z_b, v_a) and decode(z_a, v_b) of {result['score_pairs']} "
      f"{result['split']} pairs), read by an MLP on pixels trained on "
      f"{result['classifier_train_images']} train images",
      f"{'factor':<22}{'classifier %':>13}{'scored':>8}"
      f"{'follows z %':>12}{'follows v %':>12}{'neither %':>10}"]
  for factor, rates in result["transfer"].items():
    aliases = result["aliases"].get(factor) or []
    title = f"{factor} (= {', '.join(aliases)})" if aliases else factor
    lines.append(
        f"{title:<22}{_percent(rates['classifier_accuracy']):>13}"
        f"{rates['num_scored']:>8}{_percent(rates['follows_z']):>12}"
        f"{_percent(rates['follows_v']):>12}{_percent(rates['neither']):>10}")
  lines.append("Scored: switched images whose donors differ in the factor. "
               "A global factor should follow z; 'classifier %' is the "
               "classifier's accuracy on the real images of the pairs.")
  return "\n".join(lines)


def runnable_tasks(run: runs.EvaluationRun, tasks: Sequence[str],
                   explicit: Collection[str]) -> Tuple[str, ...]:
  """`tasks` without "switch" on a run without z ("glow") when it came from
  "all"; asked for by name, it raises ValueError before any task runs."""
  if "switch" not in tasks or run.model.latent_dim:
    return tuple(tasks)
  if "switch" in explicit:
    runs.check_global_code(run, "switch")
  logging.info("Task 'all' skips switch: a %s run has no global code z.",
               run.config.model.variant)
  return tuple(task for task in tasks if task != "switch")


def evaluate_switch(run: runs.EvaluationRun, split: str = "test",
                    num_pairs: int = 8,
                    score_pairs: int = DEFAULT_SCORE_PAIRS,
                    classifier_max_train: Optional[int] = (
                        DEFAULT_CLASSIFIER_MAX_TRAIN),
                    batch_size: int = 64, seed: int = 0) -> Dict:
  """The switch task: the grid of `num_pairs` pairs (`figures`) and the
  transfer rates over up to `score_pairs` pairs (image i and image
  score_pairs + i of the split), written together to switch.json.

  Raises ValueError for a run without a global code ("glow").
  """
  runs.check_global_code(run, "switch")
  runs.check_count("score_pairs", score_pairs)
  result = figures.write_switch_grid(run, split, num_pairs, batch_size)
  train_images, train_labels = data.load_arrays(run.config, "train",
                                                classifier_max_train)
  images, labels = data.load_arrays(run.config, split, 2 * score_pairs)
  pairs = len(images) // 2
  targets, aliases = probe_command.probe_targets(
      train_labels, {k: v[:2 * pairs] for k, v in labels.items()})
  result.update(score_pairs=pairs, classifier_train_images=len(train_images),
                classifier=f"MLP ({CLASSIFIER_HIDDEN} hidden units) on "
                           f"standardised pixels", aliases=aliases,
                transfer={})
  if targets and pairs:
    images_a, images_b = images[:pairs], images[pairs:2 * pairs]
    with_v_a, with_v_b = representations.switch(run.model, images_a,
                                                images_b, batch_size)
    classifiers = {name: fit_classifier(train_images, train_target, seed)
                   for name, (train_target, _) in targets.items()}
    result["transfer"] = score_switches(
        classifiers, images_a, images_b,
        {name: test[:pairs] for name, (_, test) in targets.items()},
        {name: test[pairs:] for name, (_, test) in targets.items()},
        with_v_a, with_v_b)
    result["table"] = format_switch_table(result)
  else:
    result["table"] = (f"No transfer rates: the {run.config.data.dataset} "
                       f"dataset has no label columns to classify (or the "
                       f"{split} split has under 2 images); see switch.png.")
  run.write_json("switch.json", result)
  return result
