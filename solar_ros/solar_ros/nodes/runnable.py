"""What the nodes can run: the check shared by the learner and the policy node."""

from solar_ros.learn.config import RunConfig


def check_runnable_by_nodes(config: RunConfig, source: str) -> None:
    """Raise ValueError unless the nodes can run ``config`` (read from ``source``).

    The nodes run SOLAR (not the MPC or VAE ablations) with one camera topic.
    """
    if config.loop.method != 'solar' or config.model.get('inference', 'solar') != 'solar':
        raise ValueError(f'{source}: the nodes run SOLAR only; run the MPC and VAE '
                         'ablations with python -m solar_ros.learn.run or .evaluate')
    if config.model.get('views', 1) != 1:
        raise ValueError(f'{source}: the nodes take one camera topic; run multi-camera '
                         'configs (model.views > 1) with python -m solar_ros.learn.run or '
                         '.evaluate')
