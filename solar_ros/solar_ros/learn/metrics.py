"""Per-iteration metrics of a run: a crash-proof CSV file, TensorBoard scalars, a progress line.

Each CSV row is flushed and synced as it is written, so the file holds every completed
iteration even when the run is killed. A resumed run appends to the same file. The same
numbers go to TensorBoard event files (``tensorboard --logdir RUN_DIR/tensorboard``: the
runs ``policy``, by episodes recorded, and ``model``, the ELBO terms by model update).
"""

import csv
import math
import os
from pathlib import Path
import time
from typing import Dict, List, Mapping, Optional, Union

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2
from tensorboardX.summary import scalar

Value = Union[int, float, str]


class MetricsLog:
    """Append-only CSV of one row per iteration, with a fixed set of columns."""

    def __init__(self, path: Path, columns: List[str]) -> None:
        """Open ``path`` for appending; a new file gets the header ``columns``.

        A file written before some of ``columns`` existed (its header a subset of them) is
        rewritten once with the full header, its rows holding ``nan`` in the new columns,
        so a run made by an earlier version resumes.

        Raises:
            ValueError: the file exists with a header that is not a subset of ``columns``.

        """
        self.path = Path(path)
        self.columns = list(columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline='') as existing:
                header = next(csv.reader(existing), [])
            if header != self.columns:
                if not set(header) <= set(self.columns):
                    raise ValueError(
                        f'{self.path}: existing columns {header} differ from {self.columns}')
                self._add_columns()
        else:
            self._write(self.columns)

    def _add_columns(self) -> None:
        """Rewrite the file with every column, ``nan`` where a row lacks one (atomically).

        A crash leaves either the old file or the new one under its name, never a partial one.
        """
        rows = self.rows()
        tmp = self.path.with_name(f'.tmp_{self.path.name}')
        try:
            with open(tmp, 'w', newline='') as out:
                writer = csv.DictWriter(out, self.columns, restval='nan')
                writer.writeheader()
                writer.writerows(rows)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

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


class TensorBoardLog:
    """Scalars of a run in TensorBoard event files, each on disk when its call returns."""

    def __init__(self, log_dir: Path, purge_from: Optional[int] = None) -> None:
        """Start a new event file in ``log_dir`` (created if missing; a resumed run adds one).

        ``purge_from``: on a resumed run, the first step not covered by its checkpoint. The
        new file then starts with a restart marker (SessionLog START) at that step, which
        tells TensorBoard to hide what earlier files logged from that step on (an update
        that a crash cut short and the resumed run redoes), so no step shows twice.
        """
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        number = len(list(self.log_dir.glob('events.out.tfevents.*')))
        self._events = EventsWriter(str(self.log_dir / 'events'), filename_suffix=f'.{number}')
        if purge_from is not None and number:
            self._events.write_event(event_pb2.Event(
                wall_time=time.time(), step=int(purge_from),
                session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
            self._events.flush()

    def scalars(self, prefix: str, values: Mapping[str, Value], step: int) -> None:
        """Write every finite number of ``values`` as ``prefix/name`` at ``step``."""
        for name, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._events.write_event(event_pb2.Event(
                    wall_time=time.time(), step=int(step),
                    summary=scalar(f'{prefix}/{name}', float(value))))
        self._events.flush()

    def close(self) -> None:
        """Close the event file."""
        self._events.close()


def _format(value: Value) -> str:
    """Return ``value`` as a CSV cell (floats with 6 significant digits)."""
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)


def progress_line(row: Mapping[str, Value]) -> str:
    """Return a one-line summary of an iteration's metrics row: ``key value | ...``."""
    return ' | '.join(f'{key} {_format(value)}' for key, value in row.items())
