"""The evaluation command line, `python -m train.evaluate`, in subprocesses.

The run is a stand-in (demo_run): the command line is checked for the files
it writes and for how it reports bad input, not for numbers.
"""

import os
import subprocess
import sys

import pytest

import evaluation_testlib
from tfglv import data
from tfglv.export_lib import demo_run

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SIZE = evaluation_testlib.SIZE
PAD = evaluation_testlib.PAD


class _Command:
  """`python -m train.evaluate args...` started now, awaited by result()."""

  def __init__(self, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    self._process = subprocess.Popen(
        [sys.executable, "-m", "train.evaluate", *args], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

  def result(self):
    stdout, stderr = self._process.communicate(timeout=600)
    return self._process.returncode, stdout, stderr


@pytest.fixture(scope="module")
def command_lines(tmp_path_factory):
  """The command lines, started together so that their TF imports overlap."""
  config = evaluation_testlib.tiny_config()
  images, _ = data.load_arrays(config, "train", max_examples=32)
  workdir = str(tmp_path_factory.mktemp("cli") / "run")
  demo_run.write_demo_workdir(workdir, config, images)
  return {
      "workdir": workdir,
      "ok": _Command([f"--workdir={workdir}", "--task=reconstructions,switch",
                      "--num_images=8", "--num_pairs=2"]),
      "temperature": _Command([f"--workdir={workdir}", "--task=samples",
                               "--temperatures=0.7,0"]),
      "no_workdir": _Command([f"--workdir={workdir}_missing", "--task=bpd"]),
  }


def test_command_line_writes_files_and_tables(command_lines):
  code, stdout, stderr = command_lines["ok"].result()
  assert code == 0, stderr[-3000:]
  assert "== reconstructions ==" in stdout and "== switch ==" in stdout
  eval_dir = os.path.join(command_lines["workdir"], "eval")
  for name in ("reconstructions.png", "reconstructions.json", "switch.png",
               "switch.json"):
    assert os.path.exists(os.path.join(eval_dir, name)), name
  grid = evaluation_testlib.png(os.path.join(eval_dir, "switch.png"))
  # The command line's default: 16 px images enlarged 6x to 96 px cells.
  evaluation_testlib.grid_part(grid, 4, 2, size=96, labelled_rows=True)


def test_command_line_bad_input_exits_with_the_message(command_lines):
  for name, message in (("temperature", "temperatures must be finite and > 0"),
                        ("no_workdir", "does not exist")):
    code, _, stderr = command_lines[name].result()
    assert code != 0, name
    assert message in stderr, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
