"""Episodes round-trip through their files, and bad episodes fail with a clear error."""

import numpy as np
import pytest
from solar_ros.learn.episodes import Episode, EpisodeFormatError, EpisodeStore


def _episode(horizon: int = 4, seed: int = 0) -> Episode:
    """Return a small random episode of ``horizon`` steps."""
    rng = np.random.default_rng(seed)
    return Episode(images=rng.integers(0, 256, (horizon + 1, 8, 8, 3), dtype=np.uint8),
                   actions=rng.normal(size=(horizon, 2)), costs=rng.random(horizon),
                   task=2, seed=seed, success=bool(seed % 2), final_distance=0.25,
                   policy_version=3, explored=seed != 1,
                   aim_offsets=rng.normal(size=(horizon, 3)) if seed != 2 else None)


def test_store_appends_in_order_and_round_trips_every_field(tmp_path):
    store = EpisodeStore(tmp_path / 'episodes')
    written = [_episode(seed=s) for s in range(3)]
    for episode in written:
        store.append(episode)
    assert len(store) == 3
    for original, loaded in zip(written, store):
        np.testing.assert_array_equal(loaded.images, original.images)
        np.testing.assert_array_equal(loaded.actions, original.actions)
        np.testing.assert_array_equal(loaded.costs, original.costs)
        assert (loaded.task, loaded.seed, loaded.success, loaded.final_distance,
                loaded.policy_version) == (2, original.seed, original.success, 0.25, 3)
    assert [e.explored for e in store] == [True, False, True]
    loaded = list(store)
    for original in written[:2]:
        np.testing.assert_array_equal(loaded[original.seed].aim_offsets, original.aim_offsets)
    assert loaded[2].aim_offsets is None  # the truth was not known: none is made up
    assert [e.seed for e in store.load(start=1)] == [1, 2]


def test_an_episode_file_from_before_the_explored_flag_loads_as_explored(tmp_path):
    """Files written before ``explored`` existed hold rollouts with exploration noise."""
    episode = _episode(seed=1)
    fields = {name: getattr(episode, name) for name in (
        'images', 'actions', 'costs', 'task', 'seed', 'success', 'final_distance',
        'policy_version')}
    np.savez(tmp_path / 'old.npz', **fields)
    old = Episode.load(tmp_path / 'old.npz')
    assert old.explored and old.aim_offsets is None


def test_failed_write_leaves_no_file_behind(tmp_path, monkeypatch):
    store = EpisodeStore(tmp_path)
    store.append(_episode(seed=0))

    def broken_savez(*args, **kwargs):
        raise OSError('disk full')

    # A full disk cannot be caused on demand: the fault is injected into the writer.
    monkeypatch.setattr(np, 'savez', broken_savez)
    with pytest.raises(OSError, match='disk full'):
        store.append(_episode(seed=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['episode_000000.npz']


@pytest.mark.parametrize('change, message', [
    ({'actions': np.zeros((3, 2))}, r'actions: expected \(4, du\)'),
    ({'costs': np.zeros(5)}, r'costs: expected \(4,\)'),
    ({'costs': np.array([0.0, np.nan, 0.0, 0.0])}, 'costs: contains NaN'),
    ({'images': np.zeros((5, 8, 8, 3), dtype=np.float32)}, 'images: expected'),
    ({'aim_offsets': np.zeros((5, 3))}, r'aim_offsets: expected \(4, d\)'),
    ({'aim_offsets': np.full((4, 3), np.inf)}, 'aim_offsets: contains NaN'),
])
def test_inconsistent_episode_is_rejected(change, message):
    fields = vars(_episode()).copy()
    fields.update(change)
    with pytest.raises(EpisodeFormatError, match=message):
        Episode(**fields)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / 'episode_000000.npz'
    path.write_bytes(b'not an npz')
    with pytest.raises(EpisodeFormatError, match='episode_000000.npz'):
        Episode.load(path)


def test_numbers_continue_after_a_gap_and_never_overwrite(tmp_path):
    store = EpisodeStore(tmp_path)
    for seed in range(3):
        store.append(_episode(seed=seed))
    (tmp_path / 'episode_000001.npz').unlink()
    assert store.append(_episode(seed=7)).name == 'episode_000003.npz'
    assert [e.seed for e in store] == [0, 2, 7]


def test_a_corrupt_file_is_set_aside_and_the_rest_load(tmp_path):
    store = EpisodeStore(tmp_path)
    for seed in range(3):
        store.append(_episode(seed=seed))
    (tmp_path / 'episode_000001.npz').write_bytes(b'truncated')
    with pytest.warns(RuntimeWarning, match='episode_000001.npz'):
        assert [e.seed for e in store.load()] == [0, 2]
    assert (tmp_path / 'corrupt' / 'episode_000001.npz').exists()
    assert len(store) == 2


def test_temporary_files_of_a_crash_are_removed_when_the_store_opens(tmp_path):
    (tmp_path / '.tmp_abc.npz').write_bytes(b'half written')
    EpisodeStore(tmp_path)
    assert not (tmp_path / '.tmp_abc.npz').exists()
