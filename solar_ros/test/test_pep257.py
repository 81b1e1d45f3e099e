"""Docstrings: ament_pep257 on the package, its tests and the repository's scripts.

The Google convention (``Args:``/``Returns:`` sections, summary on the first line),
with missing docstrings allowed as ament allows them and imperative mood required.
"""

from pathlib import Path

from ament_pep257.main import main
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
CHECKED = [REPOSITORY / 'solar_ros', REPOSITORY / 'scripts', REPOSITORY / 'bench']


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=[
        *[str(path) for path in CHECKED if path.is_dir()],
        '--convention', 'google',
        '--add-ignore', 'D100', 'D101', 'D102', 'D103', 'D104', 'D105', 'D106', 'D107',
        '--add-select', 'D401'])
    assert rc == 0, 'Found docstring style errors (see the output above)'
