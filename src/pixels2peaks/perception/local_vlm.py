"""Local vision-language model for the priors (paper §4.2 used Gemma-3) through transformers.

:class:`LocalChatClient` answers :class:`~pixels2peaks.perception.vlm.VLMPriors`' prompts with an
image-text-to-text model loaded from local files only (``AutoProcessor`` +
``AutoModelForImageTextToText``, ``local_files_only=True``; nothing is downloaded), so the local
backend shares the server backend's chain-of-thought prompts, free-form parsing and median
aggregation. Greedy decoding at temperature 0, sampling otherwise; on CUDA when present.

Install: ``pip install 'pixels2peaks[perception]'`` and put the model in the Hugging Face cache
(``huggingface-cli download google/gemma-3-4b-it``; gated: accept its licence first), or pass a
local folder as the ``gemma_model`` backend option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixels2peaks.perception.vlm import decode_image

__all__ = ["GEMMA_MODEL", "LocalChatClient"]

#: default local model (Hugging Face id)
GEMMA_MODEL = "google/gemma-3-4b-it"


@dataclass
class LocalChatClient:
    """A :class:`~pixels2peaks.perception.vlm.ChatClient` running ``network`` with ``processor``.

    model: the name reported in the priors' sources; max_new_tokens: answer length (tokens).
    """

    network: Any
    processor: Any
    model: str = GEMMA_MODEL
    max_new_tokens: int = 512

    @classmethod
    def from_pretrained(cls, repo: str = GEMMA_MODEL, **kw: Any) -> LocalChatClient:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from pixels2peaks.perception.transformers_backends import _load

        processor = _load(AutoProcessor, repo, "vision-language processor")
        network = _load(AutoModelForImageTextToText, repo, "vision-language model")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return cls(network.to(device).eval(), processor, model=str(repo), **kw)

    def chat(self, prompt: str, image_url: str, *, temperature: float = 0.0) -> str:
        """One prompt with one image (a data URL) -> the model's answer text."""
        import torch

        messages = [{"role": "user", "content": [{"type": "image", "image": decode_image(image_url)},
                                                 {"type": "text", "text": prompt}]}]
        inputs = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True, return_tensors="pt")
        device = next(self.network.parameters()).device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        sample = float(temperature) > 0.0
        gen: dict[str, Any] = {"max_new_tokens": int(self.max_new_tokens), "do_sample": sample}
        if sample:
            gen["temperature"] = float(temperature)
        with torch.inference_mode():
            out = self.network.generate(**inputs, **gen)
        n = inputs["input_ids"].shape[1]
        return str(self.processor.decode(out[0, n:], skip_special_tokens=True)).strip()
