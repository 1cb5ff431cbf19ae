"""converters.gate: the batching and choice logic with a fake quantizer and evaluator, then the real
gate on YOLOv8n's float copy (a few calibration photos, 4 COCO validation images, so CI stays
fast). The 128-image run is ``examples/benchmarks/bench_int8_gate.py --gate 1.0``."""

from __future__ import annotations

import io

import numpy as np
import pytest

import converters.gate as gate
from converters.floatcopy import float_copy, quantized_activations
from converters.gate import OpError, batches, evaluator, gate_int8, islands, op_sensitivity
from converters.quantize import calibration_samples, quantize_int8
from edgekit.coco_eval import CocoScore
from edgekit.datasets import check_disjoint, load_validation_set
from edgekit.metadata import split_model


def test_batches_grow_by_doubling_up_to_all():
    ranked = list("abcdefghij")
    assert [len(b) for b in batches(ranked)] == [2, 4, 8, 10]
    assert list(batches(ranked, limit=2)) == [("a", "b"), ("a", "b", "c", "d")]
    assert list(batches(["a"])) == [("a",)]
    assert list(batches([])) == []


class _FakeQuantizer:
    """quantize_int8 stand-in: the 'model' is the exception lists; mAP rises with each op taken out
    of int8 (float a little more than int16)."""

    def __init__(self, monkeypatch, ops: list[OpError], tail=("tail",)):
        self.calls = []
        monkeypatch.setattr(gate, "quantize_int8", self.quantize)
        monkeypatch.setattr(gate, "activation_ranges", lambda model, samples: {"ranges": 1})
        monkeypatch.setattr(gate, "head_tail_ops", lambda model: list(tail))
        kinds = {e.name: e.kind for e in ops}
        monkeypatch.setattr(gate, "_ranked_islands", lambda *a: ([(e.name,) for e in ops], kinds))

    def quantize(self, model, samples, keep_float=(), int16=(), ranges=None):
        assert ranges == {"ranges": 1}  # one calibration shared by every candidate
        self.calls.append((tuple(keep_float), tuple(int16)))
        return repr((sorted(keep_float), sorted(int16))).encode()

    @staticmethod
    def evaluate(model: bytes) -> CocoScore:
        keep, int16 = eval(model.decode()) if model.startswith(b"(") else (None, None)
        if keep is None:  # the float model
            return CocoScore(0.40, 0.58, 4, 100)
        score = 0.36 + 0.005 * len(keep) + 0.004 * len(int16)
        return CocoScore(score, score + 0.2, 4, 100)


def _ops(n: int) -> list[OpError]:
    return [OpError(f"op{i}", "CONV_2D" if i % 2 else "RESHAPE_X", 0.1, 0.1 - i / 1000) for i in range(n)]


def test_gate_doubles_islands_then_shrinks_and_tries_int16(monkeypatch):
    fake = _FakeQuantizer(monkeypatch, _ops(20))
    out = io.StringIO()
    # Each float op: +0.5 point; needs 4 - 1.1 => 6 exceptions: tail + 5 islands.
    result = gate_int8(b"float", [np.zeros(1)], fake.evaluate, 1.1, progress=out)
    described = [s.description for s in result.steps]
    assert described[0].startswith("full int8") and described[1].startswith("head tail")
    # 1, 2, 4 fail; 8 passes; shrink: 6 passes, 5 passes; then int16 for the CONV_2D ones of those 5.
    assert [len(s.kept_float) + len(s.int16) for s in result.steps] == [0, 1, 2, 3, 5, 9, 7, 6, 6]
    assert "shrink" in described[6] and "shrink" in described[7]
    assert result.steps[7].drop_points <= 1.1 and result.steps[4].drop_points > 1.1
    assert result.steps[8].int16 == ("op1", "op3") and "tail" in result.steps[8].kept_float
    assert result.passed and result.best.drop_points <= 1.1
    assert result.model == fake.quantize(None, None, result.best.kept_float, result.best.int16, {"ranges": 1})
    assert "PASSED" in out.getvalue() and out.getvalue().count("step ") >= 9


def test_gate_does_not_score_int16_measured_slower_than_float(monkeypatch):
    fake = _FakeQuantizer(monkeypatch, _ops(20))
    out = io.StringIO()
    result = gate_int8(b"float", [np.zeros(1)], fake.evaluate, 1.0, progress=out,
                       latency=lambda model: 10.0 if model.endswith(b"[])") else 50.0)  # int16 list empty
    assert not any(s.int16 for s in result.steps) and "not scored" in out.getvalue()
    scored = [m for m in fake.calls if m[1]]
    assert len(scored) == 1  # built and timed once, never evaluated
    assert result.best.latency_ms == 10.0 and result.passed


def test_gate_without_latency_prefers_float_to_int16_at_equal_count(monkeypatch):
    fake = _FakeQuantizer(monkeypatch, _ops(20))
    result = gate_int8(b"float", [np.zeros(1)], fake.evaluate, 1.25)
    assert result.steps[-1].int16 and result.steps[-1].drop_points <= 1.25  # scored, passing, not chosen
    assert result.best.int16 == () and len(result.best.kept_float) == 6


def test_gate_that_cannot_pass_says_so_and_keeps_the_most_accurate(monkeypatch):
    fake = _FakeQuantizer(monkeypatch, _ops(3))
    out = io.StringIO()
    result = gate_int8(b"float", [np.zeros(1)], fake.evaluate, 0.5, progress=out, max_steps=8)
    # plain, tail, tail+1, tail+2, tail+3 (all islands): none within 0.5 point
    assert len(result.steps) == 5 and not result.passed
    assert result.best is max(result.steps, key=lambda s: s.map50_95) and result.best is result.steps[-1]
    assert "FAILED" in out.getvalue() and "PASSED" not in out.getvalue()


def test_gate_passing_plain_int8_stops_there(monkeypatch):
    fake = _FakeQuantizer(monkeypatch, _ops(3))
    result = gate_int8(b"float", [np.zeros(1)], fake.evaluate, 5.0, reference=CocoScore(0.40, 0.58, 4, 100))
    assert len(result.steps) == 1 and result.passed and fake.calls == [((), ())]


def test_gate_prefers_the_faster_of_two_passing_candidates(monkeypatch):
    fake = _FakeQuantizer(monkeypatch, _ops(20))
    result = gate_int8(b"float", [np.zeros(1)], fake.evaluate, 1.2,
                       latency=lambda model: 5.0 if model.count(b"op") > 6 else 9.0)
    passing = [s for s in result.steps if s.drop_points <= 1.2]
    assert len(passing) >= 2 and result.best.latency_ms == 5.0


def test_islands_join_an_op_with_its_consumers_once():
    ops = [("a", "CONV_2D", ("img",)), ("b", "LOGISTIC", ("a",)), ("c", "MUL", ("a", "b")), ("d", "ADD", ("c",)),
           ("t", "CONCATENATION", ("d",))]
    ranked = [OpError("a", "CONV_2D", 0.3, 0.3), OpError("b", "LOGISTIC", 0.2, 0.1), OpError("d", "ADD", 0.2, 0.05)]
    assert islands(ranked, ops, exclude=("t",)) == [("a", "b", "c"), ("d",)]


def test_output_error_weighs_each_channel_alike(tmp_path):
    r = np.zeros((2, 3, 50), np.float32)
    r[:, 0] = np.linspace(0, 100, 50)  # a large-valued row
    r[:, 1] = np.linspace(0, 1, 50)
    r[:, 2] = np.linspace(0, 1, 50)
    g = r.copy()
    g[:, 1] += 0.1 * r[:, 1].std()
    assert abs(gate._channel_error(r, g) - 0.1 / 3) < 1e-6


# -- real ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def yolo(shared, tmp_path_factory):
    folder = shared / "models" / "yolov8n"
    path = tmp_path_factory.mktemp("gate") / "yolov8n_float32.tflite"
    copy = float_copy((folder / "yolov8n_int8.tflite").read_bytes())
    path.write_bytes(copy.model)
    dataset = load_validation_set(shared / "coco128_val2017" / "instances_val2017_first128_DERIVED_from_yolo.json")
    photos = [shared / "images" / n for n in ("coral_pets.jpg", "tflsupport_cats_and_dogs.jpg",
                                               "coral_kite_and_cold.jpg")]
    check_disjoint(photos, dataset)
    samples = calibration_samples(path, photos)
    evaluate = evaluator(dataset, folder / "labels_coco80.txt", limit=4)
    return copy.model, samples, evaluate, evaluate(copy.model)


def test_op_sensitivity_and_int16_exceptions_on_real_yolo(yolo):
    model, samples, _, _ = yolo
    int8 = quantize_int8(model, samples)
    ranked = op_sensitivity(model, int8, samples, max_samples=1)
    assert len(ranked) > 200 and all(e.added <= e.error + 1e-9 for e in ranked)
    assert ranked == sorted(ranked, key=lambda e: e.added, reverse=True)
    convs = [e.name for e in ranked if e.kind == "CONV_2D"][:2]
    mixed = quantize_int8(model, samples, int16=convs)
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(split_model(mixed)[0], 0)).subgraphs[0]
    int16 = {t.name.decode() for t in graph.tensors if t.type == schema.TensorType.INT16}
    assert set(convs) <= int16 and len(quantized_activations(
        schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(split_model(mixed)[0], 0)))) > 300


@pytest.mark.slow
def test_real_gate_generous_limit_passes_at_plain_int8(yolo):
    model, samples, evaluate, reference = yolo
    result = gate_int8(model, samples, evaluate, 50.0, reference=reference)
    assert result.passed and len(result.steps) == 1 and result.best is result.steps[0]
    assert result.model[4:8] == b"TFL3" and result.best.size_bytes == len(result.model)


@pytest.mark.slow
def test_real_gate_impossible_limit_fails_with_the_best_labelled(yolo):
    model, samples, evaluate, reference = yolo
    out = io.StringIO()
    # int8 five points *better* than float: cannot happen; two candidates keep it short.
    result = gate_int8(model, samples, evaluate, -5.0, reference=reference, progress=out, max_steps=2)
    assert not result.passed and len(result.steps) == 2
    assert result.best is max(result.steps, key=lambda s: s.map50_95)
    assert result.model == quantize_int8(model, samples, keep_float=result.best.kept_float, int16=result.best.int16)
    text = out.getvalue()
    assert "FAILED" in text and "PASSED" not in text and text.count("\nstep ") == 2
