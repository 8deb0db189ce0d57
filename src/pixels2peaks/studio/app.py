"""The studio's page (Gradio): upload a photo, check the camera and the visible terrain, edit
the priors, complete, look at the result in 3D and download every export.

Offline by construction: analytics off, the theme's fonts are Gradio's bundled ones, nothing is
fetched at run time. Heavy steps share one queue (``StudioConfig.max_jobs`` at once); each
browser session works in its own folder (:class:`~pixels2peaks.studio.jobs.JobStore`), removed
when the tab closes; a failing step shows its one-line reason and the server keeps running.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import functools  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from pixels2peaks.cache import StageCache  # noqa: E402
from pixels2peaks.errors import InputError  # noqa: E402
from pixels2peaks.studio.jobs import Cancelled, JobStore  # noqa: E402
from pixels2peaks.studio.session import (  # noqa: E402
    FIELDS,
    Estimates,
    Overrides,
    StudioConfig,
    complete_step,
    load_photo,
    metrics_rows,
    read_overrides,
    visible_step,
)

__all__ = ["build_app", "launch", "bundled_examples", "LOCAL_HOSTS"]

log = logging.getLogger("pixels2peaks.studio")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_HEAVY = "heavy"  # the concurrency group of the two steps

_CSS = """
#p2p-status {min-height: 2.5em}
footer {display: none !important}
"""


def bundled_examples() -> list[str]:
    """The example photos shipped in the repository's ``examples/`` (none when installed from a
    wheel)."""
    root = Path(__file__).resolve().parents[3] / "examples"
    return [str(root / n) for n in ("alps_photo.jpg", "alps_painting.jpg") if (root / n).is_file()]


def _page_errors(fn):
    """Run a step; a bad input, a Cancel or a crash becomes one line in the page (gr.Error),
    never a dead server."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Cancelled:
            raise gr.Error("Cancelled: nothing was changed.", print_exception=False) from None
        except Exception as exc:  # a failing job must not take the server down
            log.exception("studio step failed")
            first = (str(exc).strip().splitlines() or [""])[0]
            raise gr.Error(f"The step failed: {type(exc).__name__}: {first}", print_exception=False) from None

    return wrapper


def build_app(config: StudioConfig = StudioConfig(), *, cache: StageCache | None = None,
              store: JobStore | None = None):
    """The studio as a ``gr.Blocks`` (queue configured; call ``.launch`` or :func:`launch`)."""
    import gradio as gr

    cache = StageCache.default() if cache is None else cache
    store = JobStore() if store is None else store
    # uploads land in the store and results are served from the job folders, never copied
    # into a shared cache: a job's files go when its folder goes
    os.environ["GRADIO_TEMP_DIR"] = str(store.root)

    def _progress(progress):
        return lambda fraction, text: progress(fraction, desc=text)

    def field_updates(est: Estimates) -> list[Any]:
        return [gr.update(value=round(est.values[k], 3), info=f"source: {est.sources[k]}") for k in FIELDS]

    def show_visible(state: dict[str, Any], overrides: Overrides, progress) -> list[Any]:
        """Step 1 on the session's photo with ``overrides``: the new state and the page."""
        view = visible_step(state["photo"], state["job"], config, overrides, cache=cache, store=store,
                            progress=_progress(progress))
        state = {**state, "shown": view.estimates, "overrides": overrides}
        return [state, str(view.overlay), str(view.top), view.status] + field_updates(view.estimates)

    @_page_errors
    def on_photo(upload, state, progress=gr.Progress()):
        if upload is None:
            return [state, None, None, "Drop a photo, a painting or a generated image."] + [gr.update()] * len(FIELDS)
        job = store.new()
        try:
            out = show_visible({"job": job, "photo": load_photo(upload, job)}, Overrides(), progress)
        except BaseException:
            store.end(job)
            raise
        if state is not None:
            store.end(state["job"])
        return out

    @_page_errors
    def on_edit(state, *values, progress=gr.Progress()):
        if state is None:
            raise InputError("drop a photo first")
        return show_visible(state, read_overrides(dict(zip(FIELDS, values)), state["shown"]), progress)

    @_page_errors
    def on_reset(state, progress=gr.Progress()):
        if state is None:
            raise InputError("drop a photo first")
        return show_visible(state, Overrides(), progress)

    @_page_errors
    def on_complete(state, progress=gr.Progress()):
        if state is None:
            raise InputError("drop a photo first")
        rv = complete_step(state["photo"], state["job"], config, state["overrides"], cache=cache,
                           store=store, progress=_progress(progress))
        return (str(rv.preview), str(rv.viewer), str(rv.hillshade), str(rv.depressions),
                metrics_rows(rv.report), [str(p) for p in rv.downloads], rv.status)

    def on_cancel(state):
        store.cancel(None if state is None else state["job"])

    def on_close(state):
        if state is not None:
            store.end(state["job"])

    with gr.Blocks(title="Pixels2Peaks Studio", analytics_enabled=False, delete_cache=(3600, 7200)) as demo:
        state = gr.State(None, delete_callback=on_close)
        gr.Markdown("# Pixels2Peaks Studio\nOne photo of a landscape -> a complete metric heightmap. "
                    "Step 1 finds the camera and the visible terrain; edit any estimate and press Enter. "
                    "Step 2 completes the hidden terrain.")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                upload = gr.File(label="Photo, painting or generated image", file_count="single",
                                 type="filepath", elem_id="p2p-upload")
                examples = bundled_examples()
                if examples:
                    gr.Examples([[e] for e in examples], inputs=[upload], label="Bundled examples")
                fields = [gr.Number(label=label, elem_id=f"p2p-{name}") for name, label in FIELDS.items()]
                with gr.Row():
                    apply_btn = gr.Button("Apply edits", elem_id="p2p-apply")
                    reset_btn = gr.Button("Reset to estimates", elem_id="p2p-reset")
                with gr.Row():
                    complete_btn = gr.Button("Complete the terrain", variant="primary", elem_id="p2p-complete")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="p2p-cancel")
                status = gr.Markdown("Drop a photo, a painting or a generated image.", elem_id="p2p-status")
            with gr.Column(scale=2):
                gr.Markdown("## 1 · Camera and visible terrain")
                with gr.Row():
                    overlay = gr.Image(label="Photo: terrain (green), skyline (yellow), ridgelines (magenta)",
                                       type="filepath", interactive=False, elem_id="p2p-overlay")
                    top = gr.Image(label="Visible heightmap from above, camera in red", type="filepath",
                                   interactive=False, elem_id="p2p-visible")
                gr.Markdown("## 2 · Result")
                preview = gr.Image(label="Photo | render from the camera | silhouettes", type="filepath",
                                   interactive=False, elem_id="p2p-preview")
                viewer = gr.Model3D(label="3D (visible cells grey, generated cells tinted, camera red)",
                                    elem_id="p2p-viewer", height=480)
                with gr.Row():
                    hillshade = gr.Image(label="Hillshade", type="filepath", interactive=False, elem_id="p2p-hillshade")
                    depressions = gr.Image(label="Depressions", type="filepath", interactive=False,
                                           elem_id="p2p-depressions")
                metrics = gr.Dataframe(headers=["quantity", "value"], label="Metrics (report.json)",
                                       interactive=False, elem_id="p2p-metrics")
                downloads = gr.File(label="Downloads (the zip holds everything)", file_count="multiple",
                                    interactive=False, elem_id="p2p-downloads")

        visible_out = [state, overlay, top, status, *fields]
        heavy = {"concurrency_id": _HEAVY, "concurrency_limit": config.max_jobs}
        photo_evt = upload.change(on_photo, [upload, state], visible_out, api_name="visible", **heavy)
        edit_evts = [apply_btn.click(on_edit, [state, *fields], visible_out, api_name="edit", **heavy)]
        edit_evts += [f.submit(on_edit, [state, *fields], visible_out, api_visibility="undocumented", **heavy)
                      for f in fields]
        reset_evt = reset_btn.click(on_reset, [state], visible_out, api_name="reset", **heavy)
        complete_evt = complete_btn.click(
            on_complete, [state], [preview, viewer, hillshade, depressions, metrics, downloads, status],
            api_name="complete", **heavy)
        cancel_btn.click(on_cancel, [state], None, queue=False, api_name="cancel",
                         cancels=[photo_evt, reset_evt, complete_evt, *edit_evts])
    demo.queue(default_concurrency_limit=config.max_jobs)
    demo.p2p_store = store  # for launch() and tests
    return demo


def launch(config: StudioConfig = StudioConfig(), *, host: str = "127.0.0.1", port: int = 7860,
           open_browser: bool = True, cache: StageCache | None = None, block: bool = True,
           echo=None):
    """Start the studio at ``http://host:port`` and print the URL (a warning when ``host`` is
    reachable from other machines); with ``block``, serve until Ctrl-C, then remove every job
    folder. Returns the app (``block=False``: still running; ``app.close()`` stops it)."""
    import gradio as gr
    import typer

    echo = typer.echo if echo is None else echo
    if host not in LOCAL_HOSTS:
        echo(f"warning: serving on {host}: anyone who can reach this machine can use the studio and "
             "read its results", err=True)
    demo = build_app(config, cache=cache)
    try:
        _, url, _ = demo.launch(
            server_name=host, server_port=port, inbrowser=open_browser, prevent_thread_lock=True,
            max_file_size=f"{config.max_upload_mb}mb", show_error=True, quiet=True,
            footer_links=[], theme=gr.themes.Default(), css=_CSS, mcp_server=False,
        )
    except OSError as exc:
        demo.p2p_store.close()
        raise InputError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    echo(f"Pixels2Peaks Studio: {url}")
    if not block:
        return demo
    try:
        demo.block_thread()
    finally:
        demo.close()
        demo.p2p_store.close()
    return demo
