"""Node parameters are applied live with the start-up checks, or refused as read-only."""

from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from solar_ros.learn.config import RunConfig
from solar_ros.nodes.controller_node import ControllerNode
from solar_ros.nodes.encoder_node import EncoderNode
from solar_ros.nodes.episode_runner_node import EpisodeRunnerNode
from solar_ros.nodes.learner_node import LearnerNode
from solar_ros.nodes.runnable import env_settings
from solar_ros.nodes.sim_node import SimNode
from solar_ros.sim.sawyer_config import SawyerStackConfig
import yaml

CONFIGS = Path(__file__).resolve().parents[1] / 'config'


def test_controller_limits_and_noise_scale_change_live_and_are_checked(context):
    node = ControllerNode(context=context)
    try:
        lower = [0.5] * 7
        assert node.set_parameters([Parameter('velocity_limits', value=lower)])[0].successful
        np.testing.assert_array_equal(node._limits, lower)
        for bad in ([0.5, 0.5], [0.5] * 6 + [-1.0]):
            result = node.set_parameters([Parameter('velocity_limits', value=bad)])[0]
            assert not result.successful and 'velocity_limits' in result.reason
            np.testing.assert_array_equal(node._limits, lower)  # the old limits stay
        assert node.set_parameters([Parameter('noise_scale', value=0.0)])[0].successful
        assert node._online.noise_scale == 0.0
        assert not node.set_parameters([Parameter('noise_scale', value=-1.0)])[0].successful
    finally:
        node.destroy_node()


@pytest.mark.parametrize('make, name, value', [
    (ControllerNode, 'mode', 'realtime'), (ControllerNode, 'seed', 3),
    (ControllerNode, 'action_dim', 2), (EpisodeRunnerNode, 'task', 2),
    (EncoderNode, 'model_path', '/tmp/model.ckpt'), (SimNode, 'mode', 'realtime'),
])
def test_settings_read_at_start_are_read_only(context, make, name, value):
    node = make(context=context)
    try:
        before = node.get_parameter(name).value
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and 'read-only' in result.reason
        assert node.get_parameter(name).value == before
    finally:
        node.destroy_node()


def test_learner_settings_are_read_only(tmp_path):
    run_config = tmp_path / 'run.yaml'
    run_config.write_text(yaml.safe_dump({'model': {'latent_dim': 2, 'channels': 4,
                                                    'hidden': 8}}))
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'run_dir': str(tmp_path / 'run'), 'run_config': str(run_config)}}}))
    args = ['--ros-args', '--params-file', str(params)]
    learner_context = rclpy.Context()
    rclpy.init(args=args, context=learner_context)
    node = LearnerNode(context=learner_context)
    try:
        for name, value in (('run_dir', '/tmp/elsewhere'), ('horizon', 10)):
            assert not node.set_parameters([Parameter(name, value=value)])[0].successful
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=learner_context)


def test_a_task_out_of_range_is_refused_at_start():
    runner_context = rclpy.Context()
    rclpy.init(args=['--ros-args', '-p', 'task:=7'], context=runner_context)
    try:
        with pytest.raises(Exception, match='task'):
            EpisodeRunnerNode(context=runner_context)
    finally:
        rclpy.try_shutdown(context=runner_context)


@pytest.mark.parametrize('task, views', [(2, 4), (3, 3)])
def test_without_a_run_config_sim_and_learner_serve_their_tasks_config(tmp_path, task, views):
    expected = RunConfig.from_yaml(CONFIGS / f'sawyer_task{task}.yaml')
    assert expected.env['views'] == views and expected.loop.task == task
    node_context = rclpy.Context()
    rclpy.init(args=['--ros-args', '-p', f'task:={task}', '-p', 'start_task:=0',
                     '-p', f'run_dir:={tmp_path / "run"}'], context=node_context)
    sim = learner = None
    try:
        sim = SimNode(context=node_context)
        assert sim._env.config.views == views
        assert sim._env.config.to_dict() == SawyerStackConfig.from_dict(
            {**SawyerStackConfig().to_dict(), **env_settings(expected)}).to_dict()
        learner = LearnerNode(context=node_context)
        assert learner.learner.config.loop.task == task
        assert learner.learner.model_config.views == views
    finally:
        for node in (sim, learner):
            if node is not None:
                node.destroy_node()
        rclpy.try_shutdown(context=node_context)
