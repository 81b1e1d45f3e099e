"""Style: ament_flake8 (99 columns, Google import order, single quotes).

Checks the package, its tests and the repository's Python scripts and benchmarks.
"""

from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
CHECKED = [REPOSITORY / 'solar_ros', REPOSITORY / 'scripts', REPOSITORY / 'bench']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[str(path) for path in CHECKED if path.is_dir()])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
