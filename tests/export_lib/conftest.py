"""Fixtures of the export tests: the one shared export (see export_testlib)."""

import pytest

import export_testlib


@pytest.fixture(scope="session")
def run():
  """The shared export of a stand-in trained tiny run (an ExportedRun)."""
  return export_testlib.exported_run()


@pytest.fixture(scope="session")
def loaded(run):
  """That export loaded by TF's SavedModel loader."""
  del run  # Exported first.
  return export_testlib.loaded_saved_model()
