#!/usr/bin/env bash
# Build the interface packages in interfaces/ into a prefix (the venv), skipping any package
# that a sourced ROS 2 installation already provides (there the apt packages are the truth).
# usage: build_interfaces.sh PREFIX PYTHON [PACKAGE_DIR ...]   (default: interfaces/*)
set -euo pipefail
prefix="$1"; python="$2"; shift 2
root="$(cd "$(dirname "$0")/.." && pwd)"
build_root="$root/build/interfaces"
packages=(event_camera_msgs event_array_msgs dvs_msgs prophesee_event_msgs tf2_msgs)

provided_elsewhere() {
  local pkg="$1" p
  IFS=: read -ra prefixes <<< "${AMENT_PREFIX_PATH:-}"
  for p in "${prefixes[@]}"; do
    [ -n "$p" ] && [ "$p" != "$prefix" ] && [ -f "$p/share/$pkg/package.xml" ] && return 0
  done
  return 1
}

# The PyPI wheels' cmake exports name include dirs of the machine they were built on.
py_inc="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_inc="$("$python" -c 'import numpy; print(numpy.get_include())')"
if grep -rlq '/opt/python/cp311-cp311/' "$prefix/share" --include='*.cmake' 2>/dev/null; then
  grep -rl '/opt/python/cp311-cp311/' "$prefix/share" --include='*.cmake' | xargs sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3\.[0-9]*#$py_inc#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$np_inc#g"
fi

export AMENT_PREFIX_PATH="$prefix${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$prefix${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PATH="$prefix/bin:$PATH"

sources=("$@")
if [ "${#sources[@]}" -eq 0 ]; then
  for pkg in "${packages[@]}"; do sources+=("$root/interfaces/$pkg"); done
fi

for src in "${sources[@]}"; do
  pkg="$(basename "$src")"
  if provided_elsewhere "$pkg"; then
    echo "interfaces: $pkg provided by the sourced ROS 2 installation, not built"
    continue
  fi
  hash="$(find "$src" -name '*.msg' -o -name '*.srv' -o -name CMakeLists.txt -o -name package.xml \
    | sort | xargs cat | sha256sum | cut -c1-16)"
  stamp="$prefix/share/$pkg/.event_fm-build-$hash"
  if [ -f "$stamp" ]; then continue; fi
  echo "interfaces: building $pkg"
  bdir="$build_root/$pkg"
  rm -rf "$bdir"; mkdir -p "$bdir"
  log="$bdir/build.log"
  if ! (cd "$bdir" && cmake "$src" -DCMAKE_INSTALL_PREFIX="$prefix" -DPython3_EXECUTABLE="$python" \
          -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >"$log" 2>&1 \
        && make -j"$(nproc)" install >>"$log" 2>&1); then
    echo "error: building interface package $pkg failed; see $log" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  touch "$stamp"
done
