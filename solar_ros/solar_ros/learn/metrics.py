"""Per-iteration metrics of a run: a CSV file that survives crashes, and a progress line.

Each row is flushed and synced as it is written, so the file holds every completed
iteration even when the run is killed. A resumed run appends to the same file.
"""

import csv
import os
from pathlib import Path
from typing import Dict, List, Mapping, Union

Value = Union[int, float, str]


class MetricsLog:
    """Append-only CSV of one row per iteration, with a fixed set of columns."""

    def __init__(self, path: Path, columns: List[str]) -> None:
        """Open ``path`` for appending; a new file gets the header ``columns``.

        Raises:
            ValueError: the file exists with a different header.

        """
        self.path = Path(path)
        self.columns = list(columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline='') as existing:
                header = next(csv.reader(existing), [])
            if header != self.columns:
                raise ValueError(
                    f'{self.path}: existing columns {header} differ from {self.columns}')
        else:
            self._write(self.columns)

    def append(self, row: Mapping[str, Value]) -> None:
        """Write one row; every column must be present."""
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise ValueError(f'metrics row misses columns {missing}')
        self._write([_format(row[c]) for c in self.columns])

    def rows(self) -> List[Dict[str, str]]:
        """Return every row written so far, as strings keyed by column."""
        with open(self.path, newline='') as existing:
            return list(csv.DictReader(existing))

    def _write(self, cells: List[str]) -> None:
        """Append one CSV line and push it to disk."""
        with open(self.path, 'a', newline='') as out:
            csv.writer(out).writerow(cells)
            out.flush()
            os.fsync(out.fileno())


def _format(value: Value) -> str:
    """Return ``value`` as a CSV cell (floats with 6 significant digits)."""
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)


def progress_line(row: Mapping[str, Value]) -> str:
    """Return a one-line summary of an iteration's metrics row: ``key value | ...``."""
    return ' | '.join(f'{key} {_format(value)}' for key, value in row.items())
