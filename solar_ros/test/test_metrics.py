"""The metrics CSV keeps its rows and header; TensorBoard event files read back."""

import os
import struct

import pytest
from solar_ros.learn.metrics import MetricsLog, progress_line, TensorBoardLog
from tensorboardX.proto import event_pb2


def test_rows_survive_reopening_and_append(tmp_path):
    path = tmp_path / 'metrics.csv'
    MetricsLog(path, ['iteration', 'cost']).append({'iteration': 0, 'cost': 1.23456789})
    log = MetricsLog(path, ['iteration', 'cost'])
    log.append({'iteration': 1, 'cost': 0.5})
    assert log.rows() == [{'iteration': '0', 'cost': '1.23457'},
                          {'iteration': '1', 'cost': '0.5'}]


def test_changed_columns_and_missing_values_are_errors(tmp_path):
    path = tmp_path / 'metrics.csv'
    log = MetricsLog(path, ['iteration', 'cost'])
    with pytest.raises(ValueError, match=r"misses columns \['cost'\]"):
        log.append({'iteration': 0})
    with pytest.raises(ValueError, match='differ from'):
        MetricsLog(path, ['iteration', 'success_rate'])


def test_a_file_from_before_a_new_column_gains_it_as_nan(tmp_path):
    path = tmp_path / 'metrics.csv'
    MetricsLog(path, ['iteration', 'cost']).append({'iteration': 0, 'cost': 2.0})
    log = MetricsLog(path, ['iteration', 'probe', 'cost'])  # a later version's columns
    log.append({'iteration': 1, 'probe': 0.5, 'cost': 1.0})
    assert log.rows() == [{'iteration': '0', 'probe': 'nan', 'cost': '2'},
                          {'iteration': '1', 'probe': '0.5', 'cost': '1'}]
    assert path.read_text().splitlines()[0] == 'iteration,probe,cost'
    assert [p.name for p in tmp_path.iterdir()] == ['metrics.csv']


def test_a_failed_rewrite_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'metrics.csv'
    MetricsLog(path, ['iteration', 'cost']).append({'iteration': 0, 'cost': 2.0})
    before = path.read_text()

    def broken_replace(*args, **kwargs):
        raise OSError('disk full')

    # A full disk cannot be caused on demand: the fault is injected into the rename.
    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        MetricsLog(path, ['iteration', 'probe', 'cost'])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ['metrics.csv']


def test_progress_line_names_every_value():
    line = progress_line({'iteration': 3, 'mean_cost': 0.123456789})
    assert line == 'iteration 3 | mean_cost 0.123457'


def read_events(log_dir):
    """Yield the events of the TensorBoard event files in ``log_dir``, file by file."""
    for path in sorted(log_dir.glob('events.out.tfevents.*')):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):  # records: u64 length, u32 crc, payload, u32 crc
            length = struct.unpack('<Q', data[offset:offset + 8])[0]
            yield event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 16 + length


def read_scalars(log_dir):
    """Return {tag: [(step, value)]} from the TensorBoard event files in ``log_dir``."""
    scalars = {}
    for event in read_events(log_dir):
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_scalars_are_on_disk_after_each_call(tmp_path):
    board = TensorBoardLog(tmp_path / 'tb')
    board.scalars('policy', {'mean_cost': 2.5, 'success_rate': 0.25, 'note': 'x',
                             'bad': float('nan')}, step=10)
    board.scalars('policy', {'mean_cost': 1.5}, step=20)
    assert read_scalars(tmp_path / 'tb') == {
        'policy/mean_cost': [(10, 2.5), (20, 1.5)], 'policy/success_rate': [(10, 0.25)]}
    board.close()
    TensorBoardLog(tmp_path / 'tb').scalars('policy', {'mean_cost': 0.5}, step=30)  # resumed
    assert read_scalars(tmp_path / 'tb')['policy/mean_cost'] == [(10, 2.5), (20, 1.5), (30, 0.5)]


def test_a_resumed_fit_log_marks_the_restart_so_tensorboard_hides_the_cut_update(tmp_path):
    board = TensorBoardLog(tmp_path / 'tb', purge_from=1)
    assert _restart_steps(tmp_path / 'tb') == [], 'a new run has nothing to hide'
    board.scalars('model', {'elbo': -5.0}, step=600)
    board.scalars('model', {'elbo': -4.0}, step=610)  # an update cut short after 610
    board.close()
    TensorBoardLog(tmp_path / 'tb', purge_from=601).scalars('model', {'elbo': -4.5}, step=610)
    assert _restart_steps(tmp_path / 'tb') == [601]


def _restart_steps(log_dir):
    """Return the steps of the SessionLog START events in ``log_dir``'s event files."""
    return [event.step for event in read_events(log_dir) if event.HasField('session_log')
            and event.session_log.status == event_pb2.SessionLog.START]
