"""The learner node: episodes it asked for and never heard of, and the episode length.

It asks again for episodes that never arrive (an episode lost whole), and expects episodes
as long as the run config's ``env.horizon`` where it sets one.
"""

from pathlib import Path
import time
from typing import Tuple

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from solar_ros.nodes import qos
from solar_ros.nodes.learner_node import LearnerNode
from solar_ros_msgs.msg import EpisodeBudget, EpisodeEvent, PolicyInUse
from spinning import spin_until, with_peer
import yaml

ASK_AGAIN_AFTER = 1.0  # s
PRETRAIN_EPISODES = 4


def start_learner(tmp_path: Path, run_config: Path,
                  **params) -> Tuple[rclpy.Context, LearnerNode]:
    """Start a learner node on ``run_config`` with a 5-step horizon parameter; its own context."""
    params_file = tmp_path / 'params.yaml'
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'run_dir': str(tmp_path / 'run'), 'run_config': str(run_config), 'horizon': 5,
        **params}}}))
    context = rclpy.Context()
    rclpy.init(args=['--ros-args', '--params-file', str(params_file)], context=context)
    return context, LearnerNode(context=context)


def test_episodes_asked_for_and_never_heard_of_are_asked_for_again(tmp_path):
    run_config = tmp_path / 'run.yaml'
    run_config.write_text(yaml.safe_dump({
        'model': {'latent_dim': 2, 'channels': 4, 'hidden': 8},
        'loop': {'pretrain_episodes': PRETRAIN_EPISODES, 'rollouts_per_iteration': 2}}))
    context, node = start_learner(tmp_path, run_config, ask_again_after=ASK_AGAIN_AFTER)
    try:
        # The sim's and controller's topics have a publisher, so the learner asks for its
        # first episodes; none of them ever sends an event, as when episodes are lost whole.
        peer, executor = with_peer(node, context, 'lost_episodes')
        peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS)
        peer.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
        peer.create_publisher(PolicyInUse, 'policy/in_use', qos.EVENTS)
        budgets = []
        peer.create_subscription(EpisodeBudget, 'learner/episode_budget',
                                 lambda msg: budgets.append((time.monotonic(), msg.issued)),
                                 qos.LATCHED_READER)
        spin_until(executor, lambda: budgets, 'the first request')
        assert budgets[0][1] == PRETRAIN_EPISODES
        spin_until(executor, lambda: len(budgets) > 1, 'the request asked again',
                   timeout=10 * ASK_AGAIN_AFTER)
        (first, _), (again, issued) = budgets[:2]
        assert issued == 2 * PRETRAIN_EPISODES  # the same episodes once more
        assert again - first >= ASK_AGAIN_AFTER
        executor.shutdown()
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_the_run_configs_env_horizon_replaces_the_horizon_parameter(tmp_path):
    # The sim node simulates the run config's env.horizon steps; the learner must expect
    # as many, whatever the shared horizon parameter says.
    run_config = tmp_path / 'run.yaml'
    run_config.write_text(yaml.safe_dump({
        'env': {'name': 'sawyer_stack', 'horizon': 7},
        'model': {'latent_dim': 2, 'channels': 4, 'hidden': 8}}))
    context, node = start_learner(tmp_path, run_config)
    try:
        assert node.learner.model_config.horizon == 7
        assert node._recorder.horizon == 7
        assert node.learner.gains.horizon == 7  # the policy it publishes
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
