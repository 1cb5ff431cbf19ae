#!/usr/bin/env bash
# Prove that the edgekit wheel installs with plain pip and detects on an emulated Raspberry Pi OS
# (Debian Bookworm or Trixie userland under qemu-user, via ../shared/tools/pi-sandbox). Not part of CI:
# emulation makes it take several minutes. Emulated timings mean nothing.
#
#   tests/pi_sandbox_smoke.sh [arm64|armhf] [pi4|pi5|pi3|pizero2w] [--release bookworm|trixie]
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
#     the detections of the TF1 SSD it was made from (cats and dogs image);
#   - the video extra: after the plain install (and its checks), `pip install '<wheel>[video]'`. pip takes
#     PyAV from PyPI, whose wheels bundle FFmpeg: manylinux aarch64 on arm64, and manylinux_2_31 armv7l
#     on armhf too (there with the apt NumPy 1.24; the script first purges python3-av so that pip
#     really fetches it). On armhf it then also proves the other way: Debian's python3-av (PyAV 10 on the
#     system's FFmpeg 5.1) from apt into a fresh --system-site-packages venv, where pip finds av>=10
#     satisfied. Each way prints PyAV/FFmpeg/Python/NumPy and edgekit's dependencies, then `edgekit
#     detect` reads real clips made on the host with ffmpeg (a 24-frame pan across coral_kite_and_cold.jpg,
#     960x720 at 10 fps: H.264 in MP4, and H.265/HEVC in MP4 when the host's ffmpeg has libx265): one
#     JSON line per frame, frames 0..23 in order with their timestamps, kites and people found. Printed,
#     not checked: labels per frame against the same clip detected on the host, and MD5s of the decoded
#     frames (the YUV is bit-exact everywhere; FFmpeg's YUV->RGB output differs between x86-64, aarch64
#     and armv7l, so a score may move by a quantisation step and detections at the 0.5 threshold come and go).
# Options after the model go to pi-sandbox run, e.g.: tests/pi_sandbox_smoke.sh arm64 pi4 --release trixie
# Needs on the host: root (pi-sandbox), ffmpeg with libx264 (libx265 optional), and EXPORT_PYTHON with
# ai_edge_litert and edgekit importable (the dev venv).
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

# The video clips, also made on the host: a 960x720 window panning 16 px a frame across the photo.
frames=24
ffmpeg_bin=${FFMPEG:-ffmpeg}
command -v "$ffmpeg_bin" >/dev/null || { echo "pi-sandbox-smoke: the host needs ffmpeg (libx264) to make the video clips" >&2; exit 1; }
encode() {  # $1 = output, rest = codec arguments
  local out=$1; shift
  "$ffmpeg_bin" -v error -y -loop 1 -framerate 10 -i "$shared/images/coral_kite_and_cold.jpg" \
    -vf "crop=960:720:n*16:90,format=yuv420p" -frames:v "$frames" "$@" "$out"
}
encode "$dist/pan_h264.mp4" -c:v libx264 -preset veryfast -crf 18
clips=(h264)
encoders=$("$ffmpeg_bin" -hide_banner -encoders 2>/dev/null || true)   # not piped into grep -q: SIGPIPE + pipefail
if grep -q ' libx265 ' <<<"$encoders"; then
  encode "$dist/pan_h265.mp4" -c:v libx265 -x265-params log-level=error:crf=20 -tag:v hvc1
  clips+=(h265)
else
  echo "pi-sandbox-smoke: the host's ffmpeg has no libx265: no H.265 clip this time"
fi
ssd_host=$shared/models/ssd_mobilenet_v1_quant
for c in "${clips[@]}"; do   # the reference: the same clip detected on the host
  "${EXPORT_PYTHON:-$repo/.venv/bin/python}" -m edgekit detect "$ssd_host/detect.tflite" "$dist/pan_$c.mp4" \
    --labels "$ssd_host/labelmap.txt" --threshold 0.5 > "$dist/host_$c.jsonl"
done
# Where host and Pi may part: MD5s of each clip's decoded frames, as YUV and as PyAV's RGB (printed, not checked).
cat > "$dist/framehash.py" <<'EOF'
import hashlib, sys
import av
for path in sys.argv[1:]:
    yuv, rgb = hashlib.md5(), hashlib.md5()
    with av.open(path) as container:
        for frame in container.decode(video=0):
            yuv.update(frame.to_ndarray().tobytes())
            rgb.update(frame.to_ndarray(format="rgb24").tobytes())
    print(path.rsplit("/", 1)[-1], "yuv", yuv.hexdigest()[:12], "rgb24", rgb.hexdigest()[:12])
EOF
hosthash=$(cd "$dist" && for c in "${clips[@]}"; do "${EXPORT_PYTHON:-$repo/.venv/bin/python}" framehash.py "pan_$c.mp4" 2>&1; done || true)

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

# What PyAV and FFmpeg a venv has, with edgekit's dependencies (run inside).
cat > "$dist/versions.py" <<'EOF'
import importlib.metadata as md, platform, json
import av
def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None
libs = {k: "%d.%d.%d" % tuple(x) for k, x in getattr(av, "library_versions", {}).items()}
print(json.dumps({"python": platform.python_version(), "machine": platform.machine(), "pyav": av.__version__,
                  "ffmpeg": getattr(av, "ffmpeg_version_info", None), "libavcodec": libs.get("libavcodec"),
                  "av_from": av.__file__,
                  "deps": {d: version(d) for d in ("edgekit", "numpy", "Pillow", "paho-mqtt", "ai-edge-litert",
                                                   "tflite-runtime", "av")}}))
for codec in ("h264", "hevc"):
    try:
        av.codec.Codec(codec, "r")
        print("decoder", codec, "yes")
    except Exception as exc:
        print("decoder", codec, "no:", type(exc).__name__, exc)
EOF

# The video extra, after everything above ran on the plain install. Same step format.
cat > "$dist/video_checks.sh" <<'EOF'
set -u
wheel=$1 arch=$2; shift 2
ssd=/data/models/ssd_mobilenet_v1_quant
step() {
  local name=$1 rc=0; shift
  "$@" >"/tmp/$name.out" 2>"/tmp/$name.err" || rc=$?
  sed "s/^/$name: /" "/tmp/$name.err" "/tmp/$name.out"
  echo "$name: rc $rc"
}
if [ "$arch" = armhf ]; then
  # A fresh 32-bit Pi OS has no python3-av; the root file system is reused between runs, so (after the
  # apt path below ran once) take it out again: pip must find PyAV on PyPI, as on a user's Pi.
  if dpkg -s python3-av >/dev/null 2>&1; then apt-get purge -y -qq python3-av >/dev/null 2>&1; fi
fi
videorun() {  # $1 = venv, $2 = step prefix, rest = clips
  local venv=$1 prefix=$2; shift 2
  step "${prefix}install" "$venv/bin/pip" install "/dist/$wheel[video]"
  step "${prefix}versions" "$venv/bin/python" /dist/versions.py
  for c in "$@"; do
    step "${prefix}framehash" "$venv/bin/python" /dist/framehash.py "/dist/pan_$c.mp4"
    step "${prefix}_$c" "$venv/bin/edgekit" detect $ssd/detect.tflite "/dist/pan_$c.mp4" --labels $ssd/labelmap.txt \
      --threshold 0.5 -v
  done
}
videorun /tmp/ek video "$@"
if [ "$arch" = armhf ]; then
  # The other way a 32-bit Pi OS user can get PyAV: Debian's python3-av (built on the system's FFmpeg)
  # into a --system-site-packages venv, where pip then finds av>=10 satisfied.
  step aptav sh -c 'apt-get install -y -qq python3-av >/dev/null && dpkg-query -W python3-av "libavcodec[0-9]*"'
  rm -rf /tmp/ek-apt && python3 -m venv --system-site-packages /tmp/ek-apt
  videorun /tmp/ek-apt aptvideo "$@"
fi
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
  bash /dist/video_checks.sh $wheel $arch ${clips[*]}
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
# (d) The video extra: installed, versions printed, every frame of each clip once and in order, kites and people.
# $1 = step prefix, $2 = where PyAV must come from (a path prefix of av/__init__.py), $3 = how it was installed.
check_video() {
  local prefix=$1 from=$2 how=$3 c wheelfile versions pihash hhash
  grep -qx "${prefix}install: rc 0" <<<"$out" || fail "$how: pip install '$wheel[video]' failed"
  grep -qx "${prefix}versions: rc 0" <<<"$out" || fail "$how: PyAV does not import after pip install '$wheel[video]'"
  versions=$(grep -m1 "^${prefix}versions: {" <<<"$out" | sed "s/^${prefix}versions: //")
  grep -q "\"av_from\": \"$from" <<<"$versions" || fail "$how: PyAV was not imported from $from"
  wheelfile=$(grep -o "^${prefix}install: .*\(Downloading\|Using cached\) av-[^ ]*\.whl" <<<"$out" | grep -o 'av-[^ ]*\.whl' || true)
  echo "pi-sandbox-smoke: $how: ${wheelfile:-no PyAV wheel downloaded ($(grep -m1 -o 'Requirement already satisfied: av[^(]*([^)]*) ([^)]*)' <<<"$out" || echo '?'))}"
  echo "pi-sandbox-smoke: $how: $versions"
  for c in "${clips[@]}"; do
    grep -qx "${prefix}_$c: rc 0" <<<"$out" || fail "$how: edgekit detect on the $c clip did not exit 0"
    sed -n "s/^${prefix}_$c: {/{/p" <<<"$out" > "$dist/pi_$c.jsonl"
    "$python" - "$dist/pi_$c.jsonl" "$dist/host_$c.jsonl" "$frames" "$c" "$how" <<'PY' || fail "$how: the $c clip was not processed as it should be"
import json, sys
pi = [json.loads(line) for line in open(sys.argv[1])]
host = [json.loads(line) for line in open(sys.argv[2])]
n, clip, how = int(sys.argv[3]), sys.argv[4], sys.argv[5]
def labels(r):
    return sorted(d["label"] for d in r["detections"])
problems = []
if [r.get("frame") for r in pi] != list(range(n)):
    problems.append(f"frames {[r.get('frame') for r in pi]}, not 0..{n - 1} once each in order")
if any(abs(r.get("timestamp", -1) - r.get("frame", 0) / 10) > 1e-3 for r in pi):
    problems.append(f"timestamps {[r.get('timestamp') for r in pi]} are not frame/10 s")
if any(not r["source"].endswith(f"pan_{clip}.mp4") or (r.get("width"), r.get("height")) != (960, 720) for r in pi):
    problems.append("a line names another source or size than the 960x720 clip")
with_kite = sum("kite" in labels(r) for r in pi)
with_person = sum("person" in labels(r) for r in pi)
if with_kite < 0.75 * n or with_person < 0.75 * n:  # on the host: both in every frame
    problems.append(f"kites in {with_kite}, people in {with_person} of {len(pi)} frames")
same = sum(labels(a) == labels(b) for a, b in zip(pi, host))
names = ", ".join(sorted({name for r in pi for name in labels(r)}))
print(f"pi-sandbox-smoke: {how}: {clip}: {len(pi)} JSON lines, frames {[r.get('frame') for r in pi[:1] + pi[-1:]]} in order;"
      f" kite in {with_kite}, person in {with_person} frames, {sum(len(r['detections']) for r in pi)} detections"
      f" ({names}); same labels as the host in {same}/{len(host)} frames")
for p in problems:
    print(f"pi-sandbox-smoke: {how}: {clip}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
    pihash=$(sed -n "s/^${prefix}framehash: \(pan_$c\.mp4 .*\)/\1/p" <<<"$out") hhash=$(grep "^pan_$c\.mp4 " <<<"$hosthash" || true)
    if [ -n "$pihash" ] && [ "$pihash" = "$hhash" ]; then
      echo "pi-sandbox-smoke: $how: $c: decoded frames (YUV and RGB) identical to the host's"
    else
      echo "pi-sandbox-smoke: $how: $c: decoded frames, MD5 — Pi: ${pihash:-?}; host: ${hhash:-?}"
    fi
  done
}
if [ "$arch" = armhf ]; then
  check_video video /tmp/ek/lib/ "armhf, PyAV from PyPI"
  grep -qx 'aptav: rc 0' <<<"$out" || fail "apt-get install python3-av failed"
  echo "pi-sandbox-smoke: apt: $(sed -n 's/^aptav: \(python3-av\|libavcodec\)/\1/p' <<<"$out" | tr '\t\n' '  ')"
  check_video aptvideo /usr/lib/python3/dist-packages/ "armhf, python3-av from apt"
else
  check_video video /tmp/ek/lib/ "$arch ${extra[*]}, PyAV from PyPI"
fi
echo "pi-sandbox-smoke: OK on $arch ($model ${extra[*]})"
