"""Print the plain test count of a colcon test run and exit non-zero on a bad run.

Reads every JUnit XML file colcon test left under ``build/`` and prints, as its last
line, ``N passed, N failed`` (with ``, N skipped`` where any were skipped). Errors
count as failures. Exits 1 when a test failed or none ran.

Usage: python test_summary.py BUILD_DIR
"""

from pathlib import Path
import sys
import xml.etree.ElementTree as ElementTree


def count(build: Path) -> tuple:
    """Return (tests, failed, skipped) summed over the JUnit files below ``build``."""
    tests = failed = skipped = 0
    for path in sorted(build.glob('*/**/*.xml')):
        try:
            root = ElementTree.parse(path).getroot()
        except ElementTree.ParseError:
            continue
        suites = [root] if root.tag == 'testsuite' else root.iter('testsuite')
        for suite in suites:
            tests += int(suite.get('tests', 0))
            failed += int(suite.get('failures', 0)) + int(suite.get('errors', 0))
            skipped += int(suite.get('skipped', 0))
    return tests, failed, skipped


def main(build: Path) -> int:
    tests, failed, skipped = count(build)
    passed = tests - failed - skipped
    line = f'{passed} passed, {failed} failed'
    if skipped:
        line += f', {skipped} skipped'
    if tests == 0:
        print('no test ran', file=sys.stderr)
    print(line)
    return 0 if tests and not failed else 1


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    sys.exit(main(Path(sys.argv[1])))
