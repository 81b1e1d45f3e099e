"""The summary of runs reads their checks, validation and evaluation tables as they are."""

import csv

from learning_runs import CHECKED_POINT_MASS, finished_run
import pytest
from solar_ros.learn import evaluate, fork, summary, validate
from solar_ros.learn.episodes import EpisodeStore
from solar_ros.learn.run_dir import RunDir
import torch

# the checked point mass of the probe tests, shorter and with two checks per policy
SETTINGS = {**CHECKED_POINT_MASS,
            'env': {**CHECKED_POINT_MASS['env'], 'horizon': 5},
            'loop': {**CHECKED_POINT_MASS['loop'], 'check_rollouts': 2}}


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    """Return a finished run of three updates with checks, validated and evaluated."""
    run_dir = finished_run(SETTINGS, tmp_path_factory.mktemp('summary'))
    assert validate.main([str(run_dir), '--episodes', '3']) == 0
    assert evaluate.main([str(run_dir), '--episodes', '4']) == 0
    return run_dir


def _k(run_dir, version):
    return evaluate.load_gains(run_dir, version)[2].policy.k


def test_a_finished_run_shows_its_checks_validation_and_the_policy_it_ends_on(finished,
                                                                              capsys):
    files = RunDir(finished)
    result = summary.summarise(finished)
    assert (result.task, result.loop_seed, result.model_seed) == (1, 3, 7)
    assert result.reached == 4 and result.left_behind == 4
    # the policy the run left behind (saved as policy 4) is the one the summary names
    same = [v for v in (1, 2, 3) if torch.equal(_k(finished, v), _k(finished, 4))]
    assert result.ends_on in same
    checks = list(EpisodeStore(files.checks))
    for version in (1, 2, 3):
        mine = [e.success for e in checks if e.policy_version == version]
        assert result.checks[version][0] == sum(mine) / len(mine) and len(mine) == 2
    with open(files.validation, newline='') as table:
        rows = {int(r['policy']): float(r['success_rate']) for r in csv.DictReader(table)}
    assert result.validation == rows
    assert result.end_validation == rows[4]
    assert result.best_validation == max(rows[v] for v in (1, 2, 3))
    assert result.under_best == max(0.0, result.best_validation - rows[4])
    with open(files.evaluation(4), newline='') as table:
        evaluated = next(csv.DictReader(table))
    assert result.evaluation['success_rate'] == float(evaluated['success_rate'])
    assert result.evaluation['episodes'] == 4
    capsys.readouterr()
    assert summary.main([str(finished)]) == 0
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith(f'| {finished} |')]
    assert len(row) == 1 and f'| policy {result.ends_on} |' in row[0]
    assert f'**{100 * result.checks[result.ends_on][0]:.0f}**' in row[0]
    assert '1 of 1 runs finished' in out and 'of 4 |' in row[0]


def test_a_run_that_goes_on_says_how_far_it_got(finished, tmp_path, capsys):
    target = tmp_path / 'fork'
    assert fork.main([str(finished), str(target), '--policy', '2']) == 0
    capsys.readouterr()
    result = summary.summarise(target)
    assert result.ends_on is None and result.evaluation is None and result.reached == 2
    assert set(result.checks) == {1}
    assert summary.main([str(target)]) == 0
    out = capsys.readouterr().out
    assert 'not finished (policy 2 of 3)' in out and 'no run has finished' in out


def test_the_goal_of_a_finished_run():
    def run_with(evaluation, end, best):
        return summary.RunSummary(
            name='r', task=1, loop_seed=0, model_seed=0, iterations=2, reached=3,
            checks={1: (0.5, 0.02, 12), 2: (1.0, 0.01, 12)}, validation={1: best, 2: end},
            ends_on=2, left_behind=3, evaluation={'success_rate': evaluation, 'episodes': 50})

    assert run_with(0.90, 0.86, 0.96).reaches_goal()
    assert not run_with(0.90, 0.86, 0.98).reaches_goal()  # 12 points under its best
    assert not run_with(0.88, 0.96, 0.96).reaches_goal()
    assert not run_with(0.96, 0.84, 0.84).reaches_goal()
    assert run_with(0.96, 0.90, 0.50).under_best == 0.0
    partly = run_with(0.96, 0.90, 0.50)
    del partly.validation[1]  # the best may be the policy not validated yet
    assert partly.best_validation == 0.90 and partly.under_best is None
    assert not partly.reaches_goal()
    saved = run_with(0.96, 0.90, 0.86)
    saved.validation = {1: 0.86, 3: 0.90}  # the end policy 2 validated as policy 3 only
    assert saved.validation_of(2) == 0.90 and saved.validated_every_policy
    assert saved.under_best == 0.0 and saved.reaches_goal()
    assert saved.validation_of(1) == 0.86 and saved.validation_of(3) == 0.90


def test_a_tie_on_the_checks_names_the_tied_policies_left_to_validate():
    run = summary.RunSummary(
        name='runs/r', task=2, loop_seed=2, model_seed=0, iterations=4, reached=5,
        checks={1: (0.0, 0.1, 3), 2: (1.0, 0.004, 3), 3: (2 / 3, 0.02, 3), 4: (1.0, 0.009, 3)},
        validation={3: 0.90, 5: 0.44}, ends_on=2, left_behind=5, evaluation=None)
    assert run.tied == [2, 4]
    out = summary.table([run])
    assert ('- runs/r: policies 2 4 tie at 100% of their checks; the smaller mean final '
            'distance chose policy 2; to tell them apart: python -m solar_ros.learn.validate '
            'runs/r --policy 4') in out.splitlines()
    run.validation[4] = 0.98  # every tied policy validated: the table's columns say the rest
    assert 'tie at' not in summary.table([run])
    run.checks[4] = (2 / 3, 0.009, 3)
    assert run.tied == []
    going_on = summary.RunSummary(**{**vars(run), 'ends_on': None, 'left_behind': None})
    assert going_on.tied == []
    newest = summary.RunSummary(**{**vars(run), 'checks': {**run.checks, 4: (1.0, 0.009, 3)},
                                   'ends_on': 4, 'tie_break': 'newest', 'validation': {}})
    assert ('- runs/r: policies 2 4 tie at 100% of their checks; the newest chose policy 4; '
            'to tell them apart: python -m solar_ros.learn.validate runs/r --policy 2 4'
            ) in summary.table([newest]).splitlines()


def test_a_pretrained_folder_is_its_one_policy(finished, tmp_path):
    folder = RunDir(tmp_path / 'pretrained')
    folder.checkpoints.mkdir(parents=True)
    files = RunDir(finished)
    for source, target in ((files.config, folder.config), (files.validation, folder.validation),
                           (files.learner(2), folder.learner(2)),
                           (files.model(2), folder.model(2))):
        target.write_bytes(source.read_bytes())
    result = summary.summarise(folder.root)
    assert result.ends_on == result.left_behind == 2 and result.evaluation is None
    assert result.tied == []  # no checks kept
    assert result.end_validation == summary.summarise(finished).validation[2]


def test_a_folder_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert summary.main([str(tmp_path)]) == 2
    assert f'cannot read {tmp_path}' in capsys.readouterr().err
