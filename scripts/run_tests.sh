#!/usr/bin/env bash
# The README's test command: set up (idempotent), build, then colcon test (ROS tests through real rclpy/DDS)
# and pytest over the Python tests, then ruff (ruff.toml: line length 110). Fails if any fails or if pytest
# collects nothing.
# Extra arguments go to pytest, e.g. `make test PYTEST_ARGS="-m slow"`.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/setup.sh || { echo "[test] set-up failed"; exit 1; }
# shellcheck disable=SC1091
source scripts/env.sh
# A domain of our own, so concurrent runs on one machine never see each other's topics.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 80) + 10 ))}

echo "[test] colcon test (ROS tests)"
colcon --log-base log test --packages-select cleanpose_ros --return-code-on-test-failure \
  --event-handlers console_direct- summary+
colcon_rc=$?
colcon test-result --test-result-base build/cleanpose_ros --verbose
result_rc=$?

echo "[test] pytest (library, CLI and integration tests)"
python -m pytest test --ignore=test/ros -q -p no:cacheprovider -ra "$@"
pytest_rc=$?
if [ "$pytest_rc" = 5 ]; then echo "[test] pytest collected no tests: failing"; fi

echo "[test] ruff check"
ruff check .
ruff_rc=$?

if [ "$colcon_rc" != 0 ] || [ "$result_rc" != 0 ] || [ "$pytest_rc" != 0 ] || [ "$ruff_rc" != 0 ]; then
  echo "[test] FAILED (colcon test $colcon_rc, colcon test-result $result_rc, pytest $pytest_rc, ruff $ruff_rc)"
  exit 1
fi
echo "[test] all passed"
