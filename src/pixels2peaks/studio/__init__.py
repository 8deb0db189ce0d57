"""Pixels2Peaks Studio (``p2p ui``): a local web app over the pipeline (issue #19).

* :mod:`.jobs`: one private folder per browser session (:class:`JobStore`), safe download
  names (:func:`safe_file`), cancellation.
* :mod:`.session`: the two steps as plain functions: :func:`visible_step` (camera and visible
  terrain, ``p2p visible``) and :func:`complete_step` (``p2p run`` plus every export), the
  user's edits (:class:`Overrides`) and the server's settings (:class:`StudioConfig`).
* :mod:`.views`: what the page shows: the 3D viewer's GLB, the metrics table.
* :mod:`.app`: the Gradio page (:func:`build_app`) and :func:`launch`.

Only :mod:`.app` imports Gradio (the ``ui`` extra); everything else is testable without it.
"""
