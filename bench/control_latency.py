"""Print the time from a camera image published to the joint command published in response.

The system (sim in lockstep, encoder, latent filter, controller, episode runner and a
learner that only records) runs once with all nodes in one process (the bringup) and once
with every node in a process of its own. A probe process subscribes to the images and the
commands; in lockstep every command answers exactly one image, and the latency of a command
is its arrival time at the probe minus the header stamp of the image it answers (the sim
stamps an image just before publishing it; all processes share the machine's clock). The
probe's own DDS hop is included in both figures alike. Each figure is also given as a ratio
to the step's own compute: the shipped task-1 policy's encode, filter and act
(``OnlineStep.step``) on the same frames in this process, without ROS.

Usage: python bench/control_latency.py [--samples 300] [--image-size 64]
(needs the workspace environment: . scripts/env.sh)
"""

import argparse
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

import numpy as np
import rclpy
from rclpy.experimental import EventsExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from solar_ros.core.model import SolarModel
from solar_ros.core.online import OnlineStep
from solar_ros.learn.config import read_sections
from solar_ros.learn.evaluate import load_gains
from solar_ros.nodes import qos
from solar_ros.nodes.bringup import default_params
from solar_ros.nodes.runnable import env_settings
from solar_ros.sim.sawyer_config import SawyerStackConfig
from solar_ros.sim.sawyer_env import SawyerStackEnv
from std_msgs.msg import Float64MultiArray
import torch
import yaml

NODES = ('sim_node', 'encoder_node', 'latent_filter_node', 'controller_node',
         'episode_runner_node', 'learner_node')
WARMUP = 50  # commands skipped while the model loads and the caches warm up
# The learner (config/sawyer_task1.yaml) records episodes but never refits meanwhile.
NO_REFIT = {'pretrain_episodes': 1_000_000}
POLICY_DIR = Path(__file__).resolve().parents[1] / 'solar_ros' / 'pretrained' / 'sawyer_task1'


class Probe:
    """Match each command to the image it answers and collect latencies in seconds."""

    def __init__(self) -> None:
        """Subscribe to the camera and the commands in a context of its own."""
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('latency_probe', context=self.context)
        self.executor = EventsExecutor(context=self.context)  # as the nodes' own
        self.executor.add_node(self.node)
        self._image_stamp: Optional[float] = None
        self.latencies: List[float] = []
        self.node.create_subscription(Image, 'camera/image_raw', self._on_image,
                                      qos_profile_sensor_data)
        self.node.create_subscription(Float64MultiArray, 'velocity_controller/commands',
                                      self._on_command, qos.COMMANDS)

    def _on_image(self, msg: Image) -> None:
        self._image_stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec

    def _on_command(self, _msg: Float64MultiArray) -> None:
        if self._image_stamp is not None:
            self.latencies.append(time.time() - self._image_stamp)
            self._image_stamp = None

    def collect(self, count: int, timeout: float) -> np.ndarray:
        """Spin until ``count`` latencies after the warm-up are in; return them."""
        deadline = time.monotonic() + timeout
        while len(self.latencies) < WARMUP + count and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        if len(self.latencies) < WARMUP + count:
            raise RuntimeError(f'only {len(self.latencies)} commands in {timeout} s')
        return np.array(self.latencies[WARMUP:WARMUP + count])

    def close(self) -> None:
        """Destroy the node and its context."""
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _params(workdir: Path, image_size: int) -> List[str]:
    """Write the run config and the parameter overrides; return --params-file arguments."""
    config = read_sections(default_params()[0].parent / 'sawyer_task1.yaml')
    config['loop'].update(NO_REFIT)
    config['model']['image_size'] = image_size
    (workdir / 'run.yaml').write_text(yaml.safe_dump(config))
    overrides = workdir / 'params.yaml'
    overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'run_dir': str(workdir / 'run'), 'run_config': str(workdir / 'run.yaml'),
        'image_size': image_size}}}))
    return [str(p) for p in (*default_params(), overrides)]


def measure(separate: bool, samples: int, image_size: int) -> np.ndarray:
    """Run the system one way and return ``samples`` latencies in seconds."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    with tempfile.TemporaryDirectory() as tmp:
        files = _params(Path(tmp), image_size)
        if separate:
            args = [a for f in files for a in ('--params-file', f)]
            commands = [[sys.executable, '-m', f'solar_ros.nodes.{name}', '--ros-args', *args]
                        for name in NODES]
        else:
            commands = [[sys.executable, '-m', 'solar_ros.nodes.bringup',
                         '--params', *files[2:]]]
        logs = [Path(tmp) / f'{c[2].rsplit(".", 1)[-1]}.log' for c in commands]
        processes = []
        for command, log in zip(commands, logs):
            with open(log, 'w') as stderr:
                processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                                  stderr=stderr))
        probe = Probe()
        try:
            return probe.collect(samples, timeout=120.0 + samples)
        except RuntimeError as error:  # name the nodes that stopped, with their last words
            stopped = [f'{log.stem} exited {p.returncode}:\n{log.read_text()[-2000:]}'
                       for p, log in zip(processes, logs) if p.poll() is not None]
            raise RuntimeError('\n'.join([str(error), *stopped])) from None
        finally:
            probe.close()
            for process in processes:
                process.send_signal(signal.SIGINT)
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def step_compute(samples: int) -> np.ndarray:
    """Return ``samples`` times (s) of one step's own compute on sim frames, one thread.

    A step is the encode, filter update, act and filter prediction (``OnlineStep.step``
    and ``predict``) of the shipped task-1 policy, on its cameras and image size.
    """
    torch.set_num_threads(1)
    config, model_path, gains = load_gains(POLICY_DIR)
    online = OnlineStep(SolarModel.load(model_path), gains, noise_scale=0.0)
    times: List[float] = []
    with SawyerStackEnv(SawyerStackConfig.from_dict(env_settings(config))) as env:
        while len(times) < samples:
            frame = env.reset(task=1, seed=len(times))
            online.start()
            for _ in range(env.horizon):
                start = time.perf_counter()
                action = online.step(frame)
                online.predict(action)
                times.append(time.perf_counter() - start)
                frame, _, _, _ = env.step(action)
    return np.array(times[:samples])


def main() -> None:
    """Measure both ways and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=300)
    parser.add_argument('--image-size', type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
    mode = os.environ.get('RMW_FASTRTPS_PUBLICATION_MODE', 'the default')
    print(f'image {args.image_size}x{args.image_size} rgb8, lockstep, {args.samples} '
          f'commands after {WARMUP} warm-up ones, OMP_NUM_THREADS=1 per process, '
          f'{os.environ.get("RMW_IMPLEMENTATION")} publication mode {mode}')
    compute = 1e3 * np.median(step_compute(args.samples))
    print(f'{"step compute":>20}: median {compute:6.2f} ms (encode, filter, act; no ROS)')
    figures = {}
    for label, separate in (('one process', False), ('separate processes', True)):
        latency = 1e3 * measure(separate, args.samples, args.image_size)
        figures[label] = latency
        median, p99 = np.median(latency), np.percentile(latency, 99)
        print(f'{label:>20}: median {median:6.2f} ms ({median / compute:.1f} x compute), '
              f'p99 {p99:6.2f} ms ({p99 / compute:.1f} x compute)')
    ratio = np.median(figures['separate processes']) / np.median(figures['one process'])
    print(f'median ratio separate / one process: {ratio:.2f}')


if __name__ == '__main__':
    main()
