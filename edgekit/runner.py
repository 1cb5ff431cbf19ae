"""The detection loop as a pipeline: sources → decode + preprocess → invoke → decode outputs → caller.

Three kinds of threads joined by bounded queues, so decoding the next frame overlaps inference
(numpy, Pillow and the TFLite interpreter release the GIL):

* one **reader** thread per source: reads frames, samples them (``fps``), decodes image files
  (JPEG draft decoding at the model's size) and preprocesses them into input tensors;
* one **invoke** thread: the only user of the interpreter; takes tensors from all sources fairly
  (round robin) and runs them;
* the **caller's** thread (iterating :func:`watch`): decodes the outputs (NMS, labels) and gets
  each :class:`FrameResult` to hand to its sinks.

Two ways to consume: *every frame* (files, videos: nothing dropped, each source's results in order)
and *live* (cameras, streams: the newest frame wins; the reader's queue holds one frame, an older
one is dropped and counted, so a slow model never builds a backlog). ``stop()`` ends the run
gracefully: sources stop, frames already read finish and are yielded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any, Sequence

from .frames import FrameResult
from .pipeline import Runner
from .run_options import RunOptions, unique_names
from .stats import SourceStats  # moved; importable from here too

__all__ = ["RunOptions", "FrameResult", "SourceStats", "RunSummary", "Runner", "watch", "run", "unique_names"]


def watch(sources: Any, detector: Any, options: RunOptions | None = None, follow: bool = False,
          stages: Sequence[Any] = (), track: bool = False, zones: Sequence[Any] = (), **kwargs: Any) -> Runner:
    """Run ``detector`` over ``sources`` (one source, a list of them, or SOURCE strings as the CLI
    takes them) and iterate the results::

        for r in edgekit.watch("clip.mp4", detector):
            print(r.result.to_json())

        for r in edgekit.watch("clip.mp4", detector, zones=["drive=0,0.5,1,0.5,1,1,0,1"]):
            for event in r.events:      # new / update / end, Frigate's shape
                print(event.to_dict())

    ``kwargs`` are :class:`RunOptions` fields (``live``, ``fps``, ``queue_size``). ``follow``:
    folders are watched for new images until stopped (:class:`~edgekit.sources.WatchedFolder`).
    ``track``: track objects and build events (:func:`edgekit.stages.event_stages` at the
    detector's threshold; for ByteTrack's second stage give the detector a lower threshold, see
    ``TrackerOptions.low_score``); ``zones`` (:class:`~edgekit.zones.Zone` values or ``--zone``
    strings) imply ``track``. ``stages``: your own, applied after those. With tracking, each
    source's end arrives as a result with ``end_of_source`` set and ``result`` None, carrying the
    last ``end`` events.
    """
    from .sources import open_sources

    if isinstance(sources, str) or not isinstance(sources, (list, tuple)):
        sources = [sources]
    opened = []
    strings = [s for s in sources if isinstance(s, str)]
    if strings:
        opened.extend(open_sources(strings, follow=follow))
    opened.extend(s for s in sources if not isinstance(s, str))
    if kwargs:
        options = replace(options or RunOptions(), **kwargs)
    chain = list(stages)
    if track or zones:
        from .stages import event_stages
        from .zones import parse_zone

        parsed = [parse_zone(z) if isinstance(z, str) else z for z in zones]
        threshold = getattr(getattr(detector, "options", None), "score_threshold", None)
        if threshold is None:
            from .postprocess import SCORE_THRESHOLD as threshold
        chain = event_stages(threshold, zones=parsed) + chain
    return Runner(opened, detector, options, chain)


@dataclass(frozen=True)
class RunSummary:
    """How a run went: frames processed and failed, per-source counters."""

    processed: int
    failed: int
    sources: tuple[SourceStats, ...]


def run(runner: Runner, sinks: Sequence[Any], stages: Sequence[Any] = ()) -> RunSummary:
    """Pass every result of ``runner`` through ``stages`` (each returns the result — the same, or
    an enriched copy — or None to hold it back, see :mod:`edgekit.stages`) and hand what remains to
    every sink; close the sinks at the end (also on an error or interruption). Failed frames are
    counted, and handed to the sinks too (an :class:`~edgekit.sinks.ErrorLog` reports them); so is
    each source's end (``FrameResult.end_of_source``), after its last frame.

    Each sink writes in its own thread from its own bounded queue (:mod:`edgekit.sinkqueue`): a
    slow sink holds the run up only once its queue is full, and a sink whose ``queue_policy`` is
    ``"drop_oldest"`` (the preview) never does. A sink may carry its own ``stages`` attribute:
    stages only that sink applies (e.g. "only on change" for MQTT). A result is acknowledged to
    its source (``Runner.ack``: a watched folder's checkpoint) once every sink has handled it.
    The first error a sink raises ends the run and is raised here."""
    from .sinkqueue import Completion, SinkWorker

    processed = failed = 0
    ack = getattr(runner, "ack", None)  # a Runner; any iterable of results will do
    completion = Completion(len(sinks), lambda fr: ack(fr) if ack is not None and not fr.end_of_source else None)
    workers: list[SinkWorker] = []
    try:
        for sink in sinks:
            workers.append(SinkWorker(sink, completion))
        for key, fr in enumerate(runner):
            fr_in = fr
            if fr.end_of_source:
                pass
            elif fr.error is None:
                processed += 1
            else:
                failed += 1
            for stage in stages:
                fr = stage(fr)
                if fr is None:
                    break
            if not workers:
                if ack is not None and not fr_in.end_of_source:
                    ack(fr_in)
                continue
            completion.start(key, fr_in)
            for worker in workers:  # a result held back (None) passes too: acknowledgements stay in order
                worker.put(key, fr)
    finally:
        errors: list[BaseException] = []
        interrupted: BaseException | None = None
        for worker in workers:  # every sink closes (a video file gets its index) even if one fails
            try:
                if not worker.close(None if interrupted is None else 1.0):
                    print(f"edgekit: {type(worker.sink).__name__} did not close in time; left behind",
                          file=sys.stderr, flush=True)
            except KeyboardInterrupt as exc:  # a second signal while a sink finishes: stop waiting for it
                interrupted = exc
                print(f"edgekit: stopped waiting for {type(worker.sink).__name__}", file=sys.stderr, flush=True)
            except Exception as exc:
                errors.append(exc)
        if interrupted is not None:
            raise interrupted
        if errors:
            raise errors[0]
    return RunSummary(processed, failed, tuple(runner.stats))
