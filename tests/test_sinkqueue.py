"""Each sink behind its own queue (edgekit.sinkqueue, through edgekit.runner.run): a slow sink
does not hold up a fast one until its queue is full, a drop-oldest sink never holds the run up,
every result is acknowledged only after every sink had it, in order, and a sink's error ends the
run with that error."""

from __future__ import annotations

import threading

import pytest

from edgekit.errors import ConfigError
from edgekit.frames import Frame, FrameResult
from edgekit.runner import run
from edgekit.sinkqueue import SinkWorker


class FakeRunner:
    """Results on demand (unit test of the dispatch logic: the real pipeline is in the CLI tests)."""

    def __init__(self, n: int, produced: list | None = None) -> None:
        self.n, self.acked, self.stats = n, [], []
        self.produced = produced if produced is not None else []

    def __iter__(self):
        for k in range(self.n):
            self.produced.append(k)
            yield FrameResult(Frame("cam", k, k * 0.1, 0.0), None, source="cam")

    def ack(self, fr):
        self.acked.append(fr.frame.index)


class Gate:
    """A sink that blocks in write until released; records what it wrote."""

    def __init__(self, policy: str = "keep", size: int | None = None) -> None:
        self.queue_policy = policy
        if size is not None:
            self.queue_size = size
        self.release, self.written, self.closed = threading.Event(), [], False

    def write(self, fr):
        self.release.wait(30)
        self.written.append(fr.frame.index)

    def close(self):
        self.closed = True


class Quick:
    def __init__(self):
        self.written, self.closed = [], False

    def write(self, fr):
        self.written.append(fr.frame.index)

    def close(self):
        self.closed = True


def test_a_slow_sink_holds_the_run_only_once_its_queue_is_full_and_acks_wait_for_it():
    slow, quick, produced = Gate(size=3), Quick(), []
    runner = FakeRunner(20, produced)
    done = threading.Thread(target=run, args=(runner, [slow, quick]))
    done.start()
    # the slow sink blocks in its first write: 1 being written + 3 queued + 1 the loop holds
    for _ in range(1000):
        if len(produced) >= 5 and len(quick.written) >= 4:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)  # had the run not been held, it would be well past 5 by now
    assert len(produced) == 5 and runner.acked == []
    assert quick.written == [0, 1, 2, 3]  # the quick sink is not held back by the slow one's write
    slow.release.set()
    done.join(30)
    assert slow.written == quick.written == list(range(20))
    assert runner.acked == list(range(20)) and slow.closed and quick.closed


def test_a_drop_oldest_sink_never_holds_the_run_and_drops_count_as_handled():
    stalled, quick = Gate("drop_oldest", size=1), Quick()
    runner = FakeRunner(50)
    thread = threading.Thread(target=run, args=(runner, [stalled, quick]))
    thread.start()
    for _ in range(500):
        if len(runner.acked) >= 48 and len(quick.written) == 50:
            break
        threading.Event().wait(0.01)
    assert quick.written == list(range(50))
    assert runner.acked == list(range(50))  # a sink that may drop holds no checkpoint back
    stalled.release.set()
    thread.join(30)
    assert len(stalled.written) <= 2 and stalled.written[-1] == 49  # the one it was on, then the newest
    assert runner.acked == list(range(50))


def test_a_sink_error_ends_the_run_with_it_and_every_sink_closes():
    class Broken(Quick):
        def write(self, fr):
            if fr.frame.index == 3:
                raise ConfigError("--save-annotated /x: cannot write (disk full)")
            super().write(fr)

    broken, quick = Broken(), Quick()
    runner = FakeRunner(1000)
    with pytest.raises(ConfigError, match="disk full"):
        run(runner, [broken, quick])
    assert broken.closed and quick.closed
    assert runner.acked == [0, 1, 2][: len(runner.acked)] and len(runner.produced) < 1000
    assert 3 not in runner.acked


def test_a_sink_sees_results_in_order_through_its_own_stages():
    class Even(Quick):
        stages = (lambda fr: fr if fr.frame.index % 2 == 0 else None,)

    even, quick = Even(), Quick()
    runner = FakeRunner(10)
    run(runner, [even, quick])
    assert even.written == [0, 2, 4, 6, 8] and quick.written == list(range(10))
    assert runner.acked == list(range(10))  # a result a sink's stage holds back is handled


def test_a_bad_queue_policy_is_refused_with_its_name():
    sink = Quick()
    sink.queue_policy = "sometimes"
    with pytest.raises(ConfigError, match="queue_policy must be one of keep, drop_oldest, found 'sometimes'"):
        SinkWorker(sink)


def test_results_a_stage_holds_back_are_acked_in_order_after_the_sinks():
    slow, runner = Gate(size=2), FakeRunner(6)
    hold_odd = lambda fr: fr if fr.frame.index % 2 == 0 else None  # noqa: E731
    thread = threading.Thread(target=run, args=(runner, [slow], [hold_odd]))
    thread.start()
    threading.Event().wait(0.3)
    assert runner.acked == []  # 1, 3, 5 wait behind 0, 2, 4 (still in the slow sink)
    slow.release.set()
    thread.join(30)
    assert runner.acked == list(range(6)) and slow.written == [0, 2, 4]


def test_an_acknowledgement_that_fails_ends_the_run_with_its_error():
    class Broken(FakeRunner):
        def ack(self, fr):
            raise ConfigError("checkpoint: disk full")

    quick = Quick()
    with pytest.raises(ConfigError, match="checkpoint: disk full"):
        run(Broken(50), [quick])
    assert quick.closed
