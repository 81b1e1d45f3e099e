#!/usr/bin/env bash
# Build, run every test with colcon, show the results and end with the plain count.
# Exits non-zero on any failure or when no test ran. Extra arguments go to pytest,
# e.g. scripts/test.sh -k validation.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh" || exit 1
# shellcheck disable=SC1091
. "$root/scripts/env.sh"
# A domain of its own per run, so that parallel runs on one host do not meet.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}"

find build -name '*.xml' -path '*pytest*' -delete 2>/dev/null
pytest_args=()
[ $# -gt 0 ] && pytest_args=(--pytest-args "$@")
python -m colcon test --event-handlers console_direct+ --return-code-on-test-failure \
  "${pytest_args[@]}"
colcon_rc=$?
python -m colcon test-result --verbose
python "$root/scripts/test_summary.py" build
summary_rc=$?
[ "$colcon_rc" -eq 0 ] && [ "$summary_rc" -eq 0 ]
