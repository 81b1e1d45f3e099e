"""Finished in-process learning runs from settings dicts, as the learning tests need them."""

from pathlib import Path
from typing import Any, Dict

from solar_ros.learn import run
import yaml

# the image-observed point mass: three policy updates, three noise-free checks of each policy
CHECKED_POINT_MASS = {
    'env': {'name': 'point_mass', 'horizon': 12, 'image_size': 16},
    'model': {'latent_dim': 2, 'channels': 4, 'hidden': 8, 'image_size': 16,
              'batch_size': 4, 'action_cost_weight': 0.01, 'seed': 7},
    'loop': {'seed': 3, 'pretrain_episodes': 6, 'pretrain_updates': 4, 'iterations': 3,
             'rollouts_per_iteration': 3, 'refit_updates': 2, 'check_rollouts': 3},
}


def finished_run(settings: Dict[str, Any], root: Path) -> Path:
    """Write ``settings`` to ``root/run.yaml``, run it to the end in one thread, return the run.

    The run directory is ``root/run``; the test fails if ``learn.run`` exits with an error.
    """
    config = root / 'run.yaml'
    config.write_text(yaml.safe_dump(settings))
    run_dir = root / 'run'
    assert run.main(['--config', str(config), '--run-dir', str(run_dir), '--threads', '1']) == 0
    return run_dir
