"""LiteRT's CompiledModel API against the Interpreter edgekit uses (issue 9), on real models.

For each model and thread count, two child processes are started, one per API, each holding its
model loaded: A = ``Interpreter(model_path, num_threads=T)`` (set_tensor + invoke + get_tensor of
every output), B = ``CompiledModel.from_file`` with ``CpuOptions(num_threads=T)`` (input/output
buffers created once; write input + run_by_index + read every output). Both get the same input
tensor (edgekit's preprocessing of a real photo), are warmed up, then timed in interleaved rounds
(A, B, A, B, ...) so machine noise hits both; each round reports the median of its runs and B/A.
A child that dies (segfault, abort) is reported as "crashed: signal N / last stderr line" and the
benchmark goes on. Outputs are compared (raw values: quantized outputs are not dequantized) and
what each API exposes about quantization (scale / zero point, needed by edgekit's decoders) is
printed. The last line is a conclusion drawn from the numbers.

    .venv/bin/python examples/benchmarks/bench_compiled_model.py [--data ../shared/data]
        [--rounds 9] [--round-seconds 0.8] [--threads 1 2] [--models NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PHOTO = "images/coral_kite_and_cold.jpg"
BLAZEFACE_PLUGIN = Path(__file__).resolve().parents[1] / "blazeface_decoder.py"
MODELS = {
    "ssd_mobilenet_v1 uint8": "models/ssd_mobilenet_v1_quant/detect.tflite",
    "yolov8n full-int8": "models/yolov8n/yolov8n_full_integer_quant.tflite",
    "yolov8n dynamic-range": "models/yolov8n/yolov8n_int8.tflite",
    "blazeface float": "models/blazeface/face_detection_short_range.tflite",
}
APIS = ("interpreter", "compiled")
REPLY_TIMEOUT = 600.0  # seconds a child may take to answer one command
# "Faster"/"slower" needs the median B/A beyond 1 ± SAME_BAND and at least CONSISTENT of the rounds
# on that side of 1; anything else is "the same speed" on this machine.
SAME_BAND = 0.05
CONSISTENT = 0.8
REBUFFER = 5  # CompiledModel: times new input/output buffers are created after running (then a run)


# ---------------------------------------------------------------------------------------------
# Child: one API, one model, one thread count. Commands on stdin, one JSON reply line each.
# ---------------------------------------------------------------------------------------------


class _InterpreterRunner:
    def __init__(self, model: str, threads: int, tensor: np.ndarray) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=model, num_threads=threads)
        self.it.allocate_tensors()
        self.input_index = self.it.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.it.get_output_details()]
        self.tensor = tensor

    def run(self) -> list[np.ndarray]:
        self.it.set_tensor(self.input_index, self.tensor)
        self.it.invoke()
        return [self.it.get_tensor(i) for i in self.outputs]

    def describe(self) -> dict:
        def q(d: dict) -> dict:
            scale, zero = d["quantization"]
            return {"name": d["name"], "index": int(d["index"]),
                    "dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}

        return {"inputs": [q(d) for d in self.it.get_input_details()],
                "outputs": [q(d) for d in self.it.get_output_details()]}


class _CompiledRunner:
    """``buffers_first`` (the probe): the shortest use of the API, as in LiteRT's examples: buffers
    made right after loading, no tensor details asked for; outputs read at their buffers' sizes."""

    def __init__(self, model: str, threads: int, tensor: np.ndarray, buffers_first: bool = False) -> None:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, Options

        options = Options(hardware_accelerators=HardwareAccelerator.CPU,
                          cpu_options=CpuOptions(num_threads=threads))
        self.cm = CompiledModel.from_file(model, options=options)
        if buffers_first:
            self.inputs = self.cm.create_input_buffers(0)
            self.outputs = self.cm.create_output_buffers(0)
            self.in_details = [{} for _ in self.inputs]
            self.out_details = [b.get_tensor_details() for b in self.outputs]
        else:
            signature = next(iter(self.cm.get_signature_list()))
            self.in_details = list(self.cm.get_input_tensor_details(signature).values())
            self.out_details = list(self.cm.get_output_tensor_details(signature).values())
            self.inputs = self.cm.create_input_buffers(0)
            self.outputs = self.cm.create_output_buffers(0)
        self.reads = [(int(np.prod(d["shape"])), np.dtype(d["dtype"]), tuple(d["shape"]))
                      for d in self.out_details]
        self.tensor = tensor

    def run(self) -> list[np.ndarray]:
        self.inputs[0].write(self.tensor)
        self.cm.run_by_index(0, self.inputs, self.outputs)
        return [buf.read(n, dtype).reshape(shape)
                for buf, (n, dtype, shape) in zip(self.outputs, self.reads)]

    def rebuffer(self) -> None:
        self.inputs = self.cm.create_input_buffers(0)
        self.outputs = self.cm.create_output_buffers(0)
        self.run()

    def describe(self) -> dict:
        def q(d: dict, buf: object) -> dict:
            # Everything the API tells about a tensor: its details plus the buffer's details.
            info = {k: v for k, v in d.items() if k != "shape"}
            info["buffer"] = buf.get_tensor_details()
            return json.loads(json.dumps(info, default=str))

        return {"inputs": [q(d, b) for d, b in zip(self.in_details, self.inputs)],
                "outputs": [q(d, b) for d, b in zip(self.out_details, self.outputs)],
                "fully_accelerated": self.cm.is_fully_accelerated()}


def _child(api: str, model: str, threads: int, tensor_path: str, dump_path: str) -> None:
    out = sys.stdout
    tensor = np.load(tensor_path)
    if api == "interpreter":
        runner = _InterpreterRunner(model, threads, tensor)
    else:
        runner = _CompiledRunner(model, threads, tensor, buffers_first=api == "compiled-buffers-first")
    reply = {"ok": True, "describe": runner.describe()}
    out.write(json.dumps(reply) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "run":  # one untimed run (warm-up); the reply counts it as survived
            runner.run()
            reply = {"ok": True}
        elif cmd[0] == "time":  # n timed runs: milliseconds each
            times = []
            cpu = time.process_time()
            for _ in range(int(cmd[1])):
                t = time.perf_counter()
                runner.run()
                times.append((time.perf_counter() - t) * 1000)
            # CPU time of all the process's threads per wall second: shows the threads really used.
            reply = {"ok": True, "ms": times, "cores": (time.process_time() - cpu) * 1000 / sum(times)}
        elif cmd[0] == "dump":  # the outputs of one more run, in the API's output order
            arrays = runner.run()
            np.savez(dump_path, *arrays)
            reply = {"ok": True}
        elif cmd[0] == "rebuffer":  # REBUFFER times: buffers created again, one run with them
            try:
                for _ in range(REBUFFER):
                    runner.rebuffer()
                reply = {"ok": True, "rebuffer": f"ok x{REBUFFER}"}
            except Exception as exc:  # noqa: BLE001 - reported, not handled
                msg = [ln for ln in str(exc).splitlines() if ln.strip()]
                reply = {"ok": True, "rebuffer": f"{type(exc).__name__}: {msg[-1] if msg else ''}"}
        else:
            return
        out.write(json.dumps(reply) + "\n")
        out.flush()


# ---------------------------------------------------------------------------------------------
# Parent: start children, interleave rounds, report crashes.
# ---------------------------------------------------------------------------------------------


class ChildDied(Exception):
    pass


@dataclass
class Child:
    api: str
    proc: subprocess.Popen
    stderr_path: str
    dump_path: str
    runs: int = 0  # runs survived (warm-up + timed + dump)
    describe: dict = field(default_factory=dict)
    _buf: bytes = b""

    def ask(self, command: str | None) -> dict:
        try:
            if command is not None:
                self.proc.stdin.write((command + "\n").encode())
                self.proc.stdin.flush()
        except BrokenPipeError:
            raise ChildDied(self.death()) from None
        deadline = time.monotonic() + REPLY_TIMEOUT
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.proc.kill()
                self.proc.wait()
                raise ChildDied(f"hung: no reply in {REPLY_TIMEOUT:.0f} s to {command!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise ChildDied(self.death())
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def death(self) -> str:
        rc = self.proc.wait()
        last = _last_line(self.stderr_path)
        if rc < 0:
            return f"crashed: signal {-rc} ({signal.Signals(-rc).name}) after {self.runs} runs / {last}"
        return f"failed: exit {rc} after {self.runs} runs / {last}"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _last_line(path: str) -> str:
    """The last stderr line that is not LiteRT's INFO/WARNING chatter (accelerator registry etc.)."""
    with open(path, errors="replace") as fh:
        lines = [ln.strip() for ln in fh if ln.strip() and not ln.startswith(("INFO: [", "WARNING: ["))]
    return lines[-1][:200] if lines else "(no stderr)"


def _start(api: str, model: str, threads: int, tensor_path: str, workdir: str) -> Child:
    tag = f"{api}_{threads}"
    stderr_path = os.path.join(workdir, f"{tag}.stderr")
    dump_path = os.path.join(workdir, f"{tag}.npz")
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", api, model, str(threads),
             tensor_path, dump_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    child = Child(api, proc, stderr_path, dump_path)
    child.describe = child.ask(None)["describe"]
    return child


@dataclass
class Result:
    threads: int
    median_ms: dict[str, float | None] = field(default_factory=dict)
    ratios: list[float] = field(default_factory=list)
    failure: dict[str, str] = field(default_factory=dict)
    max_diff: list[str] = field(default_factory=list)
    cores: dict[str, float] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    rebuffer: str = ""
    runs_per_round: int = 0


def _bench(model: str, threads: int, tensor_path: str, workdir: str, rounds: int,
           round_seconds: float, warmup: int) -> tuple[Result, dict[str, dict]]:
    res = Result(threads)
    children: dict[str, Child] = {}
    describes: dict[str, dict] = {}
    started: list[Child] = []
    try:
        for api in APIS:
            try:
                children[api] = _start(api, model, threads, tensor_path, workdir)
                started.append(children[api])
                describes[api] = children[api].describe
            except ChildDied as exc:
                res.failure[api] = f"at load: {exc}"
        # Warm up each API, one run per command, so a crash names the run that crashed.
        for api, child in list(children.items()):
            try:
                for _ in range(warmup):
                    child.ask("run")
                    child.runs += 1
            except ChildDied as exc:
                res.failure[api] = str(exc)
                del children[api]
        if not children:
            return res, describes
        # Runs per round: about round_seconds of the slower API.
        probe = []
        for child in children.values():
            try:
                probe.append(statistics.median(child.ask("time 3")["ms"]))
                child.runs += 3
            except ChildDied as exc:
                res.failure[child.api] = str(exc)
        children = {a: c for a, c in children.items() if a not in res.failure}
        if not children:
            return res, describes
        res.runs_per_round = max(3, int(round_seconds * 1000 / max(probe)))
        medians: dict[str, list[float]] = {api: [] for api in children}
        cores: dict[str, list[float]] = {api: [] for api in children}
        for _ in range(rounds):
            for api, child in list(children.items()):
                try:
                    reply = child.ask(f"time {res.runs_per_round}")
                    medians[api].append(statistics.median(reply["ms"]))
                    cores[api].append(reply["cores"])
                    child.runs += res.runs_per_round
                except ChildDied as exc:
                    res.failure[api] = str(exc)
                    del children[api]
        for api, values in medians.items():
            res.median_ms[api] = statistics.median(values) if values else None
            if cores[api]:
                res.cores[api] = statistics.median(cores[api])
        a, b = medians.get("interpreter", []), medians.get("compiled", [])
        res.ratios = [y / x for x, y in zip(a, b)]
        # Outputs of one more run of each survivor.
        for api, child in list(children.items()):
            try:
                child.ask("dump")
                child.runs += 1
            except ChildDied as exc:
                res.failure[api] = str(exc)
                del children[api]
        if len(children) == 2:
            res.max_diff = _compare(describes, children["interpreter"].dump_path,
                                    children["compiled"].dump_path)
        # Last (it may kill the child): can the CompiledModel have its buffers made again?
        if "compiled" in children:
            try:
                res.rebuffer = children["compiled"].ask("rebuffer")["rebuffer"]
            except ChildDied as exc:
                res.rebuffer = str(exc)
    finally:
        for child in started:
            res.runs[child.api] = child.runs
            child.close()
    return res, describes


def _probe_buffers_first(model: str, tensor_path: str, workdir: str, runs: int) -> str:
    """CompiledModel used minimally: buffers made before any tensor details are asked for (1 thread)."""
    try:
        child = _start("compiled-buffers-first", model, 1, tensor_path, workdir)
    except ChildDied as exc:
        return f"at load: {exc}"
    try:
        shapes = [d["buffer"]["shape"] for d in child.describe["outputs"]]
        for _ in range(runs):
            child.ask("run")
            child.runs += 1
        return f"ok, {runs} runs (output buffer shapes {shapes})"
    except ChildDied as exc:
        return f"{exc} (output buffer shapes {shapes})"
    finally:
        child.close()


def _compare(describes: dict[str, dict], path_a: str, path_b: str) -> list[str]:
    """Max |A - B| per output, matched by tensor index (raw values: int8/uint8 stay integers)."""
    a = np.load(path_a)
    b = np.load(path_b)
    a_out = [d["index"] for d in describes["interpreter"]["outputs"]]
    b_out = [d.get("index") for d in describes["compiled"]["outputs"]]
    diffs = []
    for j, index in enumerate(b_out):
        i = a_out.index(index) if index in a_out else j
        x, y = a[f"arr_{i}"], b[f"arr_{j}"]
        if x.shape != y.shape:
            diffs.append(f"shape {x.shape} vs {y.shape}")
            continue
        d = np.abs(x.astype(np.float64) - y.astype(np.float64))
        scale = float(np.abs(x.astype(np.float64)).max()) or 1.0
        diffs.append(f"{d.max():.3g}" + (f" ({d.max() / scale:.1%} of max)" if d.max() else "")
                     + f" [{x.dtype}]")
    return diffs


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _cpu() -> str:
    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
           if f in flags]
    return f"{model}; ISA: {' '.join(isa) or 'none of avx2/avx512/vnni'}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _quant_text(describe: dict, api: str) -> str:
    if api == "interpreter":
        parts = [f"{d['dtype']} s={d['scale']:.4g} zp={d['zero_point']}"
                 if d["scale"] else f"{d['dtype']} (not quantized)"
                 for d in describe["inputs"] + describe["outputs"]]
        return "in " + parts[0] + "; out " + ", ".join(parts[1:])
    keys = sorted({k for d in describe["inputs"] + describe["outputs"] for k in d}
                  | {k for d in describe["inputs"] + describe["outputs"] for k in d["buffer"]})
    has = [k for k in keys if "quant" in k or "scale" in k or "zero" in k]
    return (f"tensor/buffer details give {', '.join(keys)}"
            + (f" (quantization: {', '.join(has)})" if has else " - no scale/zero point"))


def _is_quantized(describe: dict | None) -> bool:
    return bool(_quantized_tensors(describe))


def _quantized_tensors(describe: dict | None) -> str:
    """"input", "output" or "input and output": the quantized tensors, per the Interpreter."""
    if not describe:
        return ""
    kinds = [k for k in ("input", "output") if any(d["scale"] for d in describe[k + "s"])]
    return " and ".join(kinds)


def _verdict(ratios: list[float]) -> str:
    if not ratios:
        return "not compared"
    r = statistics.median(ratios)
    below = sum(x < 1 for x in ratios) / len(ratios)
    if r < 1 - SAME_BAND and below >= CONSISTENT:
        return f"CompiledModel faster (B/A {r:.2f})"
    if r > 1 + SAME_BAND and 1 - below >= CONSISTENT:
        return f"CompiledModel slower (B/A {r:.2f})"
    return f"same speed (B/A {r:.2f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("EDGEKIT_SHARED_DATA", "../shared/data"))
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--round-seconds", type=float, default=0.8, help="timed length of one API's round")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs per API before timing")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--probe-runs", type=int, default=5,
                   help="runs of the CompiledModel whose buffers are made before its tensor details")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="NAME")
    args = p.parse_args()

    from importlib.metadata import version

    from edgekit import Detector, DetectorOptions, InputSpec, load_plugin

    photo = os.path.join(args.data, PHOTO)
    print(f"CPU: {_cpu()}; {os.cpu_count()} cores, usable {len(os.sched_getaffinity(0))}")
    print(f"ai-edge-litert {version('ai-edge-litert')}, numpy {np.__version__}, Python {sys.version.split()[0]}")
    print(f"input: {photo} through edgekit's preprocessing; {args.rounds} rounds (A then B), "
          f"~{args.round_seconds} s each, {args.warmup} warm-up runs; load average {_load()}")
    print("A = Interpreter (set_tensor+invoke+get_tensor), B = CompiledModel (write+run_by_index+read)")
    print("runs = timed runs per API per round; load = 1-min load average after the row; "
          f"cores = CPU time / wall time while timing (threads really busy); 'faster' needs median B/A beyond 1 ± {SAME_BAND:.2f} in "
          f">= {CONSISTENT:.0%} of rounds")
    print(f"{'model':<23}{'T':>2}{'runs':>5}{'A ms':>7}{'B ms':>7}{'A cores':>8}{'B cores':>8}"
          f"  {'B/A per round':<{max(6 * args.rounds, 15)}}median  load")
    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_cm_") as workdir:
        for name in args.models:
            model = os.path.join(args.data, MODELS[name])
            if "blazeface" in name:  # no metadata: the plugin decoder and MediaPipe's input spec
                load_plugin(str(BLAZEFACE_PLUGIN))
                opts = DetectorOptions(layout="blazeface", input=InputSpec(
                    mean=(127.5,), std=(127.5,), resize="letterbox", pad_value=0))
            else:
                opts = DetectorOptions()
            det = Detector(model, opts)
            tensor, _ = det.preprocess(det.load(photo))
            tensor_path = os.path.join(workdir, "input.npy")
            np.save(tensor_path, tensor)
            info = summary.setdefault(name, {"results": [], "describe": {}})
            info["probe"] = _probe_buffers_first(model, tensor_path, workdir, args.probe_runs)
            for threads in args.threads:
                res, describes = _bench(model, threads, tensor_path, workdir, args.rounds,
                                        args.round_seconds, args.warmup)
                info["results"].append(res)
                for api, d in describes.items():
                    info["describe"].setdefault(api, d)
                a, b = res.median_ms.get("interpreter"), res.median_ms.get("compiled")
                ratios = " ".join(f"{r:.2f}" for r in res.ratios)
                med = f"{statistics.median(res.ratios):.2f}" if res.ratios else "-"
                ca, cb = res.cores.get("interpreter"), res.cores.get("compiled")
                print(f"{name:<23}{threads:>2}{res.runs_per_round:>5}"
                      f"{_num(a, 1):>7}{_num(b, 1):>7}{_num(ca, 2):>8}{_num(cb, 2):>8}"
                      f"  {ratios:<{max(6 * args.rounds, 15)}}{med:<8}{os.getloadavg()[0]:.1f}")
                for api, why in res.failure.items():
                    print(f"{'':<25}{'A' if api == 'interpreter' else 'B'} {why}")
                if res.rebuffer and not res.rebuffer.startswith("ok"):
                    print(f"{'':<25}B with buffers created again after running: {res.rebuffer}")
        print(f"load average after: {_load()}")

    print("\noutputs (max |A - B| per output, raw values, after the timed rounds) and quantization:")
    for name, info in summary.items():
        diffs = next((r.max_diff for r in info["results"] if r.max_diff), None)
        print(f"  {name}: outputs {'; '.join(diffs) if diffs else 'not compared (B did not finish)'}")
        runs = ", ".join(f"{r.threads}T {r.runs.get('compiled', 0)}" for r in info["results"])
        rebuffer = "; ".join(sorted({r.rebuffer for r in info["results"] if r.rebuffer}))
        print(f"    B runs survived: {runs}; buffers created again after running: {rebuffer or '-'}")
        print(f"    B used minimally (buffers made right after loading, no tensor details asked): {info['probe']}")
        for api in APIS:
            if api in info["describe"]:
                print(f"    {'A' if api == 'interpreter' else 'B'}: {_quant_text(info['describe'][api], api)}")

    print("\nconclusion: " + _conclusion(summary))


def _conclusion(summary: dict[str, dict]) -> str:
    parts = []
    usable_faster = []
    for name, info in summary.items():
        results: list[Result] = info["results"]
        crashes = [f"{r.threads}T {r.failure['compiled']}" for r in results if "compiled" in r.failure]
        a_fail = [f"{r.threads}T {r.failure['interpreter']}" for r in results if "interpreter" in r.failure]
        speed = "; ".join(f"{r.threads}T {_verdict(r.ratios)}" for r in results if r.ratios)
        text = f"{name}: {speed or 'no timing'}"
        if crashes:
            text += " — CompiledModel " + "; ".join(crashes)
        rebuffer = sorted({r.rebuffer for r in results if r.rebuffer and not r.rebuffer.startswith("ok")})
        if not info["probe"].startswith("ok"):
            text += (" — CompiledModel used minimally (buffers made before any tensor details are asked for) "
                     + info["probe"].split(" / ")[0])
        if rebuffer:
            text += " — CompiledModel fails when its buffers are created again after a run (" + "; ".join(rebuffer) + ")"
        if a_fail:
            text += " — Interpreter " + "; ".join(a_fail)
        cm_desc = info["describe"].get("compiled")
        no_quant = cm_desc is not None and "no scale/zero point" in _quant_text(cm_desc, "compiled")
        if _is_quantized(info["describe"].get("interpreter")) and no_quant:
            text += (f" — quantized {_quantized_tensors(info['describe'].get('interpreter'))}, but CompiledModel "
                     "gives no scale/zero point to encode/decode them")
        faster = [r for r in results if r.ratios and _verdict(r.ratios).startswith("CompiledModel faster")]
        if faster and not crashes and not (no_quant and _is_quantized(info["describe"].get("interpreter"))):
            usable_faster.append(f"{name} ({', '.join(f'{r.threads}T' for r in faster)})")
        parts.append(text)
    if usable_faster:
        tail = ("CompiledModel is faster and usable for " + ", ".join(usable_faster)
                + ": worth using there, with Interpreter elsewhere.")
    else:
        tail = ("CompiledModel is not faster on any model where it works and gives edgekit what it needs, "
                "so edgekit keeps Interpreter.")
    return ". ".join(parts) + ". " + tail


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        main()
