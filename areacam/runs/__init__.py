"""Dataset runs on disk: the store ``areacam run`` writes (:mod:`~.writer`) and reads back (:mod:`~.reader`)."""

from areacam.runs.reader import Run, RunMaps, open_run

__all__ = ["Run", "RunMaps", "open_run"]
