"""The metrics CSV keeps every row, appends on resume and refuses a changed header."""

import pytest
from solar_ros.learn.metrics import MetricsLog, progress_line


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
