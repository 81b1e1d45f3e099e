#!/usr/bin/env bash
# The main job: set the workspace up if needed, then run SOLAR learning with progress.
# Until the ROS 2 learning nodes land, this is the SOLAR loop on the image-observed point
# mass, without ROS (see README, "Status"). Override with CONFIG=... RUN_DIR=...
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
# shellcheck disable=SC1091
. "$root/scripts/env.sh"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}"

config="${CONFIG:-$root/solar_ros/config/point_mass.yaml}"
run_dir="${RUN_DIR:-$root/runs/point_mass-$(date +%Y%m%d-%H%M%S)}"
echo "solar_ros: learning with $config; run directory $run_dir"
exec python -m solar_ros.learn.run --config "$config" --run-dir "$run_dir"
