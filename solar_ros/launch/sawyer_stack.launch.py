"""Learn block stacking from images: sim (optional), encoder, filter, controller, runner, learner.

    ros2 launch solar_ros sawyer_stack.launch.py [task:=1] [seed:=0] [sim:=true]
        [params_file:=...] [run_config:=...] [namespace:=...] [run_dir:=...]
        [camera_topic:=...] [side_camera_topic:=...] [close_camera_topic:=...]
        [top_camera_topic:=...] [command_topic:=...]
    ros2 launch solar_ros sawyer_stack.launch.py learn:=false policy_dir:=DIR [policy:=K]

With ``learn:=false`` (deploy mode) the policy node serves policy K (default: the newest) of
``policy_dir`` (a run directory or a ``solar_ros/pretrained`` folder) in place of the
learner, and the controller's exploration noise is off.

Every node reads the installed ``config/sim.yaml`` then ``params_file`` (by default the
installed ``config/sawyer_stack.yaml``), then the arguments given here. With ``sim:=false``
no simulator starts: remap ``camera_topic`` and ``command_topic`` to the real arm's camera
and velocity controller, and provide the ``reset_episode`` service (solar_ros_msgs/
ResetEpisode) and ``episode_events`` from the arm's bridge (see the README, "On a real arm").
Without the ``ros2`` CLI, ``python -m solar_ros.nodes.bringup`` runs the same nodes.
"""

from typing import Optional

from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, GroupAction, LogInfo,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.conditions import IfCondition, UnlessCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.events.process import ProcessExited
from launch.substitutions import (EnvironmentVariable, LaunchConfiguration,
                                  PathJoinSubstitution)
from launch_ros.actions import Node, PushRosNamespace, SetRemap
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PUBLICATION_MODE = 'RMW_FASTRTPS_PUBLICATION_MODE'
ARGUMENTS = {
    'task': ('1', 'initial position of every episode: 1, 2 or 3'),
    'seed': ('0', 'episode n resets (and draws its exploration noise) with seed + n'),
    'sim': ('true', 'start the simulated arm; false drives a real arm through the topics'),
    'params_file': (PathJoinSubstitution([FindPackageShare('solar_ros'), 'config',
                                          'sawyer_stack.yaml']),
                    'ROS parameter file of the nodes, applied after config/sim.yaml'),
    'run_config': ('', 'model/lqr/loop YAML of the learner; empty: config/sawyer_task<task>.yaml'),
    'namespace': ('', 'namespace of every node and topic'),
    'run_dir': ('runs/sawyer_stack',
                'episodes, checkpoints and metrics; an existing run resumes'),
    'camera_topic': ('camera/image_raw', 'sensor_msgs/Image topic of the (first) camera'),
    'side_camera_topic': ('side_camera/image_raw',
                          'sensor_msgs/Image topic of the side camera (two-camera models)'),
    'close_camera_topic': ('close_camera/image_raw',
                           'sensor_msgs/Image topic of the close camera (three-camera models)'),
    'top_camera_topic': ('top_camera/image_raw',
                         'sensor_msgs/Image topic of the top camera (four-camera models)'),
    'command_topic': ('velocity_controller/commands',
                      'std_msgs/Float64MultiArray joint velocity command topic'),
    'learn': ('true', 'false: run the policy of policy_dir without learning, noise off'),
    'policy_dir': ('', 'learn:=false: run directory or pretrained folder of the policy'),
    'policy': ('-1', 'learn:=false: policy number in policy_dir; -1: the newest'),
}


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and start the nodes in one namespace with the remaps."""
    arg = LaunchConfiguration
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, (default, description) in ARGUMENTS.items()]
    params = [
        PathJoinSubstitution([FindPackageShare('solar_ros'), 'config', 'sim.yaml']),
        arg('params_file'),
        {'task': ParameterValue(arg('task'), value_type=int),
         'seed': ParameterValue(arg('seed'), value_type=int),
         'run_dir': arg('run_dir'),
         'run_config': ParameterValue(arg('run_config'), value_type=str),
         'policy_dir': ParameterValue(arg('policy_dir'), value_type=str),
         'policy': ParameterValue(arg('policy'), value_type=int)},
    ]
    learning, deploying = IfCondition(arg('learn')), UnlessCondition(arg('learn'))

    def node(executable: str, extra: Optional[dict] = None, **kwargs) -> Node:
        return Node(package='solar_ros', executable=executable, name=executable,
                    parameters=params + ([extra] if extra else []), output='screen',
                    emulate_tty=True, **kwargs)

    started = [
        node('sim', condition=IfCondition(arg('sim'))),
        node('encoder'),
        node('latent_filter'),
        node('controller', condition=learning),
        node('controller', {'noise_scale': 0.0}, condition=deploying),
        node('episode_runner', condition=learning),
        node('episode_runner', {'paced': False}, condition=deploying),
        node('learner', condition=learning),
        node('policy', condition=deploying),
    ]
    nodes = GroupAction([
        # Fast DDS sends in the publishing thread unless the caller chose otherwise: a
        # shorter image-to-command tail (README, "Speed on this 2-core CPU").
        SetEnvironmentVariable(PUBLICATION_MODE, EnvironmentVariable(
            PUBLICATION_MODE, default_value='SYNCHRONOUS')),
        PushRosNamespace(arg('namespace')),
        SetRemap('camera/image_raw', arg('camera_topic')),
        SetRemap('side_camera/image_raw', arg('side_camera_topic')),
        SetRemap('close_camera/image_raw', arg('close_camera_topic')),
        SetRemap('top_camera/image_raw', arg('top_camera_topic')),
        SetRemap('velocity_controller/commands', arg('command_topic')),
        *started,
    ])
    # Every node is required: one that exits with an error stops the whole system, with
    # one line naming it, instead of leaving the others running without it.
    watchers = [RegisterEventHandler(OnProcessExit(target_action=action,
                                                   on_exit=_shutdown_on_error))
                for action in started]
    return LaunchDescription([*declared, nodes, *watchers])


def _shutdown_on_error(event: ProcessExited, context: LaunchContext) -> list:
    """Return the actions that stop the launch when a node exited with an error."""
    del context
    if event.returncode == 0:
        return []
    reason = (f'{event.process_name} exited with status {event.returncode}; '
              'stopping the system (see its log above)')
    return [LogInfo(msg=f'solar_ros: {reason}'), EmitEvent(event=Shutdown(reason=reason))]
