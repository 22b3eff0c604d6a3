"""tfglv.training.signals: a first signal asks to stop, a second exits."""

import os
import signal

import pytest

from tfglv.training import signals


def test_the_first_signal_is_recorded_and_the_handlers_restored():
  before = signal.getsignal(signal.SIGTERM)
  with signals.StopRequests() as stop:
    assert stop.received is None
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.received == "SIGTERM"  # Still running: no exit.
  assert signal.getsignal(signal.SIGTERM) is before


def test_sigint_is_recorded_not_raised():
  with signals.StopRequests() as stop:
    os.kill(os.getpid(), signal.SIGINT)  # No KeyboardInterrupt.
    assert stop.received == "SIGINT"
  assert signals.EXIT_STATUS == {"SIGTERM": 0, "SIGINT": 130}


def test_a_second_signal_exits_at_once(monkeypatch):
  exits = []

  def fake_exit(status):
    exits.append(status)
    raise SystemExit(status)

  monkeypatch.setattr(signals.os, "_exit", fake_exit)
  with signals.StopRequests() as stop:
    os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(SystemExit):
      os.kill(os.getpid(), signal.SIGTERM)
    assert stop.received == "SIGTERM"
  assert exits == [128 + signal.SIGTERM]
