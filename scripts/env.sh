# Source this file to get the project environment: the venv, ROS 2 and the colcon install of this package.
# (scripts/setup.sh must have run once.)
_CP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_CP_VENV=$(readlink -f "${CLEANPOSE_VENV:-$_CP_ROOT/.venv}")
if [ -z "${ROS_DISTRO:-}" ]; then
  # ROS 2 from the PyPI wheels: the venv prefix is the ament index (must be set before sourcing install/).
  export AMENT_PREFIX_PATH="$_CP_VENV"
  export CMAKE_PREFIX_PATH="$_CP_VENV"
fi
# colcon's setup scripts read unset variables: relax `set -u` while sourcing them, then restore it.
case $- in *u*) _CP_NOUNSET=1; set +u ;; *) _CP_NOUNSET= ;; esac
source "$_CP_VENV/bin/activate"
# shellcheck disable=SC1091
source "$_CP_ROOT/install/setup.bash"
[ -n "$_CP_NOUNSET" ] && set -u
# Keep DDS discovery on this machine (tests and the demo must never reach other hosts).
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_LOCALHOST_ONLY=${ROS_LOCALHOST_ONLY:-1}
# Fast DDS: images bigger than its default 512 KB shared-memory segment are otherwise lost over best-effort UDP
# (see the file's comment).
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_CP_ROOT/config/dds/fastdds_large_images.xml}
unset _CP_ROOT _CP_VENV _CP_NOUNSET
