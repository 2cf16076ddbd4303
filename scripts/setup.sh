#!/usr/bin/env bash
# make setup: build the project's virtualenv from nothing, without a system ROS install.
#
#   1. Debian packages the project needs (apt, when missing): libportaudio2, espeak-ng, cmake, gcc/g++
#   2. .venv with $TORCH first (default torch==2.13.0: the CPU wheel on this machine's disk)
#   3. ROS 2 Kilted wheels (requirements/ros.txt, pinned in requirements/constraints.txt)
#   4. repair two build-machine paths baked into the wheels' CMake export files
#   5. build + install dualtalk_msgs into the venv with plain CMake
#   6. pip install -e dualtalk_core and dualtalk_ros (+ test tools)
#
# Idempotent: a stamp file holds a hash of every input above; when it matches and the imports
# work, the script only says so and exits. Environment: VENV (default .venv), TORCH, PYTHON.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${VENV:-.venv}
TORCH=${TORCH:-torch==2.13.0}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.dualtalk-setup-stamp"
CONSTRAINTS="$ROOT/requirements/constraints.txt"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

inputs_hash() {
  {
    echo "TORCH=$TORCH"
    cat scripts/setup.sh requirements/*.txt
    cat src/dualtalk_msgs/CMakeLists.txt src/dualtalk_msgs/package.xml src/dualtalk_msgs/msg/*.msg
    cat src/dualtalk_core/setup.py src/dualtalk_ros/setup.py src/dualtalk_ros/setup.cfg
  } | sha256sum | cut -d' ' -f1
}

imports_ok() {
  "$VENV/bin/python" - <<'EOF' >/dev/null 2>&1
import torch, rclpy, sounddevice, rosbags, dualtalk_core, dualtalk_ros
from dualtalk_msgs.msg import Blendshapes, BlendshapeSequence, AudioChunk, ConversationState
EOF
}

# ---------------------------------------------------------------- 0. up to date?
HASH=$(inputs_hash)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]] && imports_ok; then
  say "up to date ($VENV matches the current requirements; nothing to do)"
  exit 0
fi

# ---------------------------------------------------------------- 1. Debian packages
missing=()
dpkg -s libportaudio2 >/dev/null 2>&1 || missing+=(libportaudio2)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
"$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [[ -z "$SUDO" ]] || sudo -n true 2>/dev/null; }; then
    say "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "missing system packages: ${missing[*]}. Install them (e.g. 'sudo apt-get install ${missing[*]}') and run 'make setup' again."
  fi
fi

# ---------------------------------------------------------------- 2. venv + torch
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)
# shellcheck disable=SC2086  # TORCH may carry pip options, e.g. '--index-url ...'
if ! "$PY" -c "import torch" >/dev/null 2>&1 || [[ "$TORCH" != "torch==2.13.0" ]]; then
  say "installing $TORCH"
  "${PIP[@]}" $TORCH
fi

# ---------------------------------------------------------------- 3. ROS 2 wheels
say "installing ROS 2 Kilted wheels and libraries"
"${PIP[@]}" -c "$CONSTRAINTS" -r requirements/ros.txt -r requirements/dev.txt

# ---------------------------------------------------------------- 4. repair baked-in paths
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
shopt -s nullglob
exports=("$VENV"/share/*/cmake/export_*__rosidl_generator_pyExport.cmake)
shopt -u nullglob
((${#exports[@]})) || die "no rosidl_generator_py export files under $VENV/share: ROS wheels incomplete?"
sed -i \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g" \
  -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
  "${exports[@]}"

# ---------------------------------------------------------------- 5. dualtalk_msgs
say "building dualtalk_msgs with CMake"
VENV_ABS=$(cd "$VENV" && pwd)
BUILD="$ROOT/build/dualtalk_msgs"
rm -rf "$BUILD" && mkdir -p "$BUILD"
(
  cd "$BUILD"
  export PATH="$VENV_ABS/bin:$PATH" VIRTUAL_ENV="$VENV_ABS"
  cmake "$ROOT/src/dualtalk_msgs" -DCMAKE_PREFIX_PATH="$VENV_ABS" -DCMAKE_INSTALL_PREFIX="$VENV_ABS" \
    -DPython3_EXECUTABLE="$VENV_ABS/bin/python" -DBUILD_TESTING=OFF >cmake.log 2>&1 \
    || { tail -30 cmake.log >&2; die "cmake configure of dualtalk_msgs failed (log: $BUILD/cmake.log)"; }
  make -j"$(nproc)" >make.log 2>&1 || { tail -30 make.log >&2; die "dualtalk_msgs build failed (log: $BUILD/make.log)"; }
  make install >install.log 2>&1 || { tail -30 install.log >&2; die "dualtalk_msgs install failed"; }
)

# ---------------------------------------------------------------- 6. our Python packages
say "installing dualtalk_core and dualtalk_ros (editable)"
"${PIP[@]}" -c "$CONSTRAINTS" -e src/dualtalk_core -e src/dualtalk_ros 2>&1 \
  | grep -vE "BuildBackendWarning|^\s*(!!|\*+|Please be careful|name as your package|with strategy|$)" || true

imports_ok || die "the venv does not import torch/rclpy/dualtalk_msgs/dualtalk_core/dualtalk_ros; see the messages above"
echo "$HASH" >"$STAMP"
say "done: $VENV ($(du -sh "$VENV" | cut -f1))"
