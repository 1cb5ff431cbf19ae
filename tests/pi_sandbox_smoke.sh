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
#
# Besides install + SSD/shapes detection + doctor/plan, it proves on the Pi's own runtime that
#   - `edgekit info` on MediaPipe BlazeFace exits 0, describes its outputs and says it refuses it;
#   - `edgekit detect` on YOLOv8n (320) names classes from the model's Ultralytics metadata, no --labels;
#   - a TF2-ordered SSD (scores, boxes, count, classes; built on the host by tests/exporters.py,
#     which needs ai_edge_litert there: EXPORT_PYTHON, default .venv/bin/python) decodes to exactly
#     the detections of the TF1 SSD it was made from (cats and dogs image).
# Options after the model go to pi-sandbox run, e.g.: tests/pi_sandbox_smoke.sh arm64 pi4 --release trixie
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-arm64}
model=${2:-pi4}
shift $(( $# < 2 ? $# : 2 ))
extra=("$@")   # passed through to pi-sandbox run, e.g. --release trixie
shared=$(cd "${EDGEKIT_SHARED_DATA:-$repo/../shared/data}" && pwd)
sandbox=${PI_SANDBOX:-$shared/../tools/pi-sandbox}
python=${PYTHON:-python3}

dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
"$python" -m pip wheel -q --no-deps -w "$dist" "$repo"
wheel=$(basename "$dist"/edgekit-*.whl)
dirty=$(git -C "$repo" status --porcelain -- edgekit pyproject.toml 2>/dev/null | wc -l || true)
echo "pi-sandbox-smoke: built $wheel from $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')" \
     "($dirty uncommitted path(s) under edgekit/ or pyproject.toml); installing on emulated $model ($arch ${extra[*]})"

# The TF2-ordered SSD is made on the host: the sandbox only gets the wheel and its runtime.
"${EXPORT_PYTHON:-$repo/.venv/bin/python}" -c \
  "import sys; sys.path.insert(0, sys.argv[1]); import exporters; exporters.tf2_ssd_layout(dst=sys.argv[2])" \
  "$repo/tests" "$dist/tf2_ssd.tflite"

# New-behaviour steps, run inside after the ones below. Each step's stderr, then stdout, is printed
# with a "<step>: " prefix (then "<step>: rc N") so the checks on the host can tell the steps apart.
cat > "$dist/new_checks.sh" <<'EOF'
set -u
ek=/tmp/ek/bin/edgekit ssd=/data/models/ssd_mobilenet_v1_quant
step() {
  local name=$1 rc=0; shift
  "$@" >"/tmp/$name.out" 2>"/tmp/$name.err" || rc=$?
  sed "s/^/$name: /" "/tmp/$name.err" "/tmp/$name.out"
  echo "$name: rc $rc"
}
step blazeface "$ek" info /data/models/blazeface/face_detection_short_range.tflite
step yolo "$ek" detect /data/models/yolov8n/yolov8n_int8_320.tflite /data/images/coral_kite_and_cold.jpg --threshold 0.5 -v --no-plan
step tf1ssd "$ek" detect $ssd/detect.tflite /data/images/tflsupport_cats_and_dogs.jpg --labels $ssd/labelmap.txt --threshold 0.4 -v --no-plan
step tf2ssd "$ek" detect /dist/tf2_ssd.tflite /data/images/tflsupport_cats_and_dogs.jpg --labels $ssd/labelmap.txt --threshold 0.4 -v --no-plan
step tf2info "$ek" info --json /dist/tf2_ssd.tflite
/tmp/ek/bin/python -c '
import json
def load(n):
    try:
        return json.load(open(f"/tmp/{n}.out"))
    except Exception as e:
        return {"error": repr(e)}
a, b = load("tf1ssd").get("detections"), load("tf2ssd").get("detections")
print("compare:", "same" if a and a == b else "DIFFERENT", len(a or []), "vs", len(b or []), "detections;",
      "labels", sorted({d["label"] for d in (b or [])}))
info = load("tf2info")
print("compare: tf2 outputs", [(o["name"], o["shape"]) for o in info.get("outputs", [])], "layout", json.dumps(info.get("layout")))
'
EOF

if [ "$arch" = armhf ]; then
  setup="apt-get install -y -qq python3-numpy python3-pil >/dev/null && python3 -m venv --system-site-packages /tmp/ek"
else
  setup="python3 -m venv /tmp/ek"
fi
ssd=/data/models/ssd_mobilenet_v1_quant
start=$SECONDS
out=$("$sandbox" run --arch "$arch" --model "$model" "${extra[@]}" --bind "$dist:/dist" --bind "$shared:/data" \
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
  bash /dist/new_checks.sh
" 2>&1) || { echo "$out"; echo "pi-sandbox-smoke: FAILED on $arch" >&2; exit 1; }
echo "$out"
echo "pi-sandbox-smoke: sandbox run took $((SECONDS - start)) s (emulated)"
plain=$(grep '^{' <<<"$out" || true)   # JSON lines of the unprefixed steps (SSD on the kite image, shapes)
grep -q '"label": "kite"' <<<"$plain" && grep -q '"label": "person"' <<<"$plain" && grep -q '"label": "circle"\|"label": "square"\|"label": "triangle"' <<<"$plain" \
  || { echo "pi-sandbox-smoke: detections missing on $arch" >&2; exit 1; }
case "$model" in pi5) board="Raspberry Pi 5" ;; pi4) board="Raspberry Pi 4" ;; pi3) board="Raspberry Pi 3" ;; pizero2w) board="Raspberry Pi Zero 2 W" ;; esac
grep -q "^probe \[\"$board" <<<"$out" && grep -q '"neon"' <<<"$(grep '^probe' <<<"$out")" && grep -q '^probe .*, 4, ' <<<"$out" \
  || { echo "pi-sandbox-smoke: doctor did not report the emulated $board (board, NEON/ASIMD, 4 online cores)" >&2; exit 1; }
grep -q '^pick ' <<<"$out" || { echo "pi-sandbox-smoke: plan made no pick" >&2; exit 1; }
fail() { echo "pi-sandbox-smoke: $1 on $arch ${extra[*]}" >&2; exit 1; }
# (a) BlazeFace: info exits 0, lists both outputs, and says edgekit refuses it.
grep -qx 'blazeface: rc 0' <<<"$out" || fail "edgekit info on BlazeFace did not exit 0"
grep -q '^blazeface: output *regressors \[1, 896, 16\]' <<<"$out" \
  && grep -q '^blazeface: output *classificators \[1, 896, 1\]' <<<"$out" || fail "edgekit info did not describe BlazeFace's outputs"
grep -q '^blazeface: edgekit: *refuses it' <<<"$out" || fail "edgekit info did not say it refuses BlazeFace"
# (b) YOLOv8n: real names from the model's Ultralytics metadata, without --labels.
grep -qx 'yolo: rc 0' <<<"$out" || fail "YOLOv8n detect failed"
grep -q '^yolo: edgekit: .*labels: 80 (from Ultralytics metadata' <<<"$out" || fail "YOLOv8n labels did not come from its Ultralytics metadata"
grep -q '^yolo: {.*"label": "kite"' <<<"$out" && grep -q '^yolo: {.*"label": "person"' <<<"$out" || fail "YOLOv8n did not name kite and person"
! grep -q '^yolo: {.*"label": "class_' <<<"$out" || fail "YOLOv8n printed class_N names"
# (c) TF2-ordered SSD: decoded as ssd, exactly the TF1 SSD's detections, cats and dogs among them.
grep -qx 'tf1ssd: rc 0' <<<"$out" && grep -qx 'tf2ssd: rc 0' <<<"$out" || fail "SSD detect on tflsupport_cats_and_dogs.jpg failed"
grep -q '^tf2ssd: edgekit: .*layout ssd ' <<<"$out" || fail "TF2 SSD not decoded with the ssd layout"
grep -q "^compare: same .*'cat'.*'dog'" <<<"$out" || fail "TF2 SSD detections differ from TF1's (or lack cat/dog)"
echo "pi-sandbox-smoke: OK on $arch ($model ${extra[*]})"
