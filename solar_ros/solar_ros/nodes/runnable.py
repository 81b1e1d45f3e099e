"""What the nodes can run, and which run config they serve.

The learner, the policy node and the sim node read one run config, so that the arm the sim
simulates (its cameras, cost and aim point: the config's ``env`` section) is the one the
model was trained on.
"""

from pathlib import Path
from typing import Any, Dict, Tuple

from ament_index_python.packages import get_package_share_directory
from solar_ros.learn.config import RunConfig
from solar_ros.learn.run_dir import RunDir


def check_runnable_by_nodes(config: RunConfig, source: str) -> None:
    """Raise ValueError unless the nodes can run ``config`` (read from ``source``).

    The nodes run SOLAR (not the MPC or VAE ablations) on the simulated or real arm.
    """
    if config.loop.method != 'solar' or config.model.get('inference', 'solar') != 'solar':
        raise ValueError(f'{source}: the nodes run SOLAR only; run the MPC and VAE '
                         'ablations with python -m solar_ros.learn.run or .evaluate')
    if config.env.get('name', 'sawyer_stack') != 'sawyer_stack':
        raise ValueError(f'{source}: the nodes run the Sawyer-style arm (env.name '
                         f'sawyer_stack), not {config.env["name"]!r}')


def served_config(run_config: str, policy_dir: str, task: int) -> Tuple[str, RunConfig]:
    """Return the path and settings of the run the nodes serve.

    Args:
        run_config: the ``run_config`` parameter: a run config YAML; empty: the installed
            config of the task, ``config/sawyer_task<task>.yaml``.
        policy_dir: the ``policy_dir`` parameter (deploy mode); when given, its
            ``config.yaml`` is served and ``run_config`` is not read.
        task: the ``task`` parameter (1, 2 or 3), the task the system runs.

    Raises:
        ValueError: the file cannot be read or holds bad settings (named in the message).

    """
    if policy_dir:
        path = str(RunDir(Path(policy_dir)).config)
    elif run_config:
        path = run_config
    else:
        path = str(Path(get_package_share_directory('solar_ros')) / 'config'
                   / f'sawyer_task{task}.yaml')
    try:
        settings = RunConfig.from_yaml(path)
    except OSError as error:
        name = 'policy_dir' if policy_dir else 'run_config'
        raise ValueError(f'parameter {name}: cannot read {path}: {error.strerror}') from None
    check_runnable_by_nodes(settings, path)
    return path, settings


def env_settings(config: RunConfig) -> Dict[str, Any]:
    """Return the SawyerStackConfig settings of a run config's ``env`` section."""
    return {key: value for key, value in config.env.items() if key != 'name'}
