"""Episodes are assembled from events, frames and commands in any arrival order."""

import numpy as np
import pytest
from solar_ros.learn.recorder import END, EpisodeRecorder, START, STEP

HORIZON, DU = 3, 2
NAN = float('nan')
FINAL_DISTANCE = 0.012  # m, differs from the last cost (0.3)


def _stream(episode_id: int = 7, base: int = 1000):
    """Return the messages of one episode: ('event'|'frame'|'policy', args) in send order.

    Also the frames (T + 1, 4, 4, 3) and the applied actions (T, du) the STEP events carry.
    """
    rng = np.random.default_rng(episode_id)
    frames = rng.integers(0, 256, (HORIZON + 1, 4, 4, 3), dtype=np.uint8)
    actions = rng.normal(size=(HORIZON, DU))
    items = [('event', (START, episode_id, 2, 0, 0.0, False, NAN, base)),
             ('policy', (episode_id, 4)), ('frame', (frames[0], base))]
    for k in range(1, HORIZON + 1):
        items.append(('frame', (frames[k], base + k)))
        items.append(('event', (STEP, episode_id, 2, k, 0.1 * k, False, NAN, base + k,
                                actions[k - 1])))
    end = (END, episode_id, 2, HORIZON, 0.1 * HORIZON, True, FINAL_DISTANCE, base + HORIZON)
    items.append(('event', end))
    return items, frames, actions


def _feed(recorder, items):
    """Feed ``items``; return the episodes that completed."""
    done = []
    for kind, args in items:
        if kind == 'event':
            episode = recorder.on_event(*args)
        elif kind == 'policy':
            episode = recorder.on_policy(*args)
        else:
            episode = recorder.on_frame(*args)
        if episode is not None:
            done.append(episode)
    return done


@pytest.mark.parametrize('order', ['sent', 'frames_first', 'reversed_frames', 'start_resent',
                                   'policy_first', 'policy_last'])
def test_episode_is_assembled_whatever_the_arrival_order(order):
    items, frames, actions = _stream()
    if order == 'frames_first':
        items = [i for i in items if i[0] == 'frame'] + [i for i in items if i[0] != 'frame']
    elif order == 'reversed_frames':
        items = [i for i in items if i[0] != 'frame'] + [
            i for i in reversed(items) if i[0] == 'frame']
    elif order == 'start_resent':  # the lockstep sim resends an unanswered first frame
        items = items[:1] + items[:1] + items[1:]
    elif order in ('policy_first', 'policy_last'):
        note = [i for i in items if i[0] == 'policy']
        rest = [i for i in items if i[0] != 'policy']
        items = note + rest if order == 'policy_first' else rest + note
    done = _feed(EpisodeRecorder(HORIZON, DU), items)
    assert len(done) == 1
    episode = done[0]
    np.testing.assert_array_equal(episode.images, frames)
    np.testing.assert_array_equal(episode.actions, actions)  # the applied ones
    np.testing.assert_allclose(episode.costs, [0.1, 0.2, 0.3])
    assert (episode.task, episode.seed, episode.success, episode.policy_version) == (
        2, 7, True, 4)
    assert episode.final_distance == FINAL_DISTANCE  # the END event's, not the last cost


def test_an_incomplete_episode_is_dropped_when_the_next_starts():
    recorder = EpisodeRecorder(HORIZON, DU)
    first, _, _ = _stream(episode_id=1, base=100)
    second, frames, _ = _stream(episode_id=2, base=200)
    missing_frame = [i for i in first if not (i[0] == 'frame' and i[1][1] == 102)]
    done = _feed(recorder, missing_frame + second)
    assert [e.seed for e in done] == [2]
    np.testing.assert_array_equal(done[0].images, frames)
    assert recorder.dropped == 1


def test_an_episode_whose_start_was_missed_is_dropped_at_its_end_and_old_ones_are_not():
    """A recorder that joins mid-episode counts that episode once, when it ends."""
    recorder = EpisodeRecorder(HORIZON, DU)
    first, _, _ = _stream(episode_id=1, base=100)
    second, _, _ = _stream(episode_id=2, base=200)
    joined_late = [i for i in first if not (i[0] == 'event' and i[1][0] == START)]
    assert _feed(recorder, joined_late) == []
    assert recorder.dropped == 1 and 'episode 1' in recorder.last_problem
    assert [e.seed for e in _feed(recorder, second)] == [2]
    assert _feed(recorder, first[-1:]) == []  # a late copy of an older episode's END
    assert recorder.dropped == 1


def test_events_of_another_episode_and_bad_actions():
    recorder = EpisodeRecorder(HORIZON, DU)
    assert recorder.on_event(STEP, 9, 1, 1, 0.5, False, NAN, 5, np.zeros(DU)) is None
    recorder.on_event(START, 3, 1, 0, 0.0, False, NAN, 10)
    with pytest.raises(ValueError, match=r'action of shape \(3,\), expected \(2,\)'):
        recorder.on_event(STEP, 3, 1, 1, 0.5, False, NAN, 11, np.zeros(3))


def test_an_episode_waits_for_the_policy_that_ran_it():
    items, _, _ = _stream()
    recorder = EpisodeRecorder(HORIZON, DU)
    assert _feed(recorder, [i for i in items if i[0] != 'policy']) == []
    done = recorder.on_policy(7, 5)
    assert done is not None and done.policy_version == 5


def test_a_start_with_mean_action_records_a_check_episode():
    """The START event's mean_action (a check, run without noise) lands as explored False."""
    items, _, _ = _stream()
    start = (*items[0][1], (), True)  # no action at START, mean_action
    recorder = EpisodeRecorder(HORIZON, DU)
    [check] = _feed(recorder, [('event', start)] + items[1:])
    [explored] = _feed(recorder, _stream(episode_id=8)[0])
    assert not check.explored and explored.explored


def test_a_non_finite_action_or_cost_drops_the_episode_and_says_why():
    recorder = EpisodeRecorder(HORIZON, DU)
    items, _, _ = _stream(episode_id=7)
    first = next(n for n, (kind, args) in enumerate(items)
                 if kind == 'event' and args[0] == STEP)
    items[first] = ('event', items[first][1][:-1] + (np.array([np.inf, 0.0]),))
    with pytest.raises(ValueError, match='not finite'):
        _feed(recorder, items[:first + 1])
    assert _feed(recorder, items[first + 1:]) == []  # one step short: never complete
    nan_cost = [(kind, args[:4] + (np.nan,) + args[5:]
                 if kind == 'event' and args[0] == STEP else args)
                for kind, args in _stream(episode_id=8, base=5000)[0]]
    assert _feed(recorder, nan_cost) == []
    assert recorder.dropped == 2 and 'episode 8 dropped' in recorder.last_problem


def _with_offsets(items, offsets):
    """Return ``items`` with ``offsets[k]`` in the START (k = 0) and STEP k events."""
    out = []
    for kind, args in items:
        if kind == 'event' and args[0] in (START, STEP):
            action = args[8] if len(args) > 8 else ()
            args = (*args[:8], action, False, offsets[args[3]])
        out.append((kind, args))
    return out


def test_the_offsets_the_events_carry_are_kept_for_the_steps_before_each_action():
    """EpisodeEvent.aim_offset: offset k (after k steps) is the one seen before action k."""
    items, _, _ = _stream()
    offsets = np.arange(3.0 * (HORIZON + 1)).reshape(HORIZON + 1, 3) / 100
    [episode] = _feed(EpisodeRecorder(HORIZON, DU), _with_offsets(items, offsets))
    np.testing.assert_array_equal(episode.aim_offsets, offsets[:HORIZON])
    # Events without offsets (a real arm that does not know them), or one step without:
    # the episode is recorded without offsets.
    [plain] = _feed(EpisodeRecorder(HORIZON, DU), items)
    assert plain.aim_offsets is None
    partial = [offsets[k] if k != 1 else () for k in range(HORIZON + 1)]
    [gap] = _feed(EpisodeRecorder(HORIZON, DU), _with_offsets(items, partial))
    assert gap.aim_offsets is None


@pytest.mark.parametrize('bad, message', [((0.0, np.nan, 0.0), 'aim offset not finite'),
                                          ((0.0, 0.1), 'aim offset of 2 values, earlier ones 3')])
def test_a_bad_offset_drops_the_episode_and_says_why(bad, message):
    items, _, _ = _stream()
    offsets = [np.zeros(3), np.full(3, 0.01), np.asarray(bad), np.zeros(3)]
    carried = _with_offsets(items, offsets)
    third = next(n for n, (kind, args) in enumerate(carried)
                 if kind == 'event' and args[0] == STEP and args[3] == 2)
    recorder = EpisodeRecorder(HORIZON, DU)
    assert _feed(recorder, carried[:third]) == []
    with pytest.raises(ValueError, match=message):
        _feed(recorder, carried[third:third + 1])
    assert _feed(recorder, carried[third + 1:]) == []  # one step short: never complete
    _feed(recorder, _stream(episode_id=8, base=5000)[0])
    assert recorder.dropped == 1 and 'episode 7 dropped' in recorder.last_problem


def test_the_reset_seed_of_the_start_event_is_the_episodes_seed():
    """The sim's START carries its reset seed; without one the episode id stands in."""
    items, _, _ = _stream(episode_id=7)
    start = (*items[0][1], (), False, (), 900_004)  # no action, no offset, the reset's seed
    recorder = EpisodeRecorder(HORIZON, DU)
    [seeded] = _feed(recorder, [('event', start)] + items[1:])
    [unseeded] = _feed(recorder, _stream(episode_id=8)[0])
    assert (seeded.seed, unseeded.seed) == (900_004, 8)
