"""Write GIFs of a run's best episode and of a failed one, as the camera saw them.

    python -m solar_ros.learn.video RUN_DIR [--out DIR] [--scale 4]

Picks, among the episodes recorded in ``RUN_DIR/episodes``, the best (successful first,
then the smallest final distance) and the worst failed one, and writes
``best_episode.gif`` and ``failed_episode.gif`` (default: into ``RUN_DIR``). Each frame is
the camera image upscaled ``scale`` times. For runs of the simulated arm whose episodes
can be replayed bit for bit (the environment seed and the recorded actions give back the
recorded first frame), the wide documentation view of the replayed episode is shown
beside the camera. Frames last one control period.
"""

import argparse
from pathlib import Path
import sys
from typing import List, Optional

import numpy as np
from PIL import Image
from solar_ros.images import views_side_by_side
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode, EpisodeStore
from solar_ros.learn.run_dir import RunDir
from solar_ros.sim.environments import make_env

FRAME_MS = 100  # the simulated arm's control period


def pick(episodes: List[Episode]) -> dict:
    """Return {'best': episode, 'failed': episode or absent} (see the module docstring)."""
    if not episodes:
        raise ValueError('the run has no recorded episodes')
    chosen = {'best': min(episodes, key=lambda e: (not e.success, e.final_distance))}
    failed = [e for e in episodes if not e.success]
    if failed:
        chosen['failed'] = max(failed, key=lambda e: e.final_distance)
    return chosen


def wide_frames(env, episode: Episode) -> Optional[List[np.ndarray]]:
    """Replay ``episode`` and return its wide views, or None when it does not replay."""
    if not hasattr(env, 'render_wide'):
        return None
    first = env.reset(task=episode.task, seed=episode.seed)
    if not np.array_equal(first, episode.images[0]):
        return None
    frames = [env.render_wide(400, 250)]
    for action in episode.actions:
        env.step(action)
        frames.append(env.render_wide(400, 250))
    return frames


def compose(episode: Episode, scale: int, wide: Optional[List[np.ndarray]]) -> List[Image.Image]:
    """Return the GIF frames: upscaled camera images (views side by side), wide views beside."""
    frames = []
    for t, image in enumerate(episode.images):
        camera = np.kron(views_side_by_side(image), np.ones((scale, scale, 1), dtype=np.uint8))
        if wide is not None:
            side = np.zeros((max(camera.shape[0], wide[t].shape[0]),
                             camera.shape[1] + wide[t].shape[1], 3), dtype=np.uint8)
            side[:camera.shape[0], :camera.shape[1]] = camera
            side[:wide[t].shape[0], camera.shape[1]:] = wide[t]
            camera = side
        frames.append(Image.fromarray(camera))
    return frames


def write_gif(frames: List[Image.Image], path: Path) -> Path:
    """Write ``frames`` as a looping GIF at one frame per control period."""
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, write the GIFs, and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', type=Path, help='run directory')
    parser.add_argument('--out', type=Path, help='output folder (default: RUN_DIR)')
    parser.add_argument('--scale', type=int, default=4, help='camera upscale factor')
    args = parser.parse_args(argv)
    try:
        files = RunDir(args.run_dir)
        config = RunConfig.from_yaml(files.config)
        chosen = pick(list(EpisodeStore(files.episodes)))
    except (OSError, ValueError) as error:
        print(f'solar_ros.video: cannot use {args.run_dir}: {error}', file=sys.stderr)
        return 2
    out = args.out or args.run_dir
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(config.env)
    for name, episode in chosen.items():
        wide = wide_frames(env, episode)
        path = write_gif(compose(episode, args.scale, wide), out / f'{name}_episode.gif')
        print(f'{name}: episode seed {episode.seed}, final distance '
              f'{episode.final_distance:.3f}, success {episode.success}'
              f'{", with the wide view" if wide else ""} -> {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
