"""Build a simulated environment by name from a settings mapping (the ``env`` config section).

Names: ``point_mass`` (:class:`solar_ros.sim.point_mass.PointMassEnv`) and ``sawyer_stack``
(:class:`solar_ros.sim.sawyer_env.SawyerStackEnv`, imported only when asked for, since it
needs PyBullet). The other keys are the environment's own settings.
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
