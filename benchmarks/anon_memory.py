"""A process's anonymous resident memory, now and at its peak over a block (the memory benchmarks'
probe: program_set_read.py, msfeatures_memory.py). Standard library only, so importing it moves
no baseline."""

from __future__ import annotations

import threading


def anon_rss_mb() -> float:
    """This process's anonymous resident memory now (file pages it maps are the page cache's, and
    the imports' own peak would hide the data's in ru_maxrss)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


class PeakRSS:
    """The highest `anon_rss_mb()` seen while the block runs (sampled every millisecond)."""

    def __enter__(self):
        self.peak, self._stop = anon_rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, anon_rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anon_rss_mb())
