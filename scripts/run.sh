#!/usr/bin/env bash
# The main job: set the workspace up if needed, then learn block stacking on the simulated
# Sawyer-style arm with the solar_ros nodes, printing progress and writing a run directory.
# Uses `ros2 launch solar_ros sawyer_stack.launch.py` where the ros2 CLI with launch exists,
# and the in-process bringup (same nodes, same YAML) otherwise.
# Override with TASK=1|2|3, RUN_CONFIG=<model/lqr/loop YAML> (default: the task's
# config/sawyer_task<TASK>.yaml, which the nodes read when run_config is empty) and
# RUN_DIR=<directory>.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
# shellcheck disable=SC1091
. "$root/scripts/env.sh"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}"

task="${TASK:-1}"
run_config="${RUN_CONFIG:-}"
run_dir="${RUN_DIR:-$root/runs/sawyer_task$task-$(date +%Y%m%d-%H%M%S)}"
echo "solar_ros: learning task $task on the simulated arm; run directory $run_dir"
if command -v ros2 >/dev/null 2>&1 && python -c 'import launch_ros' 2>/dev/null; then
  exec ros2 launch solar_ros sawyer_stack.launch.py "task:=$task" "run_dir:=$run_dir" \
    "run_config:=$run_config"
fi
args=(--task "$task" --run-dir "$run_dir")
if [ -n "$run_config" ]; then
  args+=(--run-config "$run_config")
fi
exec python -m solar_ros.nodes.bringup "${args[@]}"
