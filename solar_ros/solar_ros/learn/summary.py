"""Summarise runs side by side: checks, validation and the policy each run ends on.

    python -m solar_ros.learn.summary RUN_DIR [RUN_DIR ...]

Prints one Markdown table row per run directory, from its files alone (nothing is run or
written): the task and seeds of its settings; the success of every policy's checks
(``loop.check_rollouts``, in %); the validation success of every validated policy
(``validation.csv``, :mod:`solar_ros.learn.validate`) and the best of them; and for a
finished run the policy it ends on (its best-checked, saved as policy ``iterations + 1``;
without checks the last), with its validation and its evaluation success
(``evaluation_policy_NNNN.csv``, :mod:`solar_ros.learn.evaluate`, noise off, with the 95%
Wilson interval) and how many points under the run's best validation it is. A table not
made yet shows "-"; a run still going says which policy it has reached. Under the table:
the mean and range over the finished runs, and how many reach the goal of a finished run
(:data:`GOAL`: evaluation and validation success, and distance to its best validation).
"""

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode, EPISODE_GLOB
from solar_ros.learn.evaluate import format_rate
from solar_ros.learn.learner import (best_checked, check_scores, CheckScores, tie_line,
                                     tied_with_best)
from solar_ros.learn.run_dir import RunDir
from solar_ros.learn.validate import read_table

GOAL = {'evaluation': 0.90, 'validation': 0.85, 'under_best': 0.10}
"""A finished run reaches the goal with at least this evaluation and validation success
(fractions of the 50 seeds) on the policy it ends on, at most ``under_best`` under its best
validated policy."""


@dataclass
class RunSummary:
    """What one run directory says about its run.

    Attributes:
        name: the run directory as given.
        task: the stacking task (``loop.task``).
        loop_seed: ``loop.seed``, the seed of the episodes.
        model_seed: ``model.seed``, the seed of the networks' initialisation.
        iterations: the policy updates the run makes (``loop.iterations``).
        reached: the newest complete policy.
        checks: check success rate, mean final distance (m) and count per checked policy.
        validation: validation success rate (fraction) per validated policy.
        ends_on: the policy a finished run ends on; None while the run goes on.
        left_behind: the version under which it saved that policy (``iterations + 1``
            with checks, else ``iterations``; a pretrained folder's only policy).
        evaluation: the noise-off evaluation row of policy ``left_behind``, as
            :mod:`solar_ros.learn.evaluate` writes it (rates as fractions); None if not made.
        tie_break: the rule that chose among policies tied on their checks
            (``loop.tie_break``).

    """

    name: str
    task: int
    loop_seed: int
    model_seed: int
    iterations: int
    reached: int
    checks: CheckScores
    validation: Dict[int, float]
    ends_on: Optional[int]
    left_behind: Optional[int]
    evaluation: Optional[Dict[str, float]]
    tie_break: str = 'distance'

    @property
    def best_validation(self) -> Optional[float]:
        """Return the highest validation success of the validated policies, if any.

        The policy the run ends on is one of policies 1..iterations, validated under
        either number.
        """
        rates = [r for v, r in self.validation.items() if 1 <= v <= self.iterations]
        if self.end_validation is not None:
            rates.append(self.end_validation)
        return max(rates) if rates else None

    def validation_of(self, version: int) -> Optional[float]:
        """Return policy ``version``'s validation success, if validated.

        The policy the run ends on counts as validated under either number (the one it is
        saved as first, then its own).
        """
        if version == self.ends_on and self.left_behind in self.validation:
            return self.validation[self.left_behind]
        return self.validation.get(version)

    @property
    def validated_every_policy(self) -> bool:
        """Return whether every policy 1..iterations has its validation success."""
        return all(self.validation_of(v) is not None for v in range(1, self.iterations + 1))

    @property
    def end_validation(self) -> Optional[float]:
        """Return the validation success of the policy the run ends on, if validated."""
        if self.left_behind is None:  # the run goes on; ends_on is None too
            return None
        return self.validation_of(self.ends_on)

    @property
    def under_best(self) -> Optional[float]:
        """Return how far the end policy's validation success is under the best one's.

        None until every policy is validated: the best may be among the others.
        """
        best, end = self.best_validation, self.end_validation
        if best is None or end is None or not self.validated_every_policy:
            return None
        return best - end

    @property
    def tied(self) -> List[int]:
        """Return the policies whose checks tie with the end policy's, itself included.

        Empty without a tie, while the run goes on, and for a pretrained folder.
        """
        if self.ends_on not in self.checks:
            return []
        tied = tied_with_best(self.checks)
        return tied if len(tied) > 1 else []

    def reaches_goal(self) -> bool:
        """Return whether the finished run meets every figure of :data:`GOAL`."""
        return (self.evaluation is not None and self.end_validation is not None
                and self.evaluation['success_rate'] >= GOAL['evaluation']
                and self.end_validation >= GOAL['validation']
                and self.under_best is not None
                and self.under_best <= GOAL['under_best'] + 1e-9)


def summarise(run_dir: Path) -> RunSummary:
    """Read the run directory (or pretrained folder) ``run_dir``.

    Raises ValueError or OSError if it holds no run.
    """
    files = RunDir(run_dir)
    config = RunConfig.from_yaml(files.config)
    done = files.completed_policies()
    if not done:
        raise ValueError(f'{files.checkpoints}: no complete policy')
    checks = check_scores(Episode.load(p) for p in sorted(files.checks.glob(EPISODE_GLOB)))
    iterations = config.loop.iterations
    left_behind: Optional[int] = iterations + 1 if checks else iterations
    ends_on = best_checked(checks, config.loop.tie_break) if checks else iterations
    if len(done) == 1 and done[0] > 0:  # a pretrained folder keeps one policy alone
        left_behind = ends_on = done[0]
    elif done[-1] != left_behind:  # the run goes on
        left_behind = ends_on = None
    validation = {v: row['success_rate'] for v, row in read_table(files.validation).items()}
    summary = RunSummary(name=str(run_dir), task=config.loop.task, loop_seed=config.loop.seed,
                         model_seed=int(config.model.get('seed', 0)), iterations=iterations,
                         reached=done[-1], checks=checks, validation=validation,
                         ends_on=ends_on, left_behind=left_behind, evaluation=None,
                         tie_break=config.loop.tie_break)
    if left_behind is not None:
        summary.evaluation = _evaluation(files.evaluation(left_behind), summary.task)
    return summary


def _evaluation(path: Path, task: int) -> Optional[Dict[str, float]]:
    """Return the noise-off row of ``task`` in an evaluation table, or None."""
    if not path.is_file():
        return None
    with open(path, newline='') as table:
        for row in csv.DictReader(table):
            if int(row['task']) == task and row['noise'] == 'False':
                return {**{k: float(v) for k, v in row.items() if k != 'noise'},
                        'episodes': int(row['episodes'])}
    return None


def _percent(rate: Optional[float], sign: str = '') -> str:
    """Return a fraction as a whole percentage (followed by ``sign``), '-' for None."""
    return '-' if rate is None else f'{100 * rate:.0f}{sign}'


def table(runs: Sequence[RunSummary]) -> str:
    """Return the Markdown table of ``runs``, then the lines on the finished ones."""
    lines = ['| run | task | loop.seed, model.seed | checks of policies 1-N (%) '
             '| validation of policies 1-N (%) | best validation | ends on '
             '| its validation | its evaluation | under its best |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for run in runs:
        versions = range(1, run.iterations + 1)
        checks = ', '.join(_bold(_percent(run.checks[v][0]), v == run.ends_on)
                           if v in run.checks else '-' for v in versions)
        validation = ', '.join(_percent(run.validation_of(v)) for v in versions)
        if run.ends_on is None:
            ends = f'not finished (policy {run.reached} of {run.iterations})'
        else:
            ends = f'policy {run.ends_on}'
        evaluation = '-' if run.evaluation is None else format_rate(run.evaluation)
        under = '-' if run.under_best is None else f'{100 * run.under_best:.0f} points'
        lines.append(f'| {run.name} | {run.task} | {run.loop_seed}, {run.model_seed} '
                     f'| {checks} | {validation} | {_percent(run.best_validation, "%")} '
                     f'| {ends} | {_percent(run.end_validation, "%")} | {evaluation} '
                     f'| {under} |')
    lines += ['', *_finished_lines(runs)]
    return '\n'.join(lines)


def _bold(cell: str, chosen: bool) -> str:
    """Return ``cell``, in bold when it is the policy the run ends on."""
    return f'**{cell}**' if chosen else cell


def _finished_lines(runs: Sequence[RunSummary]) -> List[str]:
    """Return the mean and range of the finished runs' figures and their count at the goal."""
    finished = [r for r in runs if r.ends_on is not None]
    if not finished:
        return ['no run has finished']
    lines = [f'{len(finished)} of {len(runs)} runs finished']
    for label, rates in (('validation', [r.end_validation for r in finished]),
                         ('evaluation', [r.evaluation['success_rate'] if r.evaluation
                                         else None for r in finished])):
        known = [r for r in rates if r is not None]
        if known:
            lines.append(f'- the policies they end on, {label}: mean {np.mean(known):.1%}, '
                         f'range {min(known):.0%}-{max(known):.0%} ({len(known)} runs)')
    judged = [r for r in finished if r.validated_every_policy]
    lines.append(f'- reach the goal ({GOAL["evaluation"]:.0%} evaluation, '
                 f'{GOAL["validation"]:.0%} validation, at most '
                 f'{100 * GOAL["under_best"]:.0f} points under the best validation): '
                 f'{sum(r.reaches_goal() for r in judged)} of the {len(judged)} runs '
                 f'validated on every policy')
    if len(judged) < len(finished):
        lines.append(f'- not judged: {len(finished) - len(judged)} runs without the '
                     'validation of every policy (python -m solar_ros.learn.validate RUN_DIR)')
    for run in finished:
        tied = run.tied
        unvalidated = [v for v in tied if run.validation_of(v) is None]
        if unvalidated:
            lines.append(f'- {run.name}: ' + tie_line(tied, run.checks[run.ends_on][0],
                                                      run.ends_on, Path(run.name),
                                                      unvalidated, run.tie_break))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, print the summary table and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dirs', type=Path, nargs='+', metavar='RUN_DIR',
                        help='run directories of SOLAR runs')
    args = parser.parse_args(argv)
    runs = []
    for run_dir in args.run_dirs:
        try:
            runs.append(summarise(run_dir))
        except (OSError, ValueError) as error:
            print(f'solar_ros.summary: cannot read {run_dir}: {error}', file=sys.stderr)
            return 2
    print(table(runs))
    return 0


if __name__ == '__main__':
    sys.exit(main())
