"""The metrics CSV keeps its rows and header; TensorBoard event files read back."""

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


def test_progress_line_names_every_value():
    line = progress_line({'iteration': 3, 'mean_cost': 0.123456789})
    assert line == 'iteration 3 | mean_cost 0.123457'


def read_scalars(log_dir):
    """Return {tag: [(step, value)]} from the TensorBoard event files in ``log_dir``."""
    scalars = {}
    for path in sorted(log_dir.glob('events.out.tfevents.*')):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):  # records: u64 length, u32 crc, payload, u32 crc
            length = struct.unpack('<Q', data[offset:offset + 8])[0]
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 16 + length
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
