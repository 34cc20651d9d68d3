#!/usr/bin/env bash
# KartStudio set-up: system packages, .venv/, the package, the input plugin.
#   ./setup.sh app    set everything up and start the app
#   ./setup.sh test   set everything up and run the tests
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-app}"

APT_PACKAGES=(
  python3-venv python3-dev build-essential
  mupen64plus-ui-console mupen64plus-video-all mupen64plus-rsp-hle mupen64plus-audio-sdl
  mupen64plus-data libmupen64plus-dev
  xvfb x11-utils xdotool libgl1-mesa-dri
  binutils-mips-linux-gnu gcc-mips-linux-gnu openbox
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libegl1 libdbus-1-3
  swig
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "KartStudio needs system packages. Run this once, then run ./setup.sh $mode again:"
    echo "  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$mode" = test ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
# pygame and pygame-ce both provide the module `pygame`; keep only pygame.
if .venv/bin/python -m pip show -q pygame-ce >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -q -y pygame-ce
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "pygame>=2.5"
fi
make -s -C plugin

case "$mode" in
  app)  exec .venv/bin/kartstudio ;;
  # Two workers, a file each at a time (module fixtures such as a running emulator stay in one
  # worker): 6.3 min instead of 12.9 on a 2-core machine, where many tests wait on an emulator,
  # a child process or a clock rather than on the CPU.
  test) exec .venv/bin/python -m pytest -q -n 2 --dist loadfile "${@:2}" ;;
  *)    echo "usage: ./setup.sh app|test" >&2; exit 2 ;;
esac
