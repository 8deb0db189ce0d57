import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from pixels2peaks.errors import InputError
from pixels2peaks.perception.protocols import PriorsBackend
from pixels2peaks.perception.vlm import (
    PROMPTS,
    ParsedAnswer,
    VLMClient,
    VLMPriors,
    aggregate,
    encode_image,
    parse_answer,
)

IMG = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)


class FakeVLM:
    """A local OpenAI-compatible server replaying recorded answers (thread, random port)."""

    def __init__(self, answers, delay_s=0.0, status=None):
        self.answers = list(answers)
        self.requests = []
        self.delay_s = delay_s
        self.status = list(status or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), json.loads(body)))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                code = outer.status.pop(0) if outer.status else 200
                if code != 200:
                    self.send_response(code)
                    self.end_headers()
                    return
                text = outer.answers.pop(0) if outer.answers else "no more answers"
                if isinstance(text, bytes):
                    payload = text
                else:
                    payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


GOOD = """Let's think step by step. The image shows glaciated peaks above a forested valley.
Tree line is around 2000 m, so the valley floor is lower.
MEAN_SLOPE_DEG: 32
MIN_ELEVATION_M: 1400
MAX_ELEVATION_M: 3600"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD, ParsedAnswer(32.0, 1400.0, 3600.0)),
        ("**Mean slope:** about 25-35°\n**Elevation range:** 1500-3000 m", ParsedAnswer(30.0, 1500.0, 3000.0)),
        ("Average slope is 30 degrees. \nLowest elevation: 4,000 ft\nHighest elevation: 10,000 ft",
         ParsedAnswer(30.0, 1219.2, 3048.0)),
        ("Mean slope = 40% grade\nElevation range: 1.2 km to 2.5 km", ParsedAnswer(21.801, 1200.0, 2500.0)),
        ("Slope of the highest peak: 38°\nelevations from 800 to 2,100 metres", ParsedAnswer(38.0, 800.0, 2100.0)),
        ("I'm sorry, I cannot determine elevations from a single image.", ParsedAnswer()),
        ("MEAN_SLOPE_DEG: N/A\nMIN_ELEVATION_M: unknown\nMAX_ELEVATION_M: unknown", ParsedAnswer()),
        ("MEAN_SLOPE_DEG: 95\nMIN_ELEVATION_M: 1000\nMAX_ELEVATION_M: 25000", ParsedAnswer(None, 1000.0, None)),
        ("MEAN_SLOPE_DEG: 20\nMIN_ELEVATION_M: 3000\nMAX_ELEVATION_M: 2000", ParsedAnswer(20.0, None, None)),
        # reasoning mentions numbers, the final answer wins
        ("Maybe the slope is 10 degrees at first glance.\nMEAN_SLOPE_DEG: 28\nMIN_ELEVATION_M: 500\n"
         "MAX_ELEVATION_M: 1500", ParsedAnswer(28.0, 500.0, 1500.0)),
        ("", ParsedAnswer()),
    ],
)
def test_parse_answer(text, expected):
    got = parse_answer(text)
    for f in ("mean_slope_deg", "z_min_m", "z_max_m"):
        a, b = getattr(got, f), getattr(expected, f)
        assert (a is None) == (b is None), (f, a, b)
        if a is not None:
            assert a == pytest.approx(b, abs=1e-3)


def test_aggregate_median_and_inconsistent_ranges():
    agg, n = aggregate([ParsedAnswer(20, 1000, 2000), ParsedAnswer(30, 1200, 2600), ParsedAnswer(None, None, None),
                        ParsedAnswer(40, 800, 3000)])
    assert agg == ParsedAnswer(30.0, 1000.0, 2600.0) and n["mean_slope_deg"] == 3
    agg, n = aggregate([ParsedAnswer(None, 3000, None), ParsedAnswer(None, None, 1000)])
    assert agg.z_min_m is None and agg.z_max_m is None and n["z_min_m"] == 0


def test_encode_image_is_png_data_url():
    url = encode_image(np.zeros((3000, 20, 3), np.uint8), max_side=512)
    assert url.startswith("data:image/png;base64,")
    import base64
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert max(im.size) == 512


def test_decode_image_round_trip_and_errors():
    from pixels2peaks.perception.vlm import decode_image

    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(decode_image(encode_image(img))), img)  # PNG is lossless
    for bad in ("http://x/y.png", "data:image/png;base64,!!!", "data:text/plain;base64,aGk=",
                "data:image/png;base64,aGVsbG8="):
        with pytest.raises(InputError):
            decode_image(bad)


def test_vlm_priors_self_consistency_against_local_server():
    answers = [
        GOOD,
        "Mean slope: 28°\nElevation range: 1,200-3,400 m",
        "I cannot tell.",  # refusal
        "MEAN_SLOPE_DEG: 150\nMIN_ELEVATION_M: 1600\nMAX_ELEVATION_M: 3800",  # slope out of range
    ]
    with FakeVLM(answers) as srv:
        backend = VLMPriors(VLMClient(srv.url, model="gemma-test", api_key="k", timeout_s=5, retries=0))
        assert isinstance(backend, PriorsBackend)
        pri = backend.estimate(IMG)
        assert len(srv.requests) == len(PROMPTS)
        path, headers, body = srv.requests[0]
        assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer k"
        assert body["model"] == "gemma-test"
        parts = body["messages"][0]["content"]
        assert "step by step" in parts[0]["text"]
        assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert pri.mean_slope_deg == pytest.approx(30.0)  # median of 32, 28
    assert pri.elevation_range_m == (1400.0, 3600.0)  # medians of (1400, 1200, 1600), (3600, 3400, 3800)
    assert "median of 2/4" in pri.sources["mean_slope_deg"]
    assert "gemma-test" in pri.sources["elevation_range_m"]


def test_vlm_priors_fall_back_when_every_answer_refuses():
    with FakeVLM(["Sorry, I can't help with that."] * 4) as srv:
        pri = VLMPriors(VLMClient(srv.url, retries=0, timeout_s=5)).estimate(IMG)
    assert pri.mean_slope_deg == 25.0
    assert pri.sources["mean_slope_deg"].startswith("no usable VLM answer; builtin")
    with FakeVLM(["N/A"] * 4) as srv:
        with pytest.raises(InputError, match="no usable estimate"):
            VLMPriors(VLMClient(srv.url, retries=0, timeout_s=5), fallback=None).estimate(IMG)


def test_client_retries_server_errors_then_succeeds():
    with FakeVLM([GOOD], status=[503, 500]) as srv:
        text = VLMClient(srv.url, retries=2, backoff_s=0.01, timeout_s=5).chat("p", "data:,")
    assert text == GOOD and len(srv.requests) == 3


def test_client_errors_are_one_line_input_errors():
    with FakeVLM([b"<html>not json</html>"]) as srv:
        with pytest.raises(InputError, match="unexpected response"):
            VLMClient(srv.url, retries=0, timeout_s=5).chat("p", "data:,")
    with FakeVLM([], status=[401]) as srv:
        with pytest.raises(InputError, match="HTTP 401"):
            VLMClient(srv.url, retries=3, backoff_s=0.01, timeout_s=5).chat("p", "data:,")
        assert len(srv.requests) == 1  # client errors are not retried
    with pytest.raises(InputError, match="http"):
        VLMClient("ftp://x").chat("p", "data:,")


def test_client_server_down():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(InputError, match=r"cannot reach VLM .* \(after 2 attempts\)") as exc:
        VLMClient(f"http://127.0.0.1:{port}/v1", retries=1, backoff_s=0.01, timeout_s=2).chat("p", "data:,")
    assert "\n" not in str(exc.value)


def test_client_timeout_on_slow_server():
    with FakeVLM([GOOD], delay_s=1.5) as srv:
        t0 = time.monotonic()
        with pytest.raises(InputError, match=r"did not answer within 0.3 s"):
            VLMClient(srv.url, retries=0, timeout_s=0.3).chat("p", "data:,")
        assert time.monotonic() - t0 < 1.4


def test_vlm_backend_selected_when_url_given():
    from pixels2peaks.perception.protocols import select

    with FakeVLM([GOOD] * 4) as srv:
        sel = select("priors", options={"vlm_url": srv.url, "vlm_model": "m", "vlm_timeout_s": 5})
        assert sel.name == "vlm" and sel.reason == "using vlm"
        pri = sel.backend.estimate(IMG)
    assert pri.mean_slope_deg == 32.0 and pri.elevation_range_m == (1400.0, 3600.0)
    assert pri.sources["mean_slope_deg"] == "vlm m (median of 4/4 answers)"
