"""Deploy mode: a trained policy through the ROS nodes acts exactly as in one process.

The shipped task-1 policy, noise off, runs on the first evaluation seeds through the sim,
encoder, latent filter and controller nodes in lockstep over real DDS (the policy node in
place of the learner), and through ``learn.evaluate`` in one process; the commands and
the outcomes must agree.
"""

from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import rclpy
from solar_ros.learn import run
from solar_ros.learn.config import RunConfig
from solar_ros.learn.evaluate import EVAL_SEED_BASE, evaluate, load_policy
from solar_ros.learn.run_dir import RunDir
from solar_ros.nodes import qos
from solar_ros.nodes.bringup import Bringup, default_params
from solar_ros.sim.environments import make_env
from solar_ros_msgs.msg import EpisodeEvent
from std_msgs.msg import Float64MultiArray

pytestmark = pytest.mark.slow  # seconds to minutes: deselect with -m "not slow"

PACKAGE = Path(__file__).resolve().parents[1]
POLICY_DIR = PACKAGE / 'pretrained' / 'sawyer_task1'
EPISODES, HORIZON = 2, 30
# A two-camera run whose env section differs from the sim's parameters: the sim node must
# take the cameras, cost and aim point from the served run's config.
TWO_CAMERAS = ['env.views=2', 'model.views=2', 'env.distance_cost=squared',
               'env.goal_clearance=0.01', 'env.side_camera_eye=[0.62,0.5,0.45]',
               'env.side_camera_target=[0.6,-0.1,0.12]', 'loop.pretrain_episodes=3',
               'loop.pretrain_updates=3', 'loop.rollouts_per_iteration=3', 'loop.iterations=1']


@pytest.fixture(scope='module')
def two_camera_run(tmp_path_factory) -> Path:
    """Return a run directory of a barely trained two-camera policy (CI image size)."""
    run_dir = tmp_path_factory.mktemp('deploy') / 'two_cameras'
    sets = [a for s in TWO_CAMERAS for a in ('--set', s)]
    assert run.main(['--config', str(PACKAGE / 'config' / 'sawyer_task1_ci.yaml'),
                     '--run-dir', str(run_dir), '--threads', '1', *sets]) == 0
    return run_dir


@pytest.mark.parametrize('which', ['shipped task 1', 'two cameras'])
def test_nodes_send_the_commands_of_the_in_process_evaluation(which, request):
    policy_dir = POLICY_DIR if which == 'shipped task 1' else \
        request.getfixturevalue('two_camera_run')
    env = make_env(RunConfig.from_yaml(policy_dir / 'config.yaml').env)
    _, runs = evaluate(env, load_policy(policy_dir), 1, EPISODES, noise=False)
    system = Bringup(default_params(), {
        'policy_dir': str(policy_dir), 'noise_scale': 0.0, 'episodes': EPISODES,
        'seed': EVAL_SEED_BASE, 'task': 1, 'horizon': HORIZON, 'paced': False}, learn=False)
    try:
        peer = rclpy.create_node('command_recorder', context=system.context)
        system.executor.add_node(peer)
        system.nodes.append(peer)
        commands, ends = [], []
        peer.create_subscription(Float64MultiArray, 'velocity_controller/commands',
                                 lambda msg: commands.append(np.array(msg.data)), qos.COMMANDS)
        peer.create_subscription(EpisodeEvent, 'episode_events',
                                 lambda msg: ends.append(msg)
                                 if msg.kind == EpisodeEvent.END else None, qos.EVENTS)
        assert system.spin_until(lambda: len(ends) == EPISODES, timeout=300), \
            f'{len(ends)} of {EPISODES} episodes ended'
        assert system.policy.gains.policy_version == runs[0].policy_version
    finally:
        system.shutdown()
    assert len(commands) == EPISODES * HORIZON
    for k, episode in enumerate(runs):
        np.testing.assert_allclose(np.stack(commands[k * HORIZON:(k + 1) * HORIZON]),
                                   episode.actions, rtol=0, atol=1e-6)
        assert ends[k].success == episode.success
        assert ends[k].final_distance == pytest.approx(episode.final_distance, abs=1e-6)


def _bringup(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'solar_ros.nodes.bringup', *args],
                          capture_output=True, text=True, timeout=300)


def test_bringup_runs_a_pretrained_policy_and_refuses_to_learn_from_it(tmp_path):
    done = _bringup('--learn', 'false', '--policy-dir', str(POLICY_DIR), '--episodes', '1')
    assert done.returncode == 0, done.stderr
    shipped = RunDir(POLICY_DIR).completed_policies()[-1]
    assert f'solar_ros: 1 episodes of policy {shipped}' in done.stdout, done.stdout
    mixed = _bringup('--policy-dir', str(POLICY_DIR))
    assert mixed.returncode == 2 and 'add --learn false' in mixed.stderr
    missing = _bringup('--learn', 'false', '--policy-dir', str(tmp_path / 'nothing'))
    assert missing.returncode == 2 and 'cannot serve' in missing.stderr, missing.stderr
    for task in ('0', '9'):
        bad_task = _bringup('--task', task)
        assert bad_task.returncode == 2 and '--task must be one of' in bad_task.stderr
    learner = _bringup('--run-dir', str(POLICY_DIR))
    assert learner.returncode == 2 and 'learn:=false policy_dir:=' in learner.stderr, \
        learner.stderr
