"""Build a simulated environment by name from a settings mapping (the ``env`` config section).

Names: ``point_mass`` (:class:`solar_ros.sim.point_mass.PointMassEnv`) and ``sawyer_stack``
(:class:`solar_ros.sim.sawyer_env.SawyerStackEnv`, imported only when asked for, since it
needs PyBullet). The other keys are the environment's own settings.
:func:`env_horizon` reads the episode length from the settings alone;
:func:`cost_residual_scale` says how each one's cost is a squared offset.
"""

from typing import Any, Mapping

NAMES = ('point_mass', 'sawyer_stack')


def make_env(settings: Mapping[str, Any]) -> Any:
    """Return the environment named ``settings['name']`` built with the remaining settings.

    Raises:
        ValueError: the name is missing or unknown.

    """
    options = dict(settings)
    name = options.pop('name', None)
    if name == 'point_mass':
        from solar_ros.sim.point_mass import PointMassEnv
        return PointMassEnv(**options)
    if name == 'sawyer_stack':
        from solar_ros.sim.sawyer_config import SawyerStackConfig
        from solar_ros.sim.sawyer_env import SawyerStackEnv
        return SawyerStackEnv(SawyerStackConfig.from_dict(options))
    raise ValueError(f'env.name must be one of {NAMES}, got {name!r}')


def env_horizon(settings: Mapping[str, Any]) -> int:
    """Return the steps per episode of the environment ``settings`` name, without building it.

    Raises:
        ValueError: the name is missing or unknown, or a setting is invalid.

    """
    options = dict(settings)
    name = options.pop('name', None)
    if name == 'point_mass':
        import inspect
        from solar_ros.sim.point_mass import PointMassEnv
        return int(options.get('horizon',
                               inspect.signature(PointMassEnv).parameters['horizon'].default))
    if name == 'sawyer_stack':
        from solar_ros.sim.sawyer_config import SawyerStackConfig
        return int(SawyerStackConfig.from_dict(options).horizon)
    raise ValueError(f'env.name must be one of {NAMES}, got {name!r}')


def cost_residual_scale(settings: Mapping[str, Any]) -> float:
    """Return the scale (m) that makes the environment's state cost ||aim_offset / scale||^2.

    The cost's residuals are then r_t = ``aim_offset()`` / scale, as recorded with every
    simulated episode (``Episode.aim_offsets``): the point mass's cost is ||p||^2 (scale 1),
    the stacking scene's squared distance cost (d / distance_scale)^2.

    Raises:
        ValueError: the name is missing or unknown, or the cost is not a squared offset
            (the stacking scene's linear distance cost).

    """
    options = dict(settings)
    name = options.pop('name', None)
    if name == 'point_mass':
        return 1.0
    if name == 'sawyer_stack':
        from solar_ros.sim.sawyer_config import SawyerStackConfig
        config = SawyerStackConfig.from_dict(options)
        if config.distance_cost != 'squared':
            raise ValueError(f'env.distance_cost {config.distance_cost!r} is not a squared '
                             "offset: only 'squared' has residuals")
        return float(config.distance_scale)
    raise ValueError(f'env.name must be one of {NAMES}, got {name!r}')
