"""One-off: rewrite the shipped checkpoints' config.json in the version-1 layout of
event_fm.models.checkpoint ({"format_version", "kind", "config", "meta"}); weights untouched.

Old layouts: EventFM / reconstruction configs were the dataclass with metadata under "extra";
forecasters had "kind" ("diffusion" / "simvp") at the top and notes under "notes" (and "extra").
Usage: python scripts/convert_checkpoints_v1.py DIR KIND [DIR KIND ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OLD_FORECAST_KINDS = {"diffusion": "forecast_diffusion", "simvp": "forecast_simvp"}


def convert(directory: Path, kind: str) -> None:
    """Rewrite ``directory/config.json`` in place (skips one already converted)."""
    path = directory / "config.json"
    old = json.loads(path.read_text())
    if "format_version" in old:
        print(f"{path}: already version {old['format_version']}")
        return
    meta = dict(old.pop("extra", None) or {})
    meta.update(old.pop("notes", None) or {})
    old_kind = old.pop("kind", None)
    if old_kind is not None and OLD_FORECAST_KINDS.get(old_kind) != kind:
        raise SystemExit(f"{path}: old kind {old_kind!r} does not match {kind!r}")
    new = {"format_version": 1, "kind": kind, "config": old, "meta": meta}
    path.write_text(json.dumps(new, indent=2) + "\n")
    print(f"{path}: converted to kind {kind!r}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or len(args) % 2:
        raise SystemExit(__doc__)
    for directory, kind in zip(args[::2], args[1::2], strict=True):
        convert(Path(directory), kind)
