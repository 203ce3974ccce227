"""The recent window of the prediction log: the newest rows of every file, read from the end.

Serving writes ``predictions-<instance>.jsonl`` per process and rotates it by size to ``.1``, ``.2``,
... (``.1`` is the newest rotation). The reader opens every file of the folder first (an open file
survives a rename or delete by the rotating writer), then walks each instance's files backwards in
blocks and merges the instances by timestamp until it has ``max_rows`` rows or reaches rows older
than the age limit. It never reads more of a file than the window needs, so memory does not grow
with the size of the folder.

A half-written last line (no newline yet) is left for the next check; a line that is not a
prediction record is skipped and counted once (by file identity and offset, so the same corrupt line
is not counted again at every check); an empty or missing folder is an empty window.

Time in the log is the writer's clock and can be wrong on a line or two. A row older than the age
limit is left out, but the scan goes on: only a run of ``OLD_RUN_ROWS`` consecutive old rows ends
it, so one stray old timestamp does not cut the window short. A row stamped more than
``FUTURE_TOLERANCE_SECONDS`` ahead of the exporter's clock is left out too (it would otherwise stay
"newest" and never age out); both are counted in ``skipped_rows``. ``log_end`` lines (serving's
writer reporting rows lost with a killed serving process, see driftwatch/prediction_record.py) are
counted once each in ``new_lost_rows``.

When serving and its writer die together (kill -9 of the process group, a container) there is no
``log_end`` line. The reader then compares each instance's counter file
(``predictions-<instance>.acked``, serving's last acknowledged ``seq``) with the ``seq`` of the last
row written: a gap that does not move for ``abandoned_seconds`` (a live writer closes it within one
flush interval, 50 ms by default) is counted once, as the ``log_end`` line would have said. A
serving process restarted under the same instance name starts a new counter; a loss it hides before
the gap was seen is not counted. Local folders only (S3 segments carry no counter file).
The record format is read with ``driftwatch.prediction_record.parse_record``.
"""

from __future__ import annotations

import heapq
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from drift_exporter.stats import FloatArray, normalize_category
from driftwatch.prediction_record import (
    EVENT_LOG_END,
    EVENT_PREDICTION,
    LOG_NAME,
    Record,
    ack_path,
    parse_record,
    read_acknowledged,
)

BLOCK_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
REMEMBERED_CORRUPT_LINES = 100_000
OLD_RUN_ROWS = 64  # consecutive rows older than the age limit that end the scan of a file
FUTURE_TOLERANCE_SECONDS = 300.0  # clock skew allowed between serving's host and the exporter's


@dataclass(frozen=True)
class LogFile:
    path: Path
    instance: str
    rotation: int  # 0 for the live file, 1 for the newest rotation, ...


@dataclass
class Window:
    """The window as columns: numeric features as float arrays (NaN = missing or not a number),
    categorical ones as normalised strings (None = missing)."""

    rows: int
    numeric: dict[str, FloatArray]
    categorical: dict[str, list[str | None]]
    prediction_classes: list[str | None]  # predicted class name per row
    prediction_versions: list[str | None]  # model version that made each prediction
    oldest: float | None = None  # epoch seconds
    newest: float | None = None
    files: int = 0
    corrupt_lines: int = 0  # corrupt lines met while reading this window
    new_corrupt_lines: int = 0  # of those, the ones no earlier read had counted
    skipped_rows: int = 0  # valid records of another model or event type, or stamped too old/too far ahead
    new_lost_rows: int = 0  # rows serving acknowledged but never logged (log_end lines not counted before)
    instances: dict[str, int] = field(default_factory=dict)  # rows of the window per serving process
    prediction_values: list[float] = field(default_factory=list)  # a regressor's predicted value per row (NaN: none)

    def classes_of(self, version: str) -> list[str | None]:
        return [c for c, v in zip(self.prediction_classes, self.prediction_versions, strict=True) if v == version]

    def values_of(self, version: str) -> FloatArray:
        """A regressor's predicted values of ``version`` (NaN where a row has none)."""
        return np.fromiter((x for x, v in zip(self.prediction_values, self.prediction_versions, strict=True)
                            if v == version), dtype=np.float64)


@dataclass(frozen=True)
class _Row:
    timestamp: float
    key: str | None
    values: tuple[Any, ...]
    class_name: str | None
    version: str | None
    value: float = float("nan")


@dataclass
class _Tally:
    corrupt: int = 0
    new_corrupt: int = 0
    skipped: int = 0
    new_lost: int = 0
    seen: OrderedDict[tuple[int, int, int], None] = field(default_factory=OrderedDict)

    def first_time(self, identity: tuple[int, int, int]) -> bool:
        """True the first time a line (file identity, offset) is met; remembered across reads."""
        if identity in self.seen:
            return False
        self.seen[identity] = None
        return True


def list_log_files(folder: Path) -> list[LogFile]:
    """Prediction log files in ``folder`` (none if it does not exist), newest first per instance."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        match = LOG_NAME.match(name)
        if match:
            found.append(LogFile(folder / name, match["instance"], int(match["rotation"] or 0)))
    return sorted(found, key=lambda f: (f.instance, f.rotation))


def lines_backward(handle: IO[bytes], size: int, *, block: int = BLOCK_BYTES,
                   max_line: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """Complete lines of the first ``size`` bytes, last first, as (offset, line without newline).

    The bytes after the last newline are a line still being written and are not returned. A line
    longer than ``max_line`` comes back as ``None`` (corrupt) without being held in memory.
    """
    pos = size
    pending = b""
    overlong = False
    trailing = True  # the segment after the last newline is never a complete line
    while pos > 0:
        start = max(0, pos - block)
        handle.seek(start)
        data = handle.read(pos - start) + pending
        pos = start
        cut = len(data)
        while True:
            newline = data.rfind(b"\n", 0, cut)
            if newline < 0:
                break
            if trailing:
                trailing = False
            else:
                yield start + newline + 1, (None if overlong else data[newline + 1:cut])
            overlong = False
            cut = newline
        pending = data[:cut]
        if len(pending) > max_line:
            pending = b""
            overlong = True
    if not trailing and (pending or overlong):
        yield 0, None if overlong else pending


class LogReader:
    """Reads windows from one log folder; remembers corrupt lines it has already counted."""

    def __init__(self, folder: Path, *, block_bytes: int = BLOCK_BYTES, max_line_bytes: int = MAX_LINE_BYTES,
                 abandoned_seconds: float = 30.0) -> None:
        self.folder = folder
        self.block_bytes = block_bytes
        self.max_line_bytes = max_line_bytes
        self.abandoned_seconds = abandoned_seconds
        self._seen_corrupt: OrderedDict[tuple[int, int, int], None] = OrderedDict()
        # per instance: (acknowledged seq, last written seq), when that gap was first seen, counted yet
        self._gaps: dict[str, tuple[tuple[int, int], float, bool]] = {}

    def read(self, *, features: Sequence[str], numeric: set[str] | frozenset[str], max_rows: int,
             max_age_seconds: float | None, now: float, model_name: str | None = None,
             files: list[LogFile] | None = None) -> Window:
        """The newest ``max_rows`` prediction rows no older than ``max_age_seconds``, from the log files
        of the folder, or from ``files`` (segments fetched from S3: ``drift_exporter.segments``)."""
        cutoff = now - max_age_seconds if max_age_seconds else None
        tally = _Tally(seen=self._seen_corrupt)
        names = tuple(features)
        rows: list[_Row] = []
        keys: set[str] = set()
        local = files is None  # the folder itself, with the writers' counter files (not S3 segments)
        files = list_log_files(self.folder) if files is None else sorted(files, key=lambda f: (f.instance, f.rotation))
        with ExitStack() as stack:
            chains: dict[str, list[tuple[IO[bytes], os.stat_result]]] = {}
            inodes: set[tuple[int, int]] = set()
            for log in files:
                try:
                    handle = stack.enter_context(log.path.open("rb"))
                except (FileNotFoundError, IsADirectoryError, PermissionError):
                    continue  # rotated away or deleted between listing and opening
                info = os.fstat(handle.fileno())
                if (info.st_dev, info.st_ino) in inodes:
                    continue  # renamed by rotation while we listed: already open under its other name
                inodes.add((info.st_dev, info.st_ino))
                chains.setdefault(log.instance, []).append((handle, info))
            streams = [_tagged(self._rows_of(chain, names, model_name, cutoff, now + FUTURE_TOLERANCE_SECONDS, tally),
                               instance)
                       for instance, chain in chains.items()]
            instances: dict[str, int] = {}
            for row, instance in heapq.merge(*streams, key=lambda pair: -pair[0].timestamp):
                if len(rows) >= max_rows:
                    break
                if row.key is not None:
                    if row.key in keys:
                        continue  # the same record seen twice across a rotation
                    keys.add(row.key)
                rows.append(row)
                instances[instance] = instances.get(instance, 0) + 1
            open_files = sum(len(chain) for chain in chains.values())
        while len(self._seen_corrupt) > REMEMBERED_CORRUPT_LINES:
            self._seen_corrupt.popitem(last=False)
        if local:
            tally.new_lost += self._abandoned_losses(files, cutoff, now)
        window = _columns(rows, names, numeric, open_files, tally)
        window.instances = instances
        return window

    def _abandoned_losses(self, files: list[LogFile], cutoff: float | None, now: float) -> int:
        """Rows lost by serving processes that died with their writer: for each instance, the gap
        between its counter file and the last row written, once it has stood still for
        ``abandoned_seconds`` (counted once; a clean end, a ``log_end`` line, has no gap)."""
        chains: dict[str, list[Path]] = {}
        for log in files:
            chains.setdefault(log.instance, []).append(log.path)
        lost = 0
        for instance, paths in chains.items():
            acknowledged = read_acknowledged(ack_path(self.folder, instance))
            last = self._last_record(paths)
            if acknowledged is None or last is None or last.event != EVENT_PREDICTION or last.seq is None:
                self._gaps.pop(instance, None)
                continue
            gap = (acknowledged, last.seq)
            if acknowledged <= last.seq or (cutoff is not None and last.timestamp < cutoff):
                self._gaps.pop(instance, None)  # no gap, or too old to count (an exporter restart recounts nothing)
                continue
            seen = self._gaps.get(instance)
            if seen is None or seen[0] != gap:
                self._gaps[instance] = (gap, now, False)
            elif not seen[2] and now - seen[1] >= self.abandoned_seconds:
                self._gaps[instance] = (gap, seen[1], True)
                lost += acknowledged - last.seq
        return lost

    def _last_record(self, paths: list[Path]) -> Record | None:
        """The newest readable record of one instance's files (live file first), or None."""
        for path in paths:
            try:
                with path.open("rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    for _, line in lines_backward(handle, size, block=self.block_bytes, max_line=self.max_line_bytes):
                        record = parse_record(line) if line is not None and line.strip() else None
                        if record is not None:
                            return record
            except OSError:
                continue
        return None

    def _rows_of(self, chain: list[tuple[IO[bytes], os.stat_result]], names: tuple[str, ...],
                 model_name: str | None, cutoff: float | None, horizon: float, tally: _Tally) -> Iterator[_Row]:
        old_run = 0
        for handle, info in chain:
            for offset, line in lines_backward(handle, info.st_size, block=self.block_bytes,
                                               max_line=self.max_line_bytes):
                if line is not None and not line.strip():
                    continue
                row = _parse(line, names, model_name) if line is not None else None
                if row is None:
                    tally.corrupt += 1
                    if tally.first_time((info.st_dev, info.st_ino, offset)):
                        tally.new_corrupt += 1
                    continue
                if isinstance(row, _Lost):  # a log_end line: rows lost with a killed serving process
                    recent = cutoff is None or row.timestamp >= cutoff  # an exporter restart recounts no old loss
                    if row.rows and recent and tally.first_time((info.st_dev, info.st_ino, offset)):
                        tally.new_lost += row.rows
                    continue
                if row is _SKIP:
                    tally.skipped += 1
                    continue
                if row.timestamp > horizon:
                    tally.skipped += 1  # stamped in the future: would never age out
                    continue
                if cutoff is not None and row.timestamp < cutoff:
                    tally.skipped += 1
                    old_run += 1
                    if old_run >= OLD_RUN_ROWS:
                        return  # a run of old rows: everything further back is older still
                    continue
                old_run = 0
                yield row


_SKIP = _Row(0.0, None, (), None, None)


def _tagged(rows: Iterator[_Row], instance: str) -> Iterator[tuple[_Row, str]]:
    for row in rows:
        yield row, instance


@dataclass(frozen=True)
class _Lost:
    timestamp: float
    rows: int


def _parse(line: bytes, names: tuple[str, ...], model_name: str | None) -> _Row | _Lost | None:
    """A row, ``_SKIP`` for a valid record that is not a prediction of this model, the rows it says
    were lost for a ``log_end`` line, None if corrupt."""
    record = parse_record(line)
    if record is None:
        return None
    if record.event == EVENT_LOG_END:
        return _Lost(record.timestamp, record.lost)
    other_model = model_name and record.model_name not in (None, model_name)
    if record.event != EVENT_PREDICTION or other_model:
        return _SKIP
    features = record.features
    return _Row(record.timestamp, record.prediction_id, tuple(features.get(n) for n in names),
                normalize_category(record.class_name), normalize_category(record.model_version), record.value)


def _number(value: object) -> float:
    if isinstance(value, bool) or value is None:
        return float("nan")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return float("nan")
    return float("nan")


def _columns(rows: list[_Row], names: tuple[str, ...], numeric: set[str] | frozenset[str], files: int,
             tally: _Tally) -> Window:
    rows.reverse()  # oldest first, as the log was written
    window = Window(rows=len(rows), numeric={}, categorical={},
                    prediction_classes=[r.class_name for r in rows],
                    prediction_versions=[r.version for r in rows],
                    prediction_values=[r.value for r in rows],
                    oldest=rows[0].timestamp if rows else None, newest=rows[-1].timestamp if rows else None,
                    files=files, corrupt_lines=tally.corrupt, new_corrupt_lines=tally.new_corrupt,
                    skipped_rows=tally.skipped, new_lost_rows=tally.new_lost)
    for i, name in enumerate(names):
        if name in numeric:
            window.numeric[name] = np.fromiter((_number(r.values[i]) for r in rows), dtype=np.float64,
                                               count=len(rows))
        else:
            window.categorical[name] = [normalize_category(r.values[i]) for r in rows]
    return window
