"Fixtures shared by the test files."
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def wheel(tmp_path_factory) -> Path:
    "The package's wheel, built from this tree once per test session (no dependencies bundled)."
    out = tmp_path_factory.mktemp('wheels')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', str(ROOT), '--no-deps', '-q', '-w', str(out)], check=True, timeout=600)
    return next(out.glob('seg_then_count-*.whl'))
