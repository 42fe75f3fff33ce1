"""ECD-style text recordings (Event Camera Dataset, Mueggler et al. 2017).

A folder holds events.txt ("t x y p", t in seconds), images.txt ("t path"), imu.txt,
groundtruth.txt ("t px py pz qx qy qz qw") and calib.txt ("fx fy cx cy k1 k2 p1 p2 k3").
Seconds are parsed as digit strings, never floats: a float64 second stamp near 1.5e9 only
resolves ~0.2 us, while ECD stores nanoseconds. events.txt is parsed by a numba kernel that
streams the file in blocks (tens of millions of events per second), skipping and counting
malformed lines instead of failing on one bad line in a multi-gigabyte file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from event_fm.io.events import EventBatch, concatenate, empty_events, make_events
from event_fm.io.files import Rebatcher, check_exists, iter_arrays

EVENTS_TXT = "events.txt"
RESOLUTION_TXT = "resolution.txt"
_BLOCK_BYTES = 16 << 20


# --- events.txt parsing -------------------------------------------------------------------


@numba.njit(cache=True)
def _skip_line(buf, i):
    n = buf.shape[0]
    while i < n and buf[i] != 10:
        i += 1
    return i + 1


@numba.njit(cache=True)
def _field(buf, i):
    """Blanks (space, tab or comma) then an optionally negative integer: (value, next, ok)."""
    n = buf.shape[0]
    s = i
    while i < n and (buf[i] == 32 or buf[i] == 9 or buf[i] == 44):
        i += 1
    if i == s:
        return 0, i, False
    neg = False
    if i < n and buf[i] == 45:
        neg = True
        i += 1
    v = 0
    nd = 0
    while i < n and 48 <= buf[i] <= 57 and nd < 12:
        v = v * 10 + (buf[i] - 48)
        i += 1
        nd += 1
    return (-v if neg else v), i, nd > 0


@numba.njit(cache=True)
def _parse_events(buf, t_out, x_out, y_out, p_out):
    """Parse complete lines of ``buf``; returns (n_events, n_malformed)."""
    n = buf.shape[0]
    i = 0
    k = 0
    bad = 0
    while i < n:
        while i < n and (buf[i] == 32 or buf[i] == 9):
            i += 1
        if i >= n:
            break
        c = buf[i]
        if c == 10 or c == 13:
            i += 1
            continue
        # time: [-]seconds[.fraction], fraction truncated to 9 digits (ns)
        neg = False
        if c == 45:
            neg = True
            i += 1
        sec = 0
        nd = 0
        while i < n and 48 <= buf[i] <= 57:
            sec = sec * 10 + (buf[i] - 48)
            i += 1
            nd += 1
        frac = 0
        nf = 0
        if i < n and buf[i] == 46:
            i += 1
            while i < n and 48 <= buf[i] <= 57:
                if nf < 9:
                    frac = frac * 10 + (buf[i] - 48)
                    nf += 1
                    nd += 1
                i += 1
        if nd == 0 or sec > 9_000_000_000:
            bad += 1
            i = _skip_line(buf, i)
            continue
        for _ in range(9 - nf):
            frac *= 10
        t = sec * 1_000_000_000 + frac
        # x y p, each after at least one blank
        y = p = 0
        x, i, ok = _field(buf, i)
        if ok:
            y, i, ok = _field(buf, i)
        if ok:
            p, i, ok = _field(buf, i)
        if ok:
            while i < n and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                i += 1
            ok = i >= n or buf[i] == 10
        if ok and 0 <= x <= 65535 and 0 <= y <= 65535 and -1 <= p <= 1:
            t_out[k] = -t if neg else t
            x_out[k] = x
            y_out[k] = y
            p_out[k] = 1 if p == 1 else 0
            k += 1
        else:
            bad += 1
        i = _skip_line(buf, i)
    return k, bad


def _parse_block(data: bytes) -> tuple[np.ndarray, int]:
    """Events of a block of whole lines plus how many lines were malformed."""
    n_max = data.count(b"\n") + 1
    t = np.empty(n_max, np.int64)
    x = np.empty(n_max, np.int64)
    y = np.empty(n_max, np.int64)
    p = np.empty(n_max, np.int64)
    k, bad = _parse_events(np.frombuffer(data, np.uint8), t, x, y, p)
    return make_events(x[:k], y[:k], t[:k], p[:k]), int(bad)


def _iter_blocks(path: Path, block_bytes: int) -> Iterator[tuple[np.ndarray, int]]:
    """(events, malformed) per block; blocks end on a newline so no line is split."""
    rest = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(block_bytes)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            rest = data[cut:]
            yield _parse_block(data[:cut])
    if rest.strip():
        yield _parse_block(rest)


def _events_path(path: str | os.PathLike) -> Path:
    p = check_exists(path)
    return check_exists(p / EVENTS_TXT) if p.is_dir() else p


def read_resolution(folder: Path) -> tuple[int, int] | None:
    """(width, height) from resolution.txt if present; ECD itself does not store it."""
    f = folder / RESOLUTION_TXT
    if not f.is_file():
        return None
    parts = f.read_text().split()
    if len(parts) < 2:
        raise ValueError(f"{f}: expected 'W H', got {f.read_text()!r}")
    return int(parts[0]), int(parts[1])


def _scan_geometry(path: Path, block_bytes: int) -> tuple[int, int]:
    """max x/y + 1 over the whole file, so every streamed batch has the same geometry."""
    w = h = 0
    for ev, _ in _iter_blocks(path, block_bytes):
        if len(ev):
            w = max(w, int(ev["x"].max()) + 1)
            h = max(h, int(ev["y"].max()) + 1)
    return w, h


def read_events_txt(
    path: str | os.PathLike,
    chunk_events: int = 1_000_000,
    width: int | None = None,
    height: int | None = None,
    topic: str = "",
    block_bytes: int = _BLOCK_BYTES,
) -> Iterator[EventBatch]:
    """Stream events.txt (or a folder holding it) as EventBatch chunks.

    Geometry: explicit width/height, else resolution.txt, else a fast pre-pass for
    max x/y + 1 (pass the geometry to skip it). Malformed lines are skipped and counted in
    ``dropped['malformed_lines']``.
    """
    ev_path = _events_path(path)
    if width is None or height is None:
        res = read_resolution(ev_path.parent)
        if res is None:
            res = _scan_geometry(ev_path, block_bytes)
        width = res[0] if width is None else width
        height = res[1] if height is None else height
    return _stream(ev_path, chunk_events, width, height, topic, block_bytes)


def _stream(ev_path, chunk_events, width, height, topic, block_bytes) -> Iterator[EventBatch]:
    rb = Rebatcher(chunk_events, width, height, topic)
    good = malformed = 0
    for ev, bad in _iter_blocks(ev_path, block_bytes):
        good, malformed = good + len(ev), malformed + int(bad)
        yield from rb.add(ev, None, {"malformed_lines": bad})
    if good == 0 and malformed:  # random bytes or another format: not an empty recording
        from event_fm.io.errors import UnreadableInputError

        raise UnreadableInputError(f"{ev_path}: not an events text file (no 't x y p' line, "
                                   f"{malformed} malformed lines)")
    yield from rb.flush()


# --- events.txt writing -------------------------------------------------------------------


@numba.njit(cache=True)
def _put_uint(buf, pos, v, min_digits):
    """Decimal digits of v >= 0, zero-padded to min_digits; returns the next position."""
    nd = 1
    w = v // 10
    while w > 0:
        nd += 1
        w //= 10
    nd = max(nd, min_digits)
    for j in range(nd - 1, -1, -1):
        buf[pos + j] = 48 + v % 10
        v //= 10
    return pos + nd


@numba.njit(cache=True)
def _format_events(t, x, y, p):
    """'sec.nnnnnnnnn x y p\\n' per event into one byte buffer."""
    buf = np.empty(t.shape[0] * 48, np.uint8)
    pos = 0
    for k in range(t.shape[0]):
        tk = t[k]
        if tk < 0:
            buf[pos] = 45
            pos += 1
            tk = -tk
        pos = _put_uint(buf, pos, tk // 1_000_000_000, 1)
        buf[pos] = 46
        pos = _put_uint(buf, pos + 1, tk % 1_000_000_000, 9)
        buf[pos] = 32
        pos = _put_uint(buf, pos + 1, np.int64(x[k]), 1)
        buf[pos] = 32
        pos = _put_uint(buf, pos + 1, np.int64(y[k]), 1)
        buf[pos] = 32
        buf[pos + 1] = 49 if p[k] > 0 else 48
        buf[pos + 2] = 10
        pos += 3
    return buf[:pos]


def format_events(events: np.ndarray) -> bytes:
    """ECD lines for an event array (9 decimals, so ns times round-trip exactly)."""
    if len(events) == 0:
        return b""
    return _format_events(
        np.ascontiguousarray(events["t"]),
        np.ascontiguousarray(events["x"]),
        np.ascontiguousarray(events["y"]),
        np.ascontiguousarray(events["p"]),
    ).tobytes()


def write_events_txt(
    path: str | os.PathLike,
    batches: Iterable[EventBatch | np.ndarray],
    width: int,
    height: int,
) -> int:
    """Write events.txt plus resolution.txt; ``path`` is a folder or the events file itself.

    Triggers have no place in the ECD layout and are not written.
    """
    p = Path(path)
    if p.suffix == "":
        p.mkdir(parents=True, exist_ok=True)
        p = p / EVENTS_TXT
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(p, "wb") as f:
        for events, _ in iter_arrays(batches):
            f.write(format_events(events))
            n += len(events)
    (p.parent / RESOLUTION_TXT).write_text(f"{int(width)} {int(height)}\n")
    return n


# --- whole-folder recordings --------------------------------------------------------------


def parse_stamp_ns(text: str) -> int:
    """'1468939993.067416019' -> 1468939993067416019 without going through float."""
    s = text.strip()
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    sec, _, frac = s.partition(".")
    if not (sec or frac) or not (sec + frac).isdigit():
        raise ValueError(f"not a decimal time stamp: {text!r}")
    ns = int(sec or "0") * 1_000_000_000 + int((frac[:9]).ljust(9, "0"))
    return -ns if neg else ns


@dataclass
class Calibration:
    """Pinhole intrinsics plus radial-tangential distortion (k1 k2 p1 p2 k3, zero-padded)."""

    fx: float
    fy: float
    cx: float
    cy: float
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name of the camera matrix
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass
class TextRecording:
    """Everything in an ECD folder, in memory; times are int64 nanoseconds."""

    events: np.ndarray = field(default_factory=empty_events)
    width: int = 0
    height: int = 0
    image_stamps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    image_paths: list[Path] = field(default_factory=list)
    #: groundtruth.txt: (N,) stamps and (N, 7) px py pz qx qy qz qw
    gt_stamps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gt_poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    #: imu.txt: (N,) stamps and (N, 6) ax ay az gx gy gz
    imu_stamps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    imu: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    calibration: Calibration | None = None
    #: Malformed lines skipped, per file name.
    dropped: dict[str, int] = field(default_factory=dict)


def _read_stamped_rows(path: Path, n_values: int) -> tuple[np.ndarray, np.ndarray, int]:
    """'t v1 .. vn' lines -> (stamps ns, (N, n) float64, malformed count)."""
    stamps: list[int] = []
    rows: list[list[float]] = []
    bad = 0
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if len(parts) != n_values + 1:
                raise ValueError(line)
            row = [float(v) for v in parts[1:]]
            stamps.append(parse_stamp_ns(parts[0]))
        except ValueError:
            bad += 1
            continue
        rows.append(row)
    values = np.array(rows, dtype=np.float64).reshape(len(rows), n_values)
    return np.array(stamps, dtype=np.int64), values, bad


def _read_images(path: Path) -> tuple[np.ndarray, list[Path], int]:
    stamps: list[int] = []
    paths: list[Path] = []
    bad = 0
    for line in path.read_text().splitlines():
        parts = line.split(maxsplit=1)
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if len(parts) != 2:
                raise ValueError(line)
            stamps.append(parse_stamp_ns(parts[0]))
        except ValueError:
            bad += 1
            continue
        paths.append(path.parent / parts[1].strip())
    return np.array(stamps, dtype=np.int64), paths, bad


def read_calibration(path: Path) -> Calibration:
    vals = [float(v) for v in path.read_text().split()]
    if len(vals) < 4:
        raise ValueError(f"{path}: expected 'fx fy cx cy [k1 k2 p1 p2 k3]', got {vals}")
    dist = np.zeros(5)
    dist[: min(5, len(vals) - 4)] = vals[4:9]
    return Calibration(*vals[:4], dist=dist)


def read_text_folder(
    path: str | os.PathLike, width: int | None = None, height: int | None = None
) -> TextRecording:
    """Load a whole ECD folder; files other than events.txt are optional."""
    folder = check_exists(path)
    if not folder.is_dir():
        folder = folder.parent
    rec = TextRecording()
    ev_file = folder / EVENTS_TXT
    if ev_file.is_file():
        batches = list(read_events_txt(ev_file, 1 << 62, width, height))
        rec.events = concatenate(batches)
        rec.width, rec.height = (batches[0].width, batches[0].height) if batches else (0, 0)
        bad = sum(b.dropped.get("malformed_lines", 0) for b in batches)
        if bad:
            rec.dropped[EVENTS_TXT] = bad
    if (folder / "images.txt").is_file():
        rec.image_stamps, rec.image_paths, bad = _read_images(folder / "images.txt")
        if bad:
            rec.dropped["images.txt"] = bad
    if (folder / "groundtruth.txt").is_file():
        rec.gt_stamps, rec.gt_poses, bad = _read_stamped_rows(folder / "groundtruth.txt", 7)
        if bad:
            rec.dropped["groundtruth.txt"] = bad
    if (folder / "imu.txt").is_file():
        rec.imu_stamps, rec.imu, bad = _read_stamped_rows(folder / "imu.txt", 6)
        if bad:
            rec.dropped["imu.txt"] = bad
    if (folder / "calib.txt").is_file():
        rec.calibration = read_calibration(folder / "calib.txt")
    return rec
