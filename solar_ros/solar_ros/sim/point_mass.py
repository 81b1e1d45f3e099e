"""A 2-D point mass observed through rendered images, the fast end-to-end check of SOLAR.

The state is a position p in the plane (world units), optionally with a velocity v. Two
linear dynamics are available:

- ``'velocity'`` (default): p' = p + a + w. The action is the displacement per step, so
  a single image shows the whole state.
- ``'double_integrator'``: v' = damping * v + a, p' = p + v' + w. The action is the change
  of velocity per step; the velocity is seen only through several frames.

w ~ N(0, noise_std^2 I) is process noise on the position, and the position is clipped to
the visible square [-1, 1]^2 (the only non-linearity, at the walls). Actions are clipped to
[-max_action, max_action] before use and the clipped action is what the cost sees.

The cost of step t is c_t = ||p_t||^2 + action_weight * ||a_t||^2, with the goal at the origin
and p_t the position *before* the action (as in Gym's reacher), so an episode's images
o_0..o_{T-1}, actions a_0..a_{T-1} and costs c_0..c_{T-1} line up with the latent states,
actions and costs of a horizon-T model. The action penalty is 1/2 a^T R a with
R = ``action_cost_matrix`` = 2 * action_weight * I.
The observation is a 64x64x3 uint8 image of an anti-aliased white disc on a black background.
"""

from typing import Dict, Tuple

import numpy as np

DYNAMICS = ('velocity', 'double_integrator')
# High contrast (white on black) lets a conv autoencoder find the disc within a few hundred
# updates; with a low-contrast disc it sits for ~600 updates on the mean image.
BACKGROUND = np.array([0.0, 0.0, 0.0])
DISC_COLOUR = np.array([255.0, 255.0, 255.0])


class PointMassEnv:
    """Simulate the image-observed point mass (see the module docstring for the model)."""

    def __init__(self, horizon: int = 20, image_size: int = 64, dynamics: str = 'velocity',
                 max_action: float = 0.2, noise_std: float = 0.01, action_weight: float = 0.01,
                 damping: float = 0.8, start_radius: Tuple[float, float] = (0.5, 0.9),
                 disc_radius: float = 0.25, success_distance: float = 0.1) -> None:
        """Configure the environment.

        Args:
            horizon: number of steps per episode (the episode is done after it).
            image_size: side of the square RGB image in pixels.
            dynamics: 'velocity' or 'double_integrator' (module docstring).
            max_action: bound on each action component, world units per step.
            noise_std: standard deviation of the position noise per step, world units.
            action_weight: weight of ||a||^2 in the cost.
            damping: velocity decay per step of the double integrator, in [0, 1].
            start_radius: (min, max) distance of the random start position from the goal.
            disc_radius: radius of the rendered disc, world units.
            success_distance: final distance to the goal counted as success, world units.

        """
        if dynamics not in DYNAMICS:
            raise ValueError(f'dynamics must be one of {DYNAMICS}, got {dynamics!r}')
        if horizon < 1:
            raise ValueError(f'horizon must be >= 1, got {horizon}')
        if image_size < 8:
            raise ValueError(f'image_size must be >= 8, got {image_size}')
        if not 0.0 <= start_radius[0] <= start_radius[1] <= 1.0:
            raise ValueError(f'start_radius must satisfy 0 <= min <= max <= 1, got {start_radius}')
        if max_action <= 0.0 or noise_std < 0.0 or action_weight < 0.0:
            raise ValueError('max_action must be > 0, noise_std and action_weight >= 0; got '
                             f'{max_action}, {noise_std}, {action_weight}')
        self.horizon = int(horizon)
        self.image_size = int(image_size)
        self.dynamics = dynamics
        self.action_dim = 2
        self.action_low = np.full(2, -max_action)
        self.action_high = np.full(2, max_action)
        self.action_cost_matrix = 2.0 * action_weight * np.eye(2)
        self.noise_std = float(noise_std)
        self.action_weight = float(action_weight)
        self.damping = float(damping)
        self.start_radius = (float(start_radius[0]), float(start_radius[1]))
        self.disc_radius = float(disc_radius)
        self.success_distance = float(success_distance)
        # World square [-extent, extent]^2 is the image; positions stay in [-1, 1]^2.
        self.extent = 1.0 + disc_radius
        centres = (np.arange(image_size) + 0.5) / image_size * 2.0 - 1.0
        self._pixel_x = centres * self.extent
        self._pixel_y = -centres * self.extent
        self._rng = np.random.default_rng(0)
        self.position = np.zeros(2)
        self.velocity = np.zeros(2)
        self.t = 0

    def reset(self, task: int = 1, seed: int = 0) -> np.ndarray:
        """Start an episode from a random position drawn with ``seed``; return the image.

        Args:
            task: kept for the common env protocol; the point mass has the single task
                'reach the origin'.
            seed: seed of the start position and of the process noise of this episode.

        Returns:
            obs: (H, W, 3) uint8 image.

        """
        del task
        self._rng = np.random.default_rng(seed)
        angle = self._rng.uniform(0.0, 2.0 * np.pi)
        radius = self._rng.uniform(*self.start_radius)
        self.position = radius * np.array([np.cos(angle), np.sin(angle)])
        self.velocity = np.zeros(2)
        self.t = 0
        return self.render()

    def aim_offset(self) -> np.ndarray:
        """Return the position minus the goal (the origin), (2,): x, y."""
        return self.position.copy()

    def step(self, action: np.ndarray) -> Tuple[np.ndarray, float, bool, Dict]:
        """Apply ``action`` (2,) for one step.

        Returns:
            (obs (H, W, 3) uint8 after the step, cost c_t of the state before the step and
            the action (module docstring), done bool, info dict). ``info`` always has
            'distance' (to the goal after the step) and 'action' (the clipped action);
            at the last step also 'final_distance' and 'success'.

        """
        if self.t >= self.horizon:
            raise RuntimeError('episode is over; call reset() first')
        action = np.asarray(action, dtype=float).reshape(-1)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f'action must be 2 finite numbers, got {action!r}')
        action = np.clip(action, self.action_low, self.action_high)
        cost = float(self.position @ self.position) + self.action_weight * float(action @ action)
        noise = self.noise_std * self._rng.standard_normal(2)
        if self.dynamics == 'velocity':
            self.position = self.position + action + noise
        else:
            self.velocity = self.damping * self.velocity + action
            self.position = self.position + self.velocity + noise
        self.position = np.clip(self.position, -1.0, 1.0)
        self.t += 1
        distance = float(np.linalg.norm(self.position))
        done = self.t >= self.horizon
        info = {'distance': distance, 'action': action}
        if done:
            info['final_distance'] = distance
            info['success'] = distance < self.success_distance
        return self.render(), float(cost), done, info

    def render(self) -> np.ndarray:
        """Return the (H, W, 3) uint8 image of the disc at the current position."""
        dx = self._pixel_x[None, :] - self.position[0]
        dy = self._pixel_y[:, None] - self.position[1]
        distance = np.sqrt(dx ** 2 + dy ** 2)
        pixel = 2.0 * self.extent / self.image_size
        # Coverage ramps linearly over one pixel across the rim: anti-aliased edge.
        coverage = np.clip((self.disc_radius - distance) / pixel + 0.5, 0.0, 1.0)[..., None]
        image = BACKGROUND * (1.0 - coverage) + DISC_COLOUR * coverage
        return np.round(image).astype(np.uint8)


def random_episodes(env: PointMassEnv, num_episodes: int, action_std: float = 0.1,
                    seed: int = 0) -> Dict[str, np.ndarray]:
    """Roll out i.i.d. Gaussian actions N(0, action_std^2 I) (clipped by the env).

    Episode n is reset with seed ``seed + n``; the actions come from one generator seeded
    with ``seed``.

    Returns:
        dict with 'images' (N, T, H, W, 3) uint8 (o_0..o_{T-1}), 'actions' (N, T, du) float64
        (clipped), 'costs' (N, T) float64 and 'final_distance' (N,) float64.

    """
    rng = np.random.default_rng(seed)
    size, horizon = env.image_size, env.horizon
    images = np.zeros((num_episodes, horizon, size, size, 3), dtype=np.uint8)
    actions = np.zeros((num_episodes, horizon, env.action_dim))
    costs = np.zeros((num_episodes, horizon))
    final = np.zeros(num_episodes)
    for n in range(num_episodes):
        obs = env.reset(seed=seed + n)
        for t in range(horizon):
            images[n, t] = obs
            obs, costs[n, t], _, info = env.step(action_std * rng.standard_normal(env.action_dim))
            actions[n, t] = info['action']
        final[n] = info['final_distance']
    return {'images': images, 'actions': actions, 'costs': costs, 'final_distance': final}
