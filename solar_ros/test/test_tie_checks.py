"""The tie checks' rule (``loop.tie_checks``) and the tie break, on known scores."""

import pytest
from solar_ros.learn.config import RunConfig
from solar_ros.learn.learner import best_checked, check_scores, tie_check_due
from solar_ros.learn.learner import CheckScores


def _scores(**runs: str) -> CheckScores:
    """Return scores from strings of check outcomes per policy, 'p4': '110' (1: stacked)."""
    return {int(name[1:]): (outcomes.count('1') / len(outcomes), 0.01, len(outcomes))
            for name, outcomes in runs.items()}


def test_without_a_tie_at_the_top_no_tie_check_is_due():
    assert tie_check_due(_scores(p1='000', p2='110', p3='111'), 3, 10) is None
    assert tie_check_due({}, 3, 10) is None


def test_a_round_starts_with_the_earliest_tied_policy_and_tops_up_the_others():
    assert tie_check_due(_scores(p1='000', p4='111', p6='111', p9='011'), 3, 10) == 4
    # policy 4 has had its check of the round and still ties: policy 6's turn
    assert tie_check_due(_scores(p1='000', p4='1111', p6='111', p9='011'), 3, 10) == 6
    # the round is complete: the next one starts with policy 4 again
    assert tie_check_due(_scores(p1='000', p4='1111', p6='1111', p9='011'), 3, 10) == 4


def test_a_policy_that_misses_a_tie_check_drops_out():
    # policy 4 missed: policy 6 leads alone, with fewer checks
    assert tie_check_due(_scores(p4='1110', p6='111'), 3, 10) is None
    # both missed once: they tie again at 75% and go on
    assert tie_check_due(_scores(p4='1110', p6='1101'), 3, 10) == 4


def test_a_round_starts_only_if_the_budget_left_pays_for_all_of_it():
    four_tied = _scores(p2='111', p4='111', p6='111', p8='111')
    assert tie_check_due(four_tied, 3, 4) == 2
    assert tie_check_due(four_tied, 3, 3) is None
    # 7 of 10 spent (on policies 2 and 4, which then missed): the next round of two needs 2
    spent = _scores(p2='1110001', p4='11100', p6='1111', p8='1111')
    assert tie_check_due(spent, 3, 10) == 6
    assert tie_check_due(spent, 3, 8) is None
    # a round under way is finished while the budget lasts
    assert tie_check_due(_scores(p6='1111', p8='111'), 3, 2) == 8


def test_scores_count_every_check_of_a_policy():
    class Check:
        def __init__(self, version: int, success: bool, distance: float) -> None:
            self.policy_version, self.success, self.final_distance = version, success, distance

    scores = check_scores([Check(2, True, 0.01), Check(1, False, 0.1), Check(2, False, 0.03)])
    assert list(scores) == [1, 2]
    assert scores[2] == (0.5, 0.02, 2) and scores[1] == (0.0, 0.1, 1)


def test_the_tie_break_chooses_among_the_policies_tied_at_the_top_of_their_checks():
    """loop.tie_break: 'distance' the smaller mean final distance, 'newest' the later one."""
    scores = {1: (0.0, 0.1, 3), 2: (2 / 3, 0.004, 3), 3: (1 / 3, 0.002, 3), 4: (2 / 3, 0.009, 3)}
    assert best_checked(scores) == best_checked(scores, 'distance') == 2
    assert best_checked(scores, 'newest') == 4
    better = {**scores, 3: (1.0, 0.05, 3)}  # a higher success rate wins under either rule
    assert best_checked(better, 'distance') == best_checked(better, 'newest') == 3
    assert RunConfig.from_dict({}).loop.tie_break == 'distance'
    with pytest.raises(ValueError, match=r"loop.tie_break must be one of \('distance', "
                       r"'newest'\), got 'oldest'"):
        RunConfig.from_dict({'loop': {'check_rollouts': 3, 'tie_break': 'oldest'}})
    with pytest.raises(ValueError, match='loop.tie_break: newest needs loop.check_rollouts'):
        RunConfig.from_dict({'loop': {'tie_break': 'newest'}})
