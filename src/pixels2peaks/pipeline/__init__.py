"""The end-to-end pipeline (``p2p run``): photo -> complete heightmap, every stage cached.

* :mod:`.run`: :class:`RunConfig`, :func:`run_photo` -> :class:`RunResult`.
* :mod:`.outputs`: :func:`write_run` / :func:`write_visible` (staged, atomic output folders).

Stage caching: :mod:`pixels2peaks.cache`; previews: :mod:`pixels2peaks.evaluation.previews`.
"""

__all__ = ["RunConfig", "RunResult", "run_photo", "write_run", "write_visible", "RUN_FILES"]


def __getattr__(name: str):
    if name in ("RunConfig", "RunResult", "run_photo"):
        from pixels2peaks.pipeline import run

        return getattr(run, name)
    if name in ("write_run", "write_visible", "RUN_FILES"):
        from pixels2peaks.pipeline import outputs

        return getattr(outputs, name)
    raise AttributeError(name)
