"""Tests of tfglv.evaluation.runs: the evaluated run and its progress."""

from tfglv.evaluation import runs


def test_progress_off_a_terminal_is_plain_lines(capsys):
  progress = runs.ImageProgress(10, interval=3600.0)
  progress.add(4, {"bpd": 3.5})  # Within the interval: nothing.
  progress.add(6, {"bpd": 3.25})  # The end: always a line.
  out = capsys.readouterr().out
  assert out == "10/10 images - bpd: 3.2500\n"
  runs.ImageProgress(5, enabled=False).add(5)
  assert capsys.readouterr().out == ""
