"""Checkpoint files: round trip, corrupt and mismatched files, crash mid-save."""

import os

import pytest
from solar_ros.core import checkpoint
from solar_ros.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
import torch


def payload(value):
    """Return a small payload with tensors, numbers and nesting."""
    return {'w': torch.full((3, 2), float(value)), 'n': value, 'nested': {'name': 'x'}}


def test_round_trip(tmp_path):
    path = tmp_path / 'model.ckpt'
    save_checkpoint(path, 'kind', 3, payload(1))
    loaded = load_checkpoint(path, 'kind', 3)
    assert torch.equal(loaded['w'], payload(1)['w'])
    assert loaded['n'] == 1 and loaded['nested'] == {'name': 'x'}
    save_checkpoint(path, 'kind', 3, payload(2))
    assert load_checkpoint(path, 'kind', 3)['n'] == 2
    assert os.listdir(tmp_path) == ['model.ckpt']


def test_mismatched_kind_or_version(tmp_path):
    path = tmp_path / 'model.ckpt'
    save_checkpoint(path, 'kind', 3, payload(1))
    with pytest.raises(CheckpointError, match='version 3, this code reads version 4'):
        load_checkpoint(path, 'kind', 4)
    with pytest.raises(CheckpointError, match="'kind' checkpoint, expected 'other'"):
        load_checkpoint(path, 'other', 3)


def test_corrupt_truncated_and_missing_files(tmp_path):
    path = tmp_path / 'model.ckpt'
    save_checkpoint(path, 'kind', 1, payload(1))
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match='corrupt'):
        load_checkpoint(path, 'kind', 1)
    path.write_bytes(bytes(raw[:len(raw) // 2]))
    with pytest.raises(CheckpointError, match='corrupt'):
        load_checkpoint(path, 'kind', 1)
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='not a solar_ros checkpoint'):
        load_checkpoint(path, 'kind', 1)
    with pytest.raises(CheckpointError, match='cannot read'):
        load_checkpoint(tmp_path / 'absent.ckpt', 'kind', 1)


def test_crash_mid_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'model.ckpt'
    save_checkpoint(path, 'kind', 1, payload(1))
    before = path.read_bytes()

    def crash(fd):
        raise OSError('disk gone')

    # The fake: the flush-to-disk of the new file fails after its bytes were written.
    monkeypatch.setattr(checkpoint.os, 'fsync', crash)
    with pytest.raises(OSError, match='disk gone'):
        save_checkpoint(path, 'kind', 1, payload(2))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path, 'kind', 1)['n'] == 1
    assert os.listdir(tmp_path) == ['model.ckpt']
