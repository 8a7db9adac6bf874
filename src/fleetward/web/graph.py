"""A workflow's graph as SVG: the DOT `workflows show --graph` prints, laid out by Graphviz.

`dot` runs only when installed; without it (or if it fails) the page shows the
text rendering instead. The SVG is served as an image of its own, never inlined
into the page, so nothing in it can run as part of the page. One SVG is kept
per workflow spec (by its hash): a definition lays out the same every time.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from fleetward.rendering.workflow import render_dot

logger = logging.getLogger(__name__)

_TIMEOUT = 20.0  # seconds for one layout
_KEPT = 64


class GraphRenderer:
    def __init__(self, dot: str | None = None) -> None:
        self.dot = dot if dot is not None else shutil.which("dot")
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, bytes | None] = OrderedDict()

    @property
    def available(self) -> bool:
        return bool(self.dot)

    def svg(self, spec_hash: str, spec: Mapping[str, Any]) -> bytes | None:
        """The SVG of the workflow `spec` (None: no Graphviz, or it failed)."""
        if not self.dot:
            return None
        with self._lock:
            if spec_hash in self._kept:
                return self._kept[spec_hash]
        svg = self._layout(render_dot(spec))
        with self._lock:
            self._kept[spec_hash] = svg
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return svg

    def _layout(self, source: str) -> bytes | None:
        assert self.dot is not None
        try:
            done = subprocess.run(
                [self.dot, "-Tsvg"],
                input=source.encode(),
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("Graphviz could not lay out a workflow: %s", exc)
            return None
        if done.returncode != 0 or not done.stdout:
            logger.warning("Graphviz failed: %s", done.stderr.decode(errors="replace")[:500])
            return None
        return done.stdout


__all__ = ["GraphRenderer"]
