"""GIFs of the best and a failed episode, replayed in the wide view where it replays."""

import numpy as np
from PIL import Image
from solar_ros.learn import video
from solar_ros.learn.episodes import Episode, EpisodeStore
from solar_ros.sim.sawyer_config import SawyerStackConfig
from solar_ros.sim.sawyer_env import SawyerStackEnv
import yaml

HORIZON = 3


def _record(env, store, seed, actions, success):
    images = [env.reset(task=1, seed=seed)]
    costs = []
    for action in actions:
        image, cost, _, info = env.step(action)
        images.append(image)
        costs.append(cost)
    store.append(Episode(images=np.stack(images), actions=np.asarray(actions),
                         costs=np.asarray(costs), task=1, seed=seed, success=success,
                         final_distance=info['final_distance'], policy_version=0))


def test_best_and_failed_gifs_with_the_replayed_wide_view(tmp_path, capsys):
    env_config = {'name': 'sawyer_stack', 'horizon': HORIZON}
    (tmp_path / 'config.yaml').write_text(yaml.safe_dump({'env': env_config}))
    store = EpisodeStore(tmp_path / 'episodes')
    with SawyerStackEnv(SawyerStackConfig(horizon=HORIZON)) as env:
        _record(env, store, 4, np.full((HORIZON, 7), 0.3), success=False)
        _record(env, store, 5, np.zeros((HORIZON, 7)), success=False)
    # A third episode whose seed does not give back its first frame cannot be replayed.
    odd = list(store)[0]
    odd.seed = 99
    odd.images[0] = 255 - odd.images[0]
    odd.final_distance = 0.0
    store.append(odd)

    assert video.main([str(tmp_path), '--out', str(tmp_path / 'gifs')]) == 0
    output = capsys.readouterr().out
    best, failed = (Image.open(tmp_path / 'gifs' / f'{name}_episode.gif')
                    for name in ('best', 'failed'))
    assert best.n_frames == failed.n_frames == HORIZON + 1
    assert best.size == (4 * 64, 4 * 64)  # the odd one (final distance 0): no wide view
    assert failed.size[0] > 4 * 64 and 'with the wide view' in output


def test_a_run_without_episodes_is_a_clear_error(tmp_path, capsys):
    (tmp_path / 'config.yaml').write_text(yaml.safe_dump({'env': {'name': 'point_mass'}}))
    assert video.main([str(tmp_path)]) == 2
    assert 'no recorded episodes' in capsys.readouterr().err
