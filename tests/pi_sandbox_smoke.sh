#!/usr/bin/env bash
# Prove that the edgekit wheel installs with plain pip and detects on an emulated Raspberry Pi OS
# (Debian Bookworm userland under qemu-user, via ../shared/tools/pi-sandbox). Not part of CI:
# emulation makes it take several minutes. Emulated timings mean nothing.
#
#   tests/pi_sandbox_smoke.sh [arm64|armhf] [pi4|pi5|pi3|pizero2w]
#
# arm64 (Pi OS 64-bit): pip resolves ai-edge-litert + NumPy 2 from PyPI.
# armhf (Pi OS 32-bit): PyPI has no armv7l numpy/Pillow wheels, so — as a 32-bit Pi OS user
# would — numpy/Pillow come from apt and the venv uses --system-site-packages; pip then resolves
# tflite-runtime 2.14 (armv7l wheel) with the system's NumPy 1.24.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-arm64}
model=${2:-pi4}
shared=$(cd "${EDGEKIT_SHARED_DATA:-$repo/../shared/data}" && pwd)
sandbox=${PI_SANDBOX:-$shared/../tools/pi-sandbox}
python=${PYTHON:-python3}

dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
"$python" -m pip wheel -q --no-deps -w "$dist" "$repo"
wheel=$(basename "$dist"/edgekit-*.whl)
echo "pi-sandbox-smoke: built $wheel; installing on emulated $model ($arch)"

if [ "$arch" = armhf ]; then
  setup="apt-get install -y -qq python3-numpy python3-pil >/dev/null && python3 -m venv --system-site-packages /tmp/ek"
else
  setup="python3 -m venv /tmp/ek"
fi
ssd=/data/models/ssd_mobilenet_v1_quant
out=$("$sandbox" run --arch "$arch" --model "$model" --bind "$dist:/dist" --bind "$shared:/data" \
      --bind "$repo/examples:/examples" -- "
  set -e
  rm -rf /tmp/ek && $setup
  /tmp/ek/bin/pip install -q /dist/$wheel
  /tmp/ek/bin/python -c 'import platform, numpy, edgekit.runtime as r; print(\"platform\", platform.machine(), \"numpy\", numpy.__version__, \"runtime\", r.find_runtime())'
  /tmp/ek/bin/edgekit detect $ssd/detect.tflite /data/images/coral_kite_and_cold.jpg --labels $ssd/labelmap.txt --threshold 0.5 -v
  /tmp/ek/bin/edgekit detect /examples/shapes/shapes_int8.tflite /examples/shapes/images/scene_0.png --threshold 0.5
  /tmp/ek/bin/edgekit doctor || true
  /tmp/ek/bin/edgekit doctor --json > /tmp/doctor.json || true
  /tmp/ek/bin/python -c 'import json; d = json.load(open(\"/tmp/doctor.json\"))[\"device\"]; print(\"probe\", json.dumps([d[\"cpu\"][\"board\"], sorted(d[\"cpu\"][\"isa\"]), d[\"cpu\"][\"online_cores\"], d[\"cpu\"][\"usable_cores\"], d[\"memory\"][\"total\"]]))'
  /tmp/ek/bin/edgekit plan $ssd/detect.tflite
" 2>&1) || { echo "$out"; echo "pi-sandbox-smoke: FAILED on $arch" >&2; exit 1; }
echo "$out"
grep -q '"label": "kite"' <<<"$out" && grep -q '"label": "person"' <<<"$out" && grep -q '"label": "circle"\|"label": "square"\|"label": "triangle"' <<<"$out" \
  || { echo "pi-sandbox-smoke: detections missing on $arch" >&2; exit 1; }
case "$model" in pi5) board="Raspberry Pi 5" ;; pi4) board="Raspberry Pi 4" ;; pi3) board="Raspberry Pi 3" ;; pizero2w) board="Raspberry Pi Zero 2 W" ;; esac
grep -q "^probe \[\"$board" <<<"$out" && grep -q '"neon"' <<<"$(grep '^probe' <<<"$out")" && grep -q '^probe .*, 4, ' <<<"$out" \
  || { echo "pi-sandbox-smoke: doctor did not report the emulated $board (board, NEON/ASIMD, 4 online cores)" >&2; exit 1; }
grep -q '^pick ' <<<"$out" || { echo "pi-sandbox-smoke: plan made no pick" >&2; exit 1; }
echo "pi-sandbox-smoke: OK on $arch ($model)"
