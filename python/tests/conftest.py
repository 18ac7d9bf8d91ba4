import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def phaseflow_bin() -> str:
    """The command-line binary to compare with: $PHASEFLOW_BIN (scripts/test.sh sets it), else
    target/test-opt/phaseflow of this checkout."""
    path = os.environ.get("PHASEFLOW_BIN") or str(ROOT / "target" / "test-opt" / "phaseflow")
    if not os.path.exists(path):
        if os.environ.get("PHASEFLOW_BIN"):
            pytest.fail(f"PHASEFLOW_BIN={path} does not exist")
        pytest.skip("no phaseflow binary (set PHASEFLOW_BIN)")
    return os.path.abspath(path)


@pytest.fixture(autouse=True)
def embedded_catalogue(monkeypatch):
    # the tests use the catalogue built into the module unless one sets it
    monkeypatch.delenv("PHASEFLOW_SYSTEMS", raising=False)
