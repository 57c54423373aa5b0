"""Helpers for editing saved stages the way an attacker (or a careless user) would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def metadata_file(stage_dir: Path) -> Path:
    """The JSON part file of a saved stage's metadata."""
    return next((stage_dir / "metadata").glob("part-*"))


def edit_metadata(stage_dir: Path, change: Callable[[dict[str, Any]], None] | str) -> None:
    """Rewrite a saved stage's metadata (a function editing the JSON, or raw text), deleting the
    .crc files so that Spark reads the edited file."""
    part = metadata_file(stage_dir)
    if isinstance(change, str):
        part.write_text(change)
    else:
        metadata = json.loads(part.read_text())
        change(metadata)
        part.write_text(json.dumps(metadata))
    for crc in stage_dir.rglob("*.crc"):
        crc.unlink()


def stage_dirs(pipeline_dir: Path) -> list[Path]:
    """The stage folders of a saved PipelineModel."""
    return sorted(p for p in (pipeline_dir / "stages").iterdir() if p.is_dir())
