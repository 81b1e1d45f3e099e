"""SawyerStackEnv against the published Sawyer figures and the task's promises.

Kinematics and masses, limits, images, reproducibility, and that the scripted expert
(and neither a random nor a greedy controller) stacks the block.
"""

import math
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient
import pytest
from solar_ros.sim.environments import cost_residual_scale
from solar_ros.sim.expert import GreedyLineController, ScriptedExpert
from solar_ros.sim.sawyer_config import SawyerStackConfig, TASKS
from solar_ros.sim.sawyer_env import JOINT_LOWER, JOINT_MAX_VELOCITY, JOINT_UPPER, SawyerStackEnv
from solar_ros.sim.sawyer_urdf import LINK_MASSES, sawyer_urdf, write_sawyer_urdf
import yaml

pytestmark = pytest.mark.slow  # seconds to minutes: deselect with -m "not slow"

SIM_YAML = Path(__file__).resolve().parents[1] / 'config' / 'sim.yaml'
# Corke's standard-DH Sawyer model (Robotics Toolbox for Python), metres and rad.
DH_A = [0.081, 0, 0, 0, 0, 0, 0]
DH_D = [0.317, 0.1925, 0.4, 0.1685, 0.4, 0.1363, 0.13375]
DH_ALPHA = [-math.pi / 2] * 6 + [0.0]
# The DH joint angles in terms of the URDF's: theta = sign * q + offset (zero poses differ).
DH_SIGN = [1, 1, 1, -1, 1, 1, 1]
DH_OFFSET = [0, -math.pi / 2, 0, math.pi, 0, math.pi, 0]
PUBLISHED_REACH = 1.26
PUBLISHED_ARM_MASS = 19.2


def _dh_flange(q: np.ndarray) -> np.ndarray:
    transform = np.eye(4)
    for i in range(7):
        theta = DH_SIGN[i] * q[i] + DH_OFFSET[i]
        ct, st = math.cos(theta), math.sin(theta)
        ca, sa = math.cos(DH_ALPHA[i]), math.sin(DH_ALPHA[i])
        transform = transform @ np.array([[ct, -st * ca, st * sa, DH_A[i] * ct],
                                          [st, ct * ca, -ct * sa, DH_A[i] * st],
                                          [0, sa, ca, DH_D[i]], [0, 0, 0, 1]])
    return transform[:3, 3]


@pytest.fixture(scope='module')
def arm(tmp_path_factory):
    """Load the bare URDF in a client of its own; yield (client, body, link index by name)."""
    client = BulletClient(connection_mode=pybullet.DIRECT)
    body = client.loadURDF(str(write_sawyer_urdf(tmp_path_factory.mktemp('urdf'))),
                           useFixedBase=True, flags=pybullet.URDF_USE_INERTIA_FROM_FILE)
    links = {client.getJointInfo(body, i)[12].decode(): i
             for i in range(client.getNumJoints(body))}
    yield client, body, links
    client.disconnect()


def _flange(arm, q) -> np.ndarray:
    client, body, links = arm
    for index, value in enumerate(q):
        client.resetJointState(body, index, float(value))
    return np.array(client.getLinkState(body, links['right_hand'],
                                        computeForwardKinematics=True)[4])


@pytest.fixture(scope='module')
def env():
    """Share one environment without rendering across the slow tests."""
    environment = SawyerStackEnv(SawyerStackConfig(render=False))
    yield environment
    environment.close()


def test_forward_kinematics_matches_the_published_dh_model(arm):
    rng = np.random.default_rng(0)
    for q in rng.uniform(JOINT_LOWER, JOINT_UPPER, size=(25, 7)):
        error = np.linalg.norm(_flange(arm, q) - _dh_flange(q))
        # The DH model rounds two offsets by 2.5 mm; allow 1 % of the reach.
        assert error < 0.01 * PUBLISHED_REACH, (q, error)


def test_reach_and_mass_match_the_published_figures(arm):
    client, body, links = arm
    reach = max(np.linalg.norm(_flange(arm, [0, q1, 0, 0, 0, 0, 0]))
                for q1 in np.linspace(JOINT_LOWER[1], JOINT_UPPER[1], 721))
    assert reach == pytest.approx(PUBLISHED_REACH, rel=0.03)
    # A fixed base reads as mass 0 in PyBullet: take the arm links' masses from the URDF.
    masses = {link.get('name'): float(link.find('inertial/mass').get('value'))
              for link in ElementTree.fromstring(sawyer_urdf()).iter('link')}
    mass = sum(masses[name] for name in LINK_MASSES)
    assert masses['right_l3'] == pytest.approx(client.getDynamicsInfo(body, links['right_l3'])[0])
    assert mass == pytest.approx(PUBLISHED_ARM_MASS, rel=0.01)


def test_velocity_and_position_limits_are_enforced(env):
    env.reset(task=1, seed=0)
    before = env.joint_positions()
    env.step(10 * JOINT_MAX_VELOCITY)
    moved = np.abs(env.joint_positions() - before)
    assert np.all(moved <= JOINT_MAX_VELOCITY * env.config.control_period * 1.02 + 1e-4)
    reached = np.zeros(7, dtype=bool)
    for _ in range(env.horizon - 1):
        _, _, _, info = env.step(np.array([1, -1, 1, -1, 1, -1, 1]) * JOINT_MAX_VELOCITY)
        q = info['joint_positions']
        assert np.all(q >= JOINT_LOWER - 1e-3) and np.all(q <= JOINT_UPPER + 1e-3)
        reached |= (np.abs(q - JOINT_LOWER) < 0.02) | (np.abs(q - JOINT_UPPER) < 0.02)
    assert reached.sum() >= 3, 'the drive should push several joints onto their limits'


def test_no_joint_outruns_its_speed_limit_when_others_reverse_hard(env):
    # Saturated commands whose signs flip every step: the reaction of the strong
    # shoulder joints drives the weaker ones, which alone would reach 2-3 times their
    # limit; the governor keeps every joint at or under it, measured and moved.
    rng = np.random.default_rng(0)
    fastest, moved_fastest = np.zeros(7), np.zeros(7)
    for seed, task in enumerate((1, 2, 3)):
        env.reset(task=task, seed=seed)
        for _ in range(env.horizon - 1):  # the last step also settles the released block
            before = env.joint_positions()
            _, _, _, info = env.step(rng.choice([-1.0, 1.0], size=7) * JOINT_MAX_VELOCITY)
            fastest = np.maximum(fastest, np.abs(info['joint_velocities']))
            travelled = np.abs(info['joint_positions'] - before) / env.config.control_period
            moved_fastest = np.maximum(moved_fastest, travelled)
    assert np.all(fastest <= JOINT_MAX_VELOCITY * 1.001)
    assert np.all(moved_fastest <= JOINT_MAX_VELOCITY * 1.001)
    assert np.all(moved_fastest >= 0.9 * JOINT_MAX_VELOCITY), 'every joint reaches its limit'


def test_bad_input_raises_clear_errors(env):
    with pytest.raises(ValueError, match='task'):
        env.reset(task=4, seed=0)
    env.reset(task=1, seed=0)
    with pytest.raises(ValueError, match='shape'):
        env.step(np.zeros(6))
    with pytest.raises(ValueError, match='finite'):
        env.step(np.array([0, 0, np.nan, 0, 0, 0, 0]))
    for _ in range(env.horizon):
        env.step(np.zeros(7))
    with pytest.raises(RuntimeError, match='reset'):
        env.step(np.zeros(7))


def test_images_have_the_right_shape_and_change_when_the_arm_moves():
    with SawyerStackEnv(SawyerStackConfig(horizon=5)) as rendering:
        first = rendering.reset(task=2, seed=3)
        assert first.shape == (64, 64, 3) and first.dtype == np.uint8
        still, _, _, _ = rendering.step(np.zeros(7))
        moved, _, _, _ = rendering.step(np.array([0.8, 0.5, 0, 0, 0, 0, 0]))
    assert np.abs(still.astype(int) - first).mean() < 0.5
    changed = np.any(moved != still, axis=-1).mean()
    assert changed > 0.02, f'only {changed:.1%} of the pixels changed'


def _rollout(environment, task, seed, policy_seed):
    images = [environment.reset(task=task, seed=seed)]
    rng = np.random.default_rng(policy_seed)
    costs, infos, done = [], [], False
    while not done:
        action = rng.uniform(environment.action_low, environment.action_high) * 0.3
        image, cost, done, info = environment.step(action)
        images.append(image)
        costs.append(cost)
        infos.append(info)
    return np.array(images), np.array(costs), infos


def test_same_seed_gives_the_same_episode_bit_for_bit():
    config = SawyerStackConfig(horizon=6, image_size=32)
    with SawyerStackEnv(config) as first, SawyerStackEnv(config) as second:
        _rollout(second, task=2, seed=5, policy_seed=1)  # a different episode before
        images_a, costs_a, infos_a = _rollout(first, task=3, seed=7, policy_seed=0)
        images_b, costs_b, infos_b = _rollout(second, task=3, seed=7, policy_seed=0)
        images_c, _, _ = _rollout(second, task=3, seed=8, policy_seed=0)
    assert np.array_equal(images_a, images_b)
    assert np.array_equal(costs_a, costs_b)
    for a, b in zip(infos_a, infos_b):
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(images_a, images_c)


def _successes(environment, task, seeds, controller_class=None):
    outcomes = []
    for seed in seeds:
        environment.reset(task=task, seed=seed)
        if controller_class is None:
            rng = np.random.default_rng(1000 + seed)

            def policy():
                return rng.uniform(environment.action_low, environment.action_high)
        else:
            controller = controller_class(environment)
            controller.reset()
            policy = controller.act
        done = False
        while not done:
            _, cost, done, info = environment.step(policy())
            assert np.isfinite(cost) and cost >= 0
        outcomes.append(info['success'])
    return outcomes


@pytest.mark.parametrize('task', TASKS)
def test_scripted_expert_stacks_the_block(env, task):
    assert sum(_successes(env, task, range(20), ScriptedExpert)) >= 19


@pytest.mark.parametrize('task', TASKS)
def test_random_policy_rarely_stacks(env, task):
    assert sum(_successes(env, task, range(20))) <= 1


class _ShiftedExpert(ScriptedExpert):
    """The scripted expert, moving over and lowering onto a point ``shift`` (3,) m off."""

    shift = np.zeros(3)

    def _plan(self):
        lift, above, place = super()._plan()
        return [lift, above + self.shift, place + self.shift]


def test_a_level_block_let_go_off_centre_rests_on_the_target_as_far_off(env):
    """Let go level 1 cm off it stacks; 2 cm off it rests on the target, beyond the bar."""
    for shift, stacked in ((0.01, True), (0.02, False)):
        env.reset(task=2, seed=5)
        expert = _ShiftedExpert(env)
        expert.shift = np.array([0.0, shift, 0.0])
        expert.reset()
        done = False
        while not done:
            _, _, done, info = env.step(expert.act())
        assert info['release_tilt_deg'] < 1.0
        assert info['fell_off'] is False and info['success'] is stacked
        assert info['horizontal_offset'] == pytest.approx(
            info['release_horizontal'], abs=2e-3)


def test_greedy_line_fails_on_task_3_where_the_expert_succeeds(env):
    seeds = range(10)
    assert sum(_successes(env, 3, seeds, GreedyLineController)) == 0
    assert all(_successes(env, 3, seeds, ScriptedExpert))


def test_hold_still_drops_the_block_and_reports_the_outcome(env):
    env.reset(task=1, seed=0)
    start_distance = env.distance_to_goal()
    held, target = env.held_block_pose(), env.target_block_pose()
    for _ in range(env.horizon):
        _, cost, done, info = env.step(np.zeros(7))
    assert done and not info['success']
    # Held still, the block is let go where it started.
    assert info['release_horizontal'] == pytest.approx(
        np.linalg.norm(held[:2] - target[:2]), abs=2e-3)
    assert info['release_height'] == pytest.approx(
        held[2] - target[2] - env.config.block_size, abs=2e-3)
    assert cost == pytest.approx(start_distance, abs=2e-3)
    assert info['vertical_gap'] == pytest.approx(-env.config.block_size, abs=2e-3)
    assert info['fell_off'] is True  # on the table beside the target
    assert info['final_distance'] > 0.05
    assert info['target_shift'] == pytest.approx(
        np.linalg.norm(target[:2] - np.array(env.config.target_position)), abs=1e-6)
    assert 0 < info['target_shift'] <= np.sqrt(2) * env.config.target_position_noise
    # The config tells the move from the seed alone, as the reset made it.
    assert env.config.target_shift(0) == pytest.approx(info['target_shift'], abs=1e-12)


def test_cost_scores_the_state_the_action_is_chosen_in(env):
    env.reset(task=2, seed=0)
    action = np.full(7, 0.5)
    before = env.distance_to_goal()
    _, cost, _, info = env.step(action)
    assert abs(info['distance'] - before) > 0.01  # the step moved the block
    assert cost == pytest.approx(before + 0.5 * 0.01 * 7 * 0.5 ** 2, rel=1e-9)


def test_goal_clearance_moves_the_cost_aim_above_the_resting_point():
    config = SawyerStackConfig(goal_clearance=0.01, render=False)
    with SawyerStackEnv(config) as raised:
        raised.reset(task=1, seed=0)
        aim = raised.aim_position()
        np.testing.assert_allclose(aim - raised.goal_position(), [0.0, 0.0, 0.01])
        held = raised.held_block_pose()[:3]
        offset = raised.aim_offset()
        _, cost, _, _ = raised.step(np.zeros(7))
    np.testing.assert_allclose(offset, held - aim)
    assert cost == pytest.approx(float(np.linalg.norm(offset)), rel=1e-9)
    assert cost != pytest.approx(float(np.linalg.norm(held - aim + [0, 0, 0.01])), rel=1e-6)
    with pytest.raises(ValueError, match='goal_clearance'):
        SawyerStackConfig(goal_clearance=-0.01)


def test_approach_clearance_raises_the_aim_for_the_first_steps_only():
    config = SawyerStackConfig(goal_clearance=0.01, approach_clearance=0.05, approach_steps=2,
                               render=False)
    with SawyerStackEnv(config) as env:
        env.reset(task=3, seed=0)
        costs, lifts = [], []
        for _ in range(3):
            lifts.append(env.aim_position()[2] - env.goal_position()[2])
            held = env.held_block_pose()[:3]
            distance = float(np.linalg.norm(held - env.aim_position()))
            _, cost, _, _ = env.step(np.zeros(7))
            costs.append((cost, distance))
    np.testing.assert_allclose(lifts, [0.06, 0.06, 0.01])
    for cost, distance in costs:
        assert cost == pytest.approx(distance, rel=1e-9)
    for bad, name in (({'approach_clearance': -0.01}, 'approach_clearance'),
                      ({'approach_steps': -1}, 'approach_steps')):
        with pytest.raises(ValueError, match=name):
            SawyerStackConfig(**bad)


def test_lean_length_adds_the_held_blocks_lean_to_the_offset_and_the_cost():
    """aim_offset goes on with lean_length * the horizontal part of the block's up axis.

    The episode's end reports the tilt the block was let go at (``release_tilt_deg``).
    """
    settings = {'distance_cost': 'squared', 'distance_scale': 0.1, 'render': False}
    scale = cost_residual_scale({'name': 'sawyer_stack', **settings})
    turn = np.zeros(7)
    turn[5] = 1.0  # rad/s: the wrist tips the hand over
    with SawyerStackEnv(SawyerStackConfig(lean_length=0.05, **settings)) as leaning, \
            SawyerStackEnv(SawyerStackConfig(**settings)) as level:
        leaning.reset(task=2, seed=3)
        level.reset(task=2, seed=3)
        start = leaning.aim_offset()
        assert start.shape == (5,) and level.aim_offset().shape == (3,)
        np.testing.assert_allclose(start[:3], level.aim_offset(), atol=1e-12)
        assert np.linalg.norm(start[3:]) < 1e-3  # held level at the start
        for _ in range(3):
            residual = leaning.aim_offset() / scale
            _, cost, _, _ = leaning.step(turn)
            assert cost - 0.5 * 0.01 * 1.0 == pytest.approx(residual @ residual, rel=1e-9)
        rotation = np.array(pybullet.getMatrixFromQuaternion(
            leaning.held_block_pose()[3:])).reshape(3, 3)
        tilt = math.acos(min(1.0, abs(rotation[2, 2])))
        offset = leaning.aim_offset()
        done = False
        while not done:  # held still, the block is let go as tilted
            _, _, done, info = leaning.step(np.zeros(7))
    assert math.radians(10) < tilt < math.radians(80)
    assert np.linalg.norm(offset[3:]) == pytest.approx(0.05 * math.sin(tilt), rel=1e-6)
    assert info['release_tilt_deg'] == pytest.approx(math.degrees(tilt), abs=0.5)
    with pytest.raises(ValueError, match='lean_length'):
        SawyerStackConfig(lean_length=-0.01)


def test_squared_distance_cost_is_the_scaled_square_of_the_distance():
    config = SawyerStackConfig(distance_cost='squared', distance_scale=0.05, render=False)
    with SawyerStackEnv(config) as squared:
        squared.reset(task=1, seed=0)
        start = squared.distance_to_goal()
        _, cost, _, info = squared.step(np.zeros(7))
        _, moving_cost, _, _ = squared.step(np.full(7, 0.2))
    assert start > 0.05
    assert cost == pytest.approx((start / 0.05) ** 2, rel=1e-9)
    assert moving_cost == pytest.approx(
        (info['distance'] / 0.05) ** 2 + 0.5 * 0.01 * 7 * 0.2 ** 2, rel=1e-9)
    with pytest.raises(ValueError, match='distance_cost'):
        SawyerStackConfig(distance_cost='cubic')
    with pytest.raises(ValueError, match='distance_scale'):
        SawyerStackConfig(distance_scale=0.0)


def test_the_squared_cost_is_the_square_of_the_scaled_offset_and_the_linear_one_has_none():
    """cost_residual_scale: c_t - 1/2 a^T R a = ||aim_offset / scale||^2, aimed above the goal."""
    settings = {'name': 'sawyer_stack', 'distance_cost': 'squared', 'distance_scale': 0.05,
                'goal_clearance': 0.01, 'render': False}
    scale = cost_residual_scale(settings)
    assert scale == 0.05
    action = np.full(7, 0.3)
    with SawyerStackEnv(SawyerStackConfig.from_dict(
            {k: v for k, v in settings.items() if k != 'name'})) as env:
        env.reset(task=2, seed=1)
        for _ in range(3):
            residual = env.aim_offset() / scale
            _, cost, _, _ = env.step(action)
            action_term = 0.5 * 0.01 * 7 * 0.3 ** 2
            assert cost - action_term == pytest.approx(residual @ residual, rel=1e-9)
    with pytest.raises(ValueError, match='not a squared offset'):
        cost_residual_scale({'name': 'sawyer_stack', 'distance_cost': 'linear'})
    with pytest.raises(ValueError, match='env.name'):
        cost_residual_scale({'name': 'sawyr'})


def test_config_from_dict_and_yaml_defaults():
    assert SawyerStackConfig.from_dict({}) == SawyerStackConfig()
    assert SawyerStackConfig.from_dict({'horizon': 10, 'camera_eye': [1, 0, 1]}).camera_eye == (
        1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match='unknown'):
        SawyerStackConfig.from_dict({'horizn': 10})
    with pytest.raises(ValueError, match='action_cost'):
        SawyerStackConfig.from_dict({'action_cost': [1.0, 2.0]})
    with pytest.raises(ValueError, match='control_period'):
        SawyerStackConfig(control_period=0.0)
    parameters = yaml.safe_load(SIM_YAML.read_text())['/**']['ros__parameters']
    env_keys = set(SawyerStackConfig.descriptions())
    assert SawyerStackConfig.from_dict(
        {k: v for k, v in parameters.items() if k in env_keys}) == SawyerStackConfig()
    assert env_keys <= set(parameters)
