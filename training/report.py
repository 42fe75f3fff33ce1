"""The one report writer of every training family (``event-fm train FAMILY report``): a
markdown document built from sections, paragraphs, bullet lists, tables and images, written
next to its JSON numbers and plots as ``DOCS/<stem>.md`` / ``<stem>.json`` / ``<stem>_*.png``.

Discussion text belongs in the family's report module as functions of the numbers (so a re-run
never leaves a stale claim); this module only lays them out and formats values the same way.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Report", "change", "fmt"]


def fmt(value: Any, digits: int = 4, missing: str = "-") -> str:
    """A number with ``digits`` decimals; ``missing`` for None / NaN / non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return missing if value is None else str(value)
    if not math.isfinite(value):
        return missing
    return f"{value:.{digits}f}"


def change(new: float, old: float) -> str:
    """'12.3% lower' / 'higher' of ``new`` against ``old`` ('n/a' when undefined)."""
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (new, old)) or not old:
        return "n/a"
    pct = 100.0 * (new - old) / old
    return f"{abs(pct):.1f}% {'lower' if pct < 0 else 'higher'}"


class Report:
    """A markdown document under construction, with the files that go next to it."""

    def __init__(self, docs: str | Path, stem: str, title: str | None = None):
        self.docs, self.stem = Path(docs), stem
        self.docs.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = []
        self.figures: list[Path] = []
        if title:
            self.lines += [f"# {title}", ""]

    # -- text ----------------------------------------------------------------------------------
    def section(self, title: str, level: int = 2) -> Report:
        self.lines += [f"{'#' * level} {title}", ""]
        return self

    def para(self, *text: str) -> Report:
        """One paragraph from the given pieces (joined without separators)."""
        self.lines += ["".join(text), ""]
        return self

    def bullets(self, items: Iterable[str]) -> Report:
        items = [f"- {i}" for i in items]
        if items:
            self.lines += [*items, ""]
        return self

    def raw(self, lines: Iterable[str] | str) -> Report:
        """Prepared markdown (a constant block, a family's own list of lines)."""
        self.lines += [lines] if isinstance(lines, str) else list(lines)
        return self

    def code(self, text: str, lang: str = "") -> Report:
        self.lines += [f"```{lang}", text.rstrip("\n"), "```", ""]
        return self

    def json_block(self, data: Any) -> Report:
        return self.code(json.dumps(data, indent=1, default=str), "json")

    # -- tables ---------------------------------------------------------------------------------
    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]],
              digits: int | Sequence[int] = 4) -> Report:
        """A markdown table; numbers are formatted with ``digits`` (one per column or one for
        all), everything else with str()."""
        self.lines += table_lines(header, rows, digits) + [""]
        return self

    # -- images ---------------------------------------------------------------------------------
    def figure_path(self, suffix: str) -> Path:
        """``DOCS/<stem>_<suffix>.png``: where a plot of this report goes."""
        return self.docs / f"{self.stem}_{suffix}.png"

    def image(self, suffix: str, caption: str, draw: Callable[[Path], None] | None = None,
              source: Path | None = None) -> Report:
        """Embed ``<stem>_<suffix>.png``, drawn by ``draw(path)`` or copied from ``source``;
        a source that does not exist leaves the image out."""
        path = self.figure_path(suffix)
        if source is not None:
            if not Path(source).exists():
                return self
            shutil.copyfile(source, path)
        elif draw is not None:
            draw(path)
        self.figures.append(path)
        self.lines += [f"![{caption}]({path.name})", ""]
        return self

    # -- output ---------------------------------------------------------------------------------
    def markdown(self) -> str:
        text = "\n".join(self.lines).rstrip("\n")
        return text + "\n"

    def write(self, data: Any = None) -> dict[str, Any]:
        """Write ``<stem>.md`` and (when given) ``<stem>.json``; the paths written."""
        paths: dict[str, Any] = {}
        if data is not None:
            paths["json"] = self.docs / f"{self.stem}.json"
            paths["json"].write_text(json.dumps(data, indent=1, default=str) + "\n")
        paths["md"] = self.docs / f"{self.stem}.md"
        paths["md"].write_text(self.markdown())
        paths["figures"] = list(self.figures)
        return paths


def table_lines(header: Sequence[str], rows: Iterable[Sequence[Any]],
                digits: int | Sequence[int] = 4) -> list[str]:
    """The lines of a markdown table (see Report.table)."""
    per = [digits] * len(header) if isinstance(digits, int) else list(digits)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [fmt(v, per[i] if i < len(per) else 4) if isinstance(v, float)
                 else ("-" if v is None else str(v)) for i, v in enumerate(row)]
        out.append("| " + " | ".join(cells) + " |")
    return out
