"""Build a simulated environment by name from a settings mapping (the ``env`` config section).

Names: ``point_mass`` (:class:`solar_ros.sim.point_mass.PointMassEnv`) and ``sawyer_stack``
(:class:`solar_ros.sim.sawyer_env.SawyerStackEnv`, imported only when built, since it
needs PyBullet). The other keys are the environment's own settings.
:func:`env_settings` checks them without building anything; :func:`env_horizon` reads the
episode length from them and :func:`cost_residual_scale` says how each one's cost is a
squared offset; the settings' ``target_shift`` tells how far a reset seed moves the target
block (``sawyer_stack`` only), without a reset.
"""

import inspect
from typing import Any, Dict, Mapping, Union

from solar_ros.sim.point_mass import PointMassEnv
from solar_ros.sim.sawyer_config import SawyerStackConfig


class PointMassSettings:
    """The checked settings of a :class:`~solar_ros.sim.point_mass.PointMassEnv`."""

    def __init__(self, options: Dict[str, Any]) -> None:
        """Keep ``options``, the constructor's keyword arguments; unknown ones: ValueError."""
        parameters = inspect.signature(PointMassEnv).parameters
        unknown = sorted(set(options) - set(parameters))
        if unknown:
            raise ValueError(f'unknown env settings {unknown}; known: {sorted(parameters)}')
        self.options = options
        self.horizon = int(options.get('horizon', parameters['horizon'].default))

    def build(self) -> Any:
        """Return a new environment of these settings."""
        return PointMassEnv(**self.options)

    def residual_scale(self) -> float:
        """Return 1: the point mass's cost is ||p||^2."""
        return 1.0

    def target_noise(self) -> float:
        """Refuse: the point mass has no target block that a reset moves."""
        raise ValueError('the point_mass environment has no target block that a reset moves')


class SawyerStackSettings:
    """The checked settings of a :class:`~solar_ros.sim.sawyer_env.SawyerStackEnv`."""

    def __init__(self, options: Dict[str, Any]) -> None:
        """Read ``options`` as a :class:`SawyerStackConfig` (which checks them)."""
        self.config = SawyerStackConfig.from_dict(options)
        self.horizon = int(self.config.horizon)

    def build(self) -> Any:
        """Return a new environment of these settings."""
        from solar_ros.sim.sawyer_env import SawyerStackEnv
        return SawyerStackEnv(self.config)

    def residual_scale(self) -> float:
        """Return distance_scale (m): the squared distance cost is (d / distance_scale)^2.

        Raises:
            ValueError: the linear distance cost, which is not a squared offset.

        """
        if self.config.distance_cost != 'squared':
            raise ValueError(f'env.distance_cost {self.config.distance_cost!r} is not a squared '
                             "offset: only 'squared' has residuals")
        return float(self.config.distance_scale)

    def target_noise(self) -> float:
        """Return the most a reset moves the target block along x or along y, m."""
        return float(self.config.target_position_noise)

    def target_shift(self, seed: int) -> float:
        """Return how far the reset with ``seed`` moves the target block, m."""
        return self.config.target_shift(seed)


EnvSettings = Union[PointMassSettings, SawyerStackSettings]
KINDS = {'point_mass': PointMassSettings, 'sawyer_stack': SawyerStackSettings}
NAMES = tuple(KINDS)


def env_settings(settings: Mapping[str, Any]) -> EnvSettings:
    """Return the checked settings of the environment that ``settings['name']`` names.

    Raises:
        ValueError: the name is missing or unknown, or a setting is unknown or invalid.

    """
    options = dict(settings)
    name = options.pop('name', None)
    if name not in KINDS:
        raise ValueError(f'env.name must be one of {NAMES}, got {name!r}')
    return KINDS[name](options)


def make_env(settings: Mapping[str, Any]) -> Any:
    """Return the environment named ``settings['name']`` built with the remaining settings.

    Raises:
        ValueError: as :func:`env_settings`.

    """
    return env_settings(settings).build()


def env_horizon(settings: Mapping[str, Any]) -> int:
    """Return the steps per episode of the environment ``settings`` name, without building it.

    Raises:
        ValueError: as :func:`env_settings`.

    """
    return env_settings(settings).horizon


def cost_residual_scale(settings: Mapping[str, Any]) -> float:
    """Return the scale (m) that makes the environment's state cost ||aim_offset / scale||^2.

    The cost's residuals are then r_t = ``aim_offset()`` / scale, as recorded with every
    simulated episode (``Episode.aim_offsets``): the point mass's cost is ||p||^2 (scale 1),
    the stacking scene's squared distance cost (d / distance_scale)^2.

    Raises:
        ValueError: as :func:`env_settings`, or the cost is not a squared offset (the
            stacking scene's linear distance cost).

    """
    return env_settings(settings).residual_scale()
