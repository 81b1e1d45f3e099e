"""Point the ROS 2 wheels' CMake export files at this venv's Python and NumPy headers.

The PyPI ROS 2 wheels were built under ``/opt/python/cp311-cp311``; their exported
CMake targets name include directories there, and ``find_package`` then fails with
"Imported target ... includes non-existent path". This rewrites those prefixes in
``<venv>/share/**/*.cmake`` to the running interpreter's include directory and
``numpy.get_include()``. Run it with the venv's own Python; it is idempotent.

Usage: python fix_wheel_cmake_paths.py VENV
"""

from pathlib import Path
import sys
import sysconfig

import numpy

BUILD_PYTHON_INCLUDE = '/opt/python/cp311-cp311/include/python3.11'
BUILD_NUMPY_INCLUDE = '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include'


def fix(venv: Path) -> int:
    """Rewrite the build machine's paths under ``venv/share``; return the files changed."""
    replacements = {
        BUILD_NUMPY_INCLUDE: numpy.get_include(),
        BUILD_PYTHON_INCLUDE: sysconfig.get_paths()['include'],
    }
    changed = 0
    for path in sorted((venv / 'share').rglob('*.cmake')):
        text = path.read_text()
        new = text
        for old, here in replacements.items():
            new = new.replace(old, here)
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    print(f'rewrote {fix(Path(sys.argv[1]))} CMake files')
