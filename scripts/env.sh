# Source this file (or use scripts/with_env.sh) to make the venv's ROS 2 wheels and the
# interface packages built into it visible: ament index, shared libraries, executables.
_efm_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_efm_venv="${EVENT_FM_VENV:-$_efm_root/.venv}"
case ":${AMENT_PREFIX_PATH:-}:" in *":$_efm_venv:"*) ;; *)
  export AMENT_PREFIX_PATH="$_efm_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}";; esac
case ":${CMAKE_PREFIX_PATH:-}:" in *":$_efm_venv:"*) ;; *)
  export CMAKE_PREFIX_PATH="$_efm_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}";; esac
case ":${LD_LIBRARY_PATH:-}:" in *":$_efm_venv/lib:"*) ;; *)
  export LD_LIBRARY_PATH="$_efm_venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}";; esac
case ":${PATH}:" in *":$_efm_venv/bin:"*) ;; *)
  export PATH="$_efm_venv/bin:$_efm_venv/lib/event_fm:$PATH";; esac
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
unset _efm_root _efm_venv
_efm_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_efm_root/config/fastdds.xml}"
unset _efm_root
