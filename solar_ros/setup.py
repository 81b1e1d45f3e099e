"""Install the solar_ros package: executables, launch and config files, pretrained policies."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'solar_ros'


def share_tree(folder):
    """Return data_files entries installing every file under ``folder`` into share/."""
    entries = {}
    for path in sorted(glob(f'{folder}/**/*', recursive=True)):
        if os.path.isfile(path):
            entries.setdefault(f'share/{PACKAGE}/{os.path.dirname(path)}', []).append(path)
    return list(entries.items())


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        *share_tree('pretrained'),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='solar_ros maintainers',
    maintainer_email='maintainers@solar-ros.dev',
    description='SOLAR model-based reinforcement learning from images for ROS 2 arms.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'sim = solar_ros.nodes.sim_node:main',
            'encoder = solar_ros.nodes.encoder_node:main',
            'latent_filter = solar_ros.nodes.latent_filter_node:main',
            'controller = solar_ros.nodes.controller_node:main',
            'episode_runner = solar_ros.nodes.episode_runner_node:main',
            'learner = solar_ros.nodes.learner_node:main',
            'policy = solar_ros.nodes.policy_node:main',
            'bringup = solar_ros.nodes.bringup:main',
        ],
    },
)
