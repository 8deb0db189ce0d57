"""Landscape priors from a vision-language model (paper §4.2): mean slope and elevation range.

* :class:`VLMClient`: OpenAI-compatible ``/chat/completions`` client using only ``urllib``; the
  image is sent as a base64 PNG data URL; timeout, retries with back-off on connection errors,
  HTTP 429 and 5xx; failures raise :class:`~pixels2peaks.errors.InputError` with one clear line.
* :data:`PROMPTS`: chain-of-thought prompt variants ("think step by step", Kojima et al. 2022).
  The paper's appendix prompt is not in our copy of the paper; these prompts follow its
  description (structured request for mean slope and min/max elevation of all visible
  mountains) and end with a fixed answer format that :func:`parse_answer` reads first.
* :func:`parse_answer`: robust parsing of free-form answers: numbers with units (m, km, ft,
  degrees, % grade), ranges ``"1500-3000 m"`` / ``"1,500 to 3,000 ft"``, feet -> metres;
  refusals and implausible values give ``None``.
* :class:`VLMPriors`: self-consistency (Wang et al. 2022): every prompt variant (x samples) is
  asked, each field is the **median** of the valid answers; a field with no valid answer falls
  back to the builtin prior, and :attr:`Priors.sources` says which.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import socket
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pixels2peaks.errors import InputError
from pixels2peaks.perception.protocols import Priors

__all__ = [
    "PROMPTS",
    "VLMClient",
    "ChatClient",
    "ParsedAnswer",
    "parse_answer",
    "aggregate",
    "VLMPriors",
    "encode_image",
    "decode_image",
]

_FORMAT = (
    "Finish with exactly these three lines (numbers only, metres and degrees):\n"
    "MEAN_SLOPE_DEG: <number>\n"
    "MIN_ELEVATION_M: <number>\n"
    "MAX_ELEVATION_M: <number>"
)

#: prompt variants for self-consistency (all chain-of-thought)
PROMPTS: tuple[str, ...] = (
    "You are an expert geomorphologist. Look at this landscape image and estimate, for all "
    "visible mountains, (1) the mean terrain slope in degrees and (2) the minimum and maximum "
    "elevation above sea level in metres. Let's think step by step: identify the landforms, the "
    "likely region and rock type, the vegetation and snow lines, then reason about slope and "
    "elevation.\n" + _FORMAT,
    "Estimate physical properties of the terrain in this photograph. Think step by step about "
    "clues such as tree line, snow, glaciers, rock faces and haze. Then give the average slope "
    "of the visible mountain surfaces (degrees from horizontal) and the lowest and highest "
    "elevations (metres above sea level) of the visible terrain.\n" + _FORMAT,
    "Describe the mountains in this image briefly, then, reasoning step by step, estimate the "
    "mean slope angle of the visible terrain and the elevation range (lowest valley floor to "
    "highest summit) in metres.\n" + _FORMAT,
    "As a cartographer preparing a digital elevation model from this picture, estimate the "
    "visible terrain's mean slope (degrees) and its minimum and maximum elevation (metres). "
    "Let's think step by step before answering.\n" + _FORMAT,
)


# ----------------------------------------------------------------------------------------------
# client
# ----------------------------------------------------------------------------------------------


def encode_image(image: np.ndarray, max_side: int = 1024) -> str:
    """``(H, W, 3)`` uint8 RGB -> ``data:image/png;base64,...`` (downscaled to ``max_side``)."""
    from PIL import Image

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(a, "RGB")
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def decode_image(image_url: str) -> Any:
    """``data:image/...;base64,...`` (from :func:`encode_image`) -> RGB ``PIL.Image``."""
    from PIL import Image

    head, sep, data = str(image_url).partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise InputError("expected a base64 data URL of an image")
    try:
        return Image.open(io.BytesIO(base64.b64decode(data, validate=True))).convert("RGB")
    except (ValueError, OSError) as exc:
        raise InputError(f"bad image data URL: {exc}") from None


class ChatClient(Protocol):
    """What :class:`VLMPriors` asks: one prompt with one image (a data URL) -> the answer text."""

    model: str

    def chat(self, prompt: str, image_url: str, *, temperature: float = 0.0) -> str: ...


@dataclass
class VLMClient:
    """OpenAI-compatible chat client.

    url: base URL (``http://host:8000/v1``) or the full ``.../chat/completions`` URL.
    retries: extra attempts after a connection error, HTTP 429/5xx or a timeout.
    """

    url: str
    model: str = "gemma-3"
    api_key: str | None = None
    timeout_s: float = 120.0
    retries: int = 2
    backoff_s: float = 1.0
    max_tokens: int = 1024

    @property
    def endpoint(self) -> str:
        u = self.url.rstrip("/")
        if not re.match(r"^https?://", u):
            raise InputError(f"VLM URL must start with http:// or https://, got {self.url!r}")
        try:
            parts = urllib.parse.urlsplit(u)
            parts.port  # noqa: B018 - raises ValueError for a port outside 0..65535
        except ValueError as exc:
            raise InputError(f"bad VLM URL {self.url!r}: {exc}") from None
        if not parts.hostname:
            raise InputError(f"VLM URL {self.url!r} names no host")
        return u if u.endswith("/chat/completions") else u + "/chat/completions"

    def chat(self, prompt: str, image_url: str, *, temperature: float = 0.0) -> str:
        """Send one prompt with one image; return the assistant's text."""
        body = json.dumps(
            {
                "model": self.model,
                "temperature": temperature,
                "max_tokens": self.max_tokens,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": prompt},
                            {"type": "image_url", "image_url": {"url": image_url}},
                        ],
                    }
                ],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        endpoint = self.endpoint
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as exc:
                last = f"VLM at {endpoint} answered HTTP {exc.code}"
                if exc.code == 429 or exc.code >= 500:
                    continue
                raise InputError(last) from None
            except (TimeoutError, socket.timeout):
                last = f"VLM at {endpoint} did not answer within {self.timeout_s:g} s"
                continue
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    last = f"VLM at {endpoint} did not answer within {self.timeout_s:g} s"
                else:
                    last = f"cannot reach VLM at {endpoint}: {exc.reason}"
                continue
            except (ConnectionError, OSError) as exc:
                last = f"cannot reach VLM at {endpoint}: {exc}"
                continue
            return _content(raw, endpoint)
        tries = self.retries + 1
        raise InputError(f"{last} (after {tries} attempt{'s' if tries > 1 else ''})")


def _content(raw: bytes, endpoint: str) -> str:
    try:
        d = json.loads(raw)
        content = d["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise InputError(f"VLM at {endpoint} returned an unexpected response (not a chat completion)") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise InputError(f"VLM at {endpoint} returned non-text content")
    return content


# ----------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedAnswer:
    mean_slope_deg: float | None = None
    z_min_m: float | None = None
    z_max_m: float | None = None

    @property
    def empty(self) -> bool:
        return self.mean_slope_deg is None and self.z_min_m is None and self.z_max_m is None


_NUM = r"[-+−]?\d+(?:\.\d+)?"
_VALUE = re.compile(
    rf"(?P<a>{_NUM})\s*(?P<ua>km|kilomet(?:re|er)s?|met(?:re|er)s?|m\b|ft\b|feet|foot|'|°|deg(?:rees?)?\b|%)?"
    rf"(?:\s*(?:-|–|—|to|and)\s*(?P<b>{_NUM})\s*)?"
    rf"(?P<u>km|kilomet(?:re|er)s?|met(?:re|er)s?|m\b|ft\b|feet|foot|'|°|deg(?:rees?)?\b|%|percent)?",
    re.IGNORECASE,
)
SLOPE_RANGE_DEG = (1.0, 80.0)
ELEVATION_RANGE_M = (-450.0, 8900.0)


def _normalise(text: str) -> str:
    t = text.replace("−", "-").replace("–", "-").replace("—", "-").replace("\u00a0", " ")
    t = re.sub(r"(?<=\d)[,\u202f ](?=\d{3}\b)", "", t)  # thousands separators
    t = re.sub(r"[*_`#]", "", t)  # markdown
    return t


def _values(line: str) -> list[tuple[float, float | None, str]]:
    """``(a, b or None, unit)`` for every number/range on the line after its label."""
    out = []
    for m in _VALUE.finditer(line):
        a = float(m.group("a").replace("−", "-"))
        b = float(m.group("b")) if m.group("b") is not None else None
        unit = (m.group("u") or m.group("ua") or "").lower()
        out.append((a, b, unit))
    return out


def _to_m(v: float, unit: str) -> float:
    if unit in ("ft", "feet", "foot", "'"):
        return v * 0.3048
    if unit.startswith("k"):
        return v * 1000.0
    return v


def _slope(a: float, b: float | None, unit: str) -> float | None:
    v = a if b is None else 0.5 * (a + b)
    if unit in ("%", "percent"):
        v = math.degrees(math.atan(v / 100.0))
    return v if SLOPE_RANGE_DEG[0] <= v <= SLOPE_RANGE_DEG[1] else None


def _elev_ok(v: float | None) -> float | None:
    if v is None or not (ELEVATION_RANGE_M[0] <= v <= ELEVATION_RANGE_M[1]):
        return None
    return v


_KEY_SLOPE = re.compile(r"slope|steepness|incline|gradient", re.I)
_KEY_ELEV = re.compile(r"elevation|altitude|height|a\.?s\.?l", re.I)
_KEY_MIN = re.compile(r"\bmin|lowest|minimum|base|valley|bottom", re.I)
_KEY_MAX = re.compile(r"\bmax|highest|maximum|summit|peak|top", re.I)
_KEY_RANGE = re.compile(r"range|between|from", re.I)


def parse_answer(text: str) -> ParsedAnswer:
    """Extract mean slope (deg) and min/max elevation (m) from a free-form answer.

    Lines are read from the end (the final answer follows the reasoning); the last labelled
    value of each field wins. Units: m/km/ft for elevations (feet -> metres), degrees or
    ``%`` grade for slopes; a range on a slope line gives its midpoint, a range on an elevation
    line gives min and max. A line that reads as a refusal ("cannot determine", "N/A") gives
    no value (refusals carry no number: "N/A", "cannot determine"); values outside 1-80 deg or -450-8900 m are discarded, as are ``max <= min``.
    """
    if not isinstance(text, str):
        return ParsedAnswer()
    slope = zmin = zmax = None
    for raw in reversed(_normalise(text).splitlines()):
        line = raw.strip()
        if not line:
            continue
        low = line.lower()
        is_slope = bool(_KEY_SLOPE.search(low))
        is_elev = bool(_KEY_ELEV.search(low)) or bool(_KEY_MIN.search(low) or _KEY_MAX.search(low))
        if not (is_slope or is_elev):
            continue
        # label = up to the first ':' / '=' / ' is ' ; values after it
        m = re.search(r"[:=]|\bis\b|\bof\b|\babout\b|\baround\b|\bapprox", low)
        body = line[m.end():] if m else line
        vals = _values(body)
        if not vals:
            continue
        if is_slope:  # "slope of the highest peak: 40 deg" is a slope
            if slope is None:
                for a, b, u in vals:
                    if u in ("", "°", "deg", "degree", "degrees", "%", "percent"):
                        slope = _slope(a, b, u)
                        break
            continue
        conv = [(_to_m(a, u), None if b is None else _to_m(b, u)) for a, b, u in vals]
        has_min, has_max = bool(_KEY_MIN.search(low)), bool(_KEY_MAX.search(low))
        a0, b0 = conv[0]
        if b0 is not None or (len(conv) >= 2 and (_KEY_RANGE.search(low) or (has_min and has_max))):
            lo, hi = (a0, b0) if b0 is not None else (a0, conv[1][0])
            if zmin is None and zmax is None:
                zmin, zmax = _elev_ok(min(lo, hi)), _elev_ok(max(lo, hi))
            continue
        if has_min and not has_max and zmin is None:
            zmin = _elev_ok(a0)
        elif has_max and not has_min and zmax is None:
            zmax = _elev_ok(a0)
    if zmin is not None and zmax is not None and zmax <= zmin:
        zmin = zmax = None
    return ParsedAnswer(slope, zmin, zmax)


def aggregate(answers: list[ParsedAnswer]) -> tuple[ParsedAnswer, dict[str, int]]:
    """Per-field median of the valid answers; returns the aggregate and the count per field.

    If the medians give ``z_max <= z_min``, the elevation range is taken as the median of the
    answers that gave both (or dropped if none did)."""
    counts = {}
    med = {}
    for f in ("mean_slope_deg", "z_min_m", "z_max_m"):
        vals = [getattr(a, f) for a in answers if getattr(a, f) is not None]
        counts[f] = len(vals)
        med[f] = float(statistics.median(vals)) if vals else None
    if med["z_min_m"] is not None and med["z_max_m"] is not None and med["z_max_m"] <= med["z_min_m"]:
        both = [a for a in answers if a.z_min_m is not None and a.z_max_m is not None]
        if both:
            med["z_min_m"] = float(statistics.median(a.z_min_m for a in both))
            med["z_max_m"] = float(statistics.median(a.z_max_m for a in both))
            counts["z_min_m"] = counts["z_max_m"] = len(both)
        else:
            med["z_min_m"] = med["z_max_m"] = None
            counts["z_min_m"] = counts["z_max_m"] = 0
    return ParsedAnswer(med["mean_slope_deg"], med["z_min_m"], med["z_max_m"]), counts


# ----------------------------------------------------------------------------------------------
# backend
# ----------------------------------------------------------------------------------------------


@dataclass
class VLMPriors:
    """Priors backend: ask every prompt variant, aggregate by median, fall back per field.

    samples_per_prompt: answers per variant (temperature ``temperature`` when > 1, else 0).
    fallback: builtin priors used for missing fields (``None`` = raise InputError instead).
    answers: the raw texts of the last call (for reports/debugging).
    """

    client: ChatClient
    prompts: tuple[str, ...] = PROMPTS
    samples_per_prompt: int = 1
    temperature: float = 0.7
    fallback: Any = "builtin"
    max_side: int = 1024
    name: str = "vlm"
    answers: list[str] = field(default_factory=list)

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> Priors:
        url = encode_image(image, self.max_side)
        temp = self.temperature if self.samples_per_prompt > 1 else 0.0
        self.answers = []
        parsed = []
        for prompt in self.prompts:
            for _ in range(self.samples_per_prompt):
                text = self.client.chat(prompt, url, temperature=temp)
                self.answers.append(text)
                parsed.append(parse_answer(text))
        agg, counts = aggregate(parsed)
        n = len(parsed)
        src = f"vlm {self.client.model}"
        fb = None
        if agg.mean_slope_deg is None or agg.z_min_m is None or agg.z_max_m is None:
            if self.fallback is None:
                raise InputError(f"the VLM gave no usable estimate in {n} answer(s)")
            if self.fallback == "builtin":
                from pixels2peaks.perception.builtin import DefaultPriors

                fb = DefaultPriors().estimate(np.asarray(image), terrain)
            else:
                fb = self.fallback.estimate(np.asarray(image), terrain)
        sources = {}
        if agg.mean_slope_deg is not None:
            slope = agg.mean_slope_deg
            sources["mean_slope_deg"] = f"{src} (median of {counts['mean_slope_deg']}/{n} answers)"
        else:
            slope = fb.mean_slope_deg
            sources["mean_slope_deg"] = f"no usable VLM answer; {fb.sources.get('mean_slope_deg', 'fallback')}"
        if agg.z_min_m is not None and agg.z_max_m is not None:
            rng = (agg.z_min_m, agg.z_max_m)
            sources["elevation_range_m"] = f"{src} (median of {min(counts['z_min_m'], counts['z_max_m'])}/{n} answers)"
        else:
            rng = fb.elevation_range_m
            sources["elevation_range_m"] = (
                f"no usable VLM answer; {fb.sources.get('elevation_range_m', 'fallback')}"
            )
        return Priors(slope, rng, sources)
