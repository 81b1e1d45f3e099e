"""Versioned, checksummed checkpoint files written atomically.

File layout: the magic line ``SOLAR_ROS_CHECKPOINT`` and a newline, one line of JSON header
(``kind``, ``version``, ``length`` and ``sha256`` of the payload), then the payload: a
``torch.save`` of a dict of tensors, numbers, strings, lists and dicts, read back with
``weights_only=True`` (no arbitrary code runs on load).

Saving writes a temporary file in the destination's directory, flushes and fsyncs it, then
``os.replace``s it over the destination, so a crash at any point leaves either the old
file or the new one, never a partial file.
"""

import hashlib
import io
import json
import os
from pathlib import Path
import tempfile
from typing import Any, Dict, Union

import torch

MAGIC = b'SOLAR_ROS_CHECKPOINT\n'
PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """Raised when a checkpoint file is missing, corrupt, of another kind or version."""


def save_checkpoint(path: PathLike, kind: str, version: int, payload: Dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically with its kind, format version and checksum."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    header = {'kind': kind, 'version': int(version), 'length': len(data),
              'sha256': hashlib.sha256(data).hexdigest()}
    path = Path(path)
    directory = path.parent if str(path.parent) else Path('.')
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(MAGIC)
            handle.write(json.dumps(header).encode() + b'\n')
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: PathLike, kind: str, version: int) -> Dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`; return its payload.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, truncated or altered (length
            or checksum mismatch), of another ``kind``, or of another format ``version``.

    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f'cannot read checkpoint {path}: {error}') from error
    if not raw.startswith(MAGIC):
        raise CheckpointError(f'{path} is not a solar_ros checkpoint (bad magic bytes)')
    end = raw.find(b'\n', len(MAGIC))
    try:
        header = json.loads(raw[len(MAGIC):end])
        expected_length, digest = int(header['length']), str(header['sha256'])
        found_kind, found_version = header['kind'], header['version']
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f'{path} is corrupt: unreadable header') from error
    data = raw[end + 1:]
    if len(data) != expected_length or hashlib.sha256(data).hexdigest() != digest:
        raise CheckpointError(
            f'{path} is corrupt: payload of {len(data)} bytes does not match the header '
            f'({expected_length} bytes, sha256 {digest[:12]}...)')
    if found_kind != kind:
        raise CheckpointError(f'{path} holds a {found_kind!r} checkpoint, expected {kind!r}')
    if found_version != version:
        raise CheckpointError(
            f'{path} has checkpoint format version {found_version}, this code reads '
            f'version {version}')
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except Exception as error:
        raise CheckpointError(f'{path} is corrupt: {error}') from error
