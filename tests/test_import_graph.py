"""tfglv's layering, checked on the source: no import points upward.

tfglv is built in layers. A module may import its own layer and the layers
below it; never a layer above it, and never another layer on its own level
(training, evaluation and export_lib share level 9 so that none of them
leans on another: what two of them need belongs lower down, e.g. in
rundir). The entry points `train/`, `export/` and `bench/` sit above
everything: they import tfglv, tfglv never imports them.

LAYERS below is the whole table, bottom first:

  level  layer       modules
  0      _compat     tfglv._compat (the private TF/Keras APIs)
  0      _tf_import  tfglv._tf_import (imports TF without its banner)
  0      gc_pause    tfglv.gc_pause (no garbage collection while tracing)
  1      configs     tfglv.configs
  1      cli         tfglv.cli (what the entry points share)
  2      grids       tfglv.grids or tfglv.images (image grids, PNGs)
  3      data        tfglv.data
  4      layers      tfglv.layers
  5      flows       tfglv.flows
  6      encoder     tfglv.encoder
  6      prior       tfglv.prior
  7      model       tfglv.model and the model-level modules it imports
                     (tfglv.decoders, tfglv.quantization, tfglv.latents,
                     tfglv.objective, tfglv.latent_gaussian, tfglv.diagnostics;
                     tfglv.compiled, tfglv.keras_fit, tfglv.keras_saving,
                     and tfglv.update_step, the update
                     that keras_fit and tfglv.training share, with
                     tfglv.kl_budget and tfglv.loss_scale;
                     tfglv.dequantization),
                     and the package itself (tfglv/__init__.py re-exports
                     the model)
  8      rundir      tfglv.rundir
  9      training    tfglv.training
  9      evaluation  tfglv.evaluation
  9      export_lib  tfglv.export_lib

A row names modules or packages (a package row covers its submodules).
A module under tfglv/ that no row claims fails the test: add it to the row
of the layer it belongs to, or add a row at its level.

Only the source is read (`ast`), so the check needs no TensorFlow and takes
well under a second. Every import counts, also one inside a function: a
lazy import is still an arrow. The arrow `from pkg import name` goes to
`pkg.name` when that is a module, else to `pkg`; the implicit import of a
parent package's __init__ is not an arrow.

    python tests/test_import_graph.py    # prints the wrong-way arrows
"""

import ast
import pathlib
import sys
from typing import Dict, List, Optional, Set, Tuple

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "tfglv"
ENTRY_POINTS = ("train", "export", "bench")

# (level, layer, modules or packages), bottom first.
LAYERS = (
    (0, "_compat", ("tfglv._compat",)),
    (0, "_tf_import", ("tfglv._tf_import",)),
    (0, "gc_pause", ("tfglv.gc_pause",)),
    (1, "configs", ("tfglv.configs",)),
    (1, "cli", ("tfglv.cli",)),
    (2, "grids", ("tfglv.grids", "tfglv.images")),
    (3, "data", ("tfglv.data",)),
    (4, "layers", ("tfglv.layers",)),
    (5, "flows", ("tfglv.flows",)),
    (6, "encoder", ("tfglv.encoder",)),
    (6, "prior", ("tfglv.prior",)),
    (7, "model", ("tfglv", "tfglv.model", "tfglv.global_code",
                  "tfglv.decoders",
                  "tfglv.quantization", "tfglv.diagnostics",
                  "tfglv.latents", "tfglv.objective",
                  "tfglv.latent_gaussian", "tfglv.compiled",
                  "tfglv.keras_fit", "tfglv.keras_saving",
                  "tfglv.update_step", "tfglv.dequantization",
                  "tfglv.kl_budget", "tfglv.loss_scale")),
    (8, "rundir", ("tfglv.rundir",)),
    (9, "training", ("tfglv.training",)),
    (9, "evaluation", ("tfglv.evaluation",)),
    (9, "export_lib", ("tfglv.export_lib",)),
)

_WHERE = ("add it to LAYERS in tests/test_import_graph.py, in the row of "
          "its layer (bottom first; see the module docstring)")


def layer_of(module: str) -> Optional[Tuple[int, str]]:
  """(level, layer) of a dotted tfglv module name; None: in no row."""
  best = None
  for level, layer, names in LAYERS:
    for name in names:
      # The package row claims tfglv/__init__.py alone, not all of tfglv.
      covers = module == name or (name != PACKAGE and
                                  module.startswith(name + "."))
      if covers and (best is None or len(name) > best[0]):
        best = (len(name), level, layer)
  return best and best[1:]


def module_names(root: pathlib.Path) -> Dict[str, pathlib.Path]:
  """{dotted name: path} of every module of the package under `root`."""
  names = {}
  for path in sorted((root / PACKAGE).rglob("*.py")):
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    names[".".join(parts)] = path
  return names


def imports(module: str, path: pathlib.Path,
            modules: Set[str]) -> List[Tuple[int, str]]:
  """(line, imported module) of every import statement in the file."""
  is_package = path.name == "__init__.py"
  found = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found.extend((node.lineno, alias.name) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        package = module.split(".")
        package = package[:len(package) - node.level + is_package]
        base = ".".join(package + ([base] if base else []))
      for alias in node.names:
        name = f"{base}.{alias.name}"
        found.append((node.lineno, name if name in modules else base))
  return found


def _in_package(name: str) -> bool:
  return name == PACKAGE or name.startswith(PACKAGE + ".")


def violations(root: pathlib.Path = REPO) -> List[str]:
  """One line per wrong-way arrow or unplaced module, sorted."""
  modules = module_names(root)
  problems = set()
  for module, path in modules.items():
    where = path.relative_to(root).as_posix()
    source = layer_of(module)
    if source is None:
      problems.add(f"{where} ({module}) is in no layer: {_WHERE}.")
      continue
    for line, target in imports(module, path, set(modules)):
      arrow = f"{where}:{line} imports {target}"
      if target.split(".")[0] in ENTRY_POINTS:
        problems.add(f"{arrow}: tfglv may not import the entry points "
                     f"({', '.join(p + '/' for p in ENTRY_POINTS)}).")
        continue
      if not _in_package(target):
        continue
      destination = layer_of(target)
      if destination is None:
        problems.add(f"{arrow}, which is in no layer: {_WHERE}.")
      elif destination[1] != source[1] and destination[0] >= source[0]:
        why = ("a higher layer" if destination[0] > source[0] else
               "the same level: they must not import each other")
        problems.add(f"{arrow}: {source[1]} may not import {destination[1]} "
                     f"({why}).")
  return sorted(problems)


def test_no_import_points_the_wrong_way():
  problems = violations()
  assert not problems, ("Wrong-way imports in tfglv (the layers are in "
                        "tests/test_import_graph.py):\n" + "\n".join(problems))


def test_the_checker_on_a_small_tree(tmp_path):
  levels = [level for level, _, _ in LAYERS]
  assert levels == sorted(levels), "LAYERS must be ordered bottom first."
  files = {
      "__init__.py": "from tfglv import configs\nfrom tfglv.model import M\n",
      "configs.py": "import os\n",
      "model.py": "from tfglv import flows\nfrom . import configs\n",
      "flows/__init__.py": "from tfglv.flows.base import Base\n",
      "flows/base.py": "def f():\n  from ..model import M\n",
      "training/steps.py": "from tfglv.evaluation import grids\n",
      "evaluation/grids.py": "import bench.harness\n",
      "evaluation/new.py": "import tfglv.unknown\n",
      "wild.py": "",
  }
  for name, text in files.items():
    (tmp_path / PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / PACKAGE / name).write_text(text)
  assert violations(tmp_path) == [
      "tfglv/evaluation/grids.py:1 imports bench.harness: tfglv may not "
      "import the entry points (train/, export/, bench/).",
      f"tfglv/evaluation/new.py:1 imports tfglv.unknown, which is in no "
      f"layer: {_WHERE}.",
      "tfglv/flows/base.py:2 imports tfglv.model: flows may not import "
      "model (a higher layer).",
      "tfglv/training/steps.py:1 imports tfglv.evaluation.grids: training "
      "may not import evaluation (the same level: they must not import "
      "each other).",
      f"tfglv/wild.py (tfglv.wild) is in no layer: {_WHERE}.",
  ]


if __name__ == "__main__":
  found = violations()
  print("\n".join(found) or "No wrong-way imports.")
  sys.exit(1 if found else 0)
