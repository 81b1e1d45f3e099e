# shellcheck shell=bash
# Environment of a solar_ros workspace; source it from the repository root's scripts.
#
# With a ROS 2 distro sourced (ROS_DISTRO set), only the project's venv and its
# install space are added. Otherwise the ROS 2 Kilted wheels in .venv stand in for
# /opt/ros: their libraries go on LD_LIBRARY_PATH (which also makes the wheels'
# re-exec bootstrapper unnecessary) and the venv is the ament and CMake prefix.

SOLAR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SOLAR_ROOT
SOLAR_VENV="$SOLAR_ROOT/.venv"
export SOLAR_VENV

# Loopback-only DDS; callers may pick their own domain id.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export PYTHONDONTWRITEBYTECODE=1
# Fast DDS sends each message in the publishing thread instead of handing it to a sender
# thread: the image-to-command path's tail is shorter (README, "Speed on this 2-core CPU").
export RMW_FASTRTPS_PUBLICATION_MODE="${RMW_FASTRTPS_PUBLICATION_MODE:-SYNCHRONOUS}"

if [ -d "$SOLAR_VENV" ]; then
  # shellcheck disable=SC1091
  VIRTUAL_ENV_DISABLE_PROMPT=1 . "$SOLAR_VENV/bin/activate"
fi

if [ -z "${ROS_DISTRO:-}" ] && [ -d "$SOLAR_VENV" ]; then
  _site="$(echo "$SOLAR_VENV"/lib/python3.*/site-packages)"
  _libs="$SOLAR_VENV/lib"
  for _d in "$_site"/ros_*.libs; do
    [ -d "$_d" ] && _libs="$_libs:$_d"
  done
  export LD_LIBRARY_PATH="$_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
  export AMENT_PREFIX_PATH="$SOLAR_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$SOLAR_VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
  unset _site _libs _d
fi

if [ -f "$SOLAR_ROOT/install/local_setup.bash" ]; then
  # colcon's setup files read unset variables: source them without nounset.
  case $- in *u*) _nounset=1; set +u ;; *) _nounset= ;; esac
  # shellcheck disable=SC1091
  . "$SOLAR_ROOT/install/local_setup.bash"
  [ -n "$_nounset" ] && set -u
  unset _nounset
fi
