"""The commands (train/, export/, bench/) import side by side.

A command defines its absl flags in `define_flags()`, called only under
`__main__`, and runs nothing at import. So any number of them can be imported
into one process (a pytest session imports several; two commands defining
`--set` or `--workdir` at import broke CI once), and each one's flags still
define cleanly on their own.
"""

import json
import os
import subprocess
import sys

import train_testlib

_SCRIPT = r"""
import importlib, json, pkgutil, sys
from absl import flags
report = {"modules": [], "errors": [], "defined": {}}
for package in ("train", "export", "bench"):
  for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
    report["modules"].append(f"{package}.{info.name}")
for name in report["modules"]:  # All at once, as a test session would.
  try:
    importlib.import_module(name)
  except BaseException as e:
    report["errors"].append(f"import {name}: {type(e).__name__}: {e}")
for name in report["modules"]:  # Then each command's flags, alone.
  module = sys.modules.get(name)
  define = getattr(module, "define_flags", None) or getattr(
      module, "_define_flags", None)
  if define is None:
    continue
  before = set(flags.FLAGS)
  try:
    define()
  except BaseException as e:
    report["errors"].append(f"define_flags of {name}: {type(e).__name__}: {e}")
    continue
  added = sorted(set(flags.FLAGS) - before)
  report["defined"][name] = added
  for flag in added:
    delattr(flags.FLAGS, flag)
print("REPORT " + json.dumps(report))
"""


def test_every_command_imports_with_the_others_and_defines_its_flags():
  result = subprocess.run(
      [sys.executable, "-c", _SCRIPT], cwd=train_testlib.REPO,
      capture_output=True, text=True, timeout=600,
      env={**os.environ, "PYTHONPATH": train_testlib.REPO})
  assert result.returncode == 0, result.stderr[-3000:]
  line = [l for l in result.stdout.splitlines() if l.startswith("REPORT ")]
  report = json.loads(line[-1][len("REPORT "):])
  assert not report["errors"], report["errors"]
  for command in ("train.main", "train.evaluate", "export.main",
                  "bench.train_variants", "bench.decoupling",
                  "bench.profile_step", "bench.recipes"):
    assert command in report["modules"]
    assert report["defined"].get(command), (
        f"{command} defines no flags in define_flags()")
  # The clash that broke CI: both define --set; both still do, apart.
  assert "set" in report["defined"]["train.main"]
  assert "set" in report["defined"]["bench.train_variants"]
