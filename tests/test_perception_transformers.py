import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pixels2peaks.errors import InputError  # noqa: E402
from pixels2peaks.perception.protocols import GeometryBackend  # noqa: E402
from pixels2peaks.perception.transformers_backends import (  # noqa: E402
    DepthAnythingGeometry,
    pinhole_pointmap,
)

IMG = (np.random.default_rng(0).random((30, 44, 3)) * 255).astype(np.uint8)


def tiny_depth_anything(kind="relative"):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        patch_size=14, image_size=28, out_features=["stage1", "stage2"], reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=16,
        reassemble_factors=[1, 0.5], neck_hidden_sizes=[8, 16], fusion_hidden_size=8,
        head_hidden_size=4, depth_estimation_type=kind, max_depth=80,
    )
    return DepthAnythingForDepthEstimation(cfg).eval()


@pytest.mark.parametrize("kind", ["relative", "metric"])
def test_depth_anything_shapes_and_units(kind):
    g = DepthAnythingGeometry(tiny_depth_anything(kind), fov_x_deg=50.0, input_size=28)
    assert isinstance(g, GeometryBackend)
    assert g.metric == (kind == "metric")
    assert g._size(30, 44) == (28, 42)
    res = g.estimate(IMG)
    assert res.points.shape == (30, 44, 3) and res.points.dtype == np.float32
    assert res.fov_x_deg == 50.0 and kind in res.source
    z = res.points[..., 2]
    assert res.valid.any() and (z[res.valid] > 0).all()
    if kind == "relative":  # 1 / (d + 0.05) with d in [0, 1]
        assert z.min() >= 1 / 1.05 - 1e-4 and z.max() <= 20.0 + 1e-3
    else:  # metric head: sigmoid * max_depth
        assert z.max() <= 80.0
    f = 22 / np.tan(np.radians(25.0))
    ok = np.argwhere(res.valid)[0]
    r, c = ok
    assert res.points[r, c, 0] == pytest.approx(z[r, c] * (c + 0.5 - 22) / f, rel=1e-4, abs=1e-6)


def test_pinhole_pointmap_centre_ray():
    pm = pinhole_pointmap(np.full((2, 2), 3.0), 90.0)
    assert np.allclose(pm[..., 2], 3.0)
    assert pm[0, 0, 0] == pytest.approx(-1.5) and pm[0, 0, 1] == pytest.approx(-1.5)


def test_from_pretrained_is_offline(tmp_path):
    with pytest.raises(InputError, match="local files"):
        DepthAnythingGeometry.from_pretrained(str(tmp_path / "missing-model"))
    # a saved tiny model loads from its folder
    m = tiny_depth_anything()
    m.save_pretrained(tmp_path / "da")
    g = DepthAnythingGeometry.from_pretrained(str(tmp_path / "da"), fov_x_deg=40.0, input_size=28)
    assert g.estimate(IMG).points.shape == (30, 44, 3)


def tiny_grounded_sam(tmp_path, threshold=0.0):
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        SamConfig,
        SamMaskDecoderConfig,
        SamModel,
        SamPromptEncoderConfig,
        SamVisionConfig,
        SwinConfig,
    )

    from pixels2peaks.perception.transformers_backends import GroundedSamSegmentation

    torch.manual_seed(0)
    swin = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                      window_size=2, out_features=["stage2", "stage3", "stage4"])
    bert = BertConfig(vocab_size=32, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)
    dcfg = GroundingDinoConfig(
        backbone_config=swin, text_config=bert, num_queries=10, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, encoder_attention_heads=2, decoder_attention_heads=2,
        d_model=32, num_feature_levels=4, encoder_n_points=1, decoder_n_points=1, max_text_len=16,
    )
    dino = GroundingDinoForObjectDetection(dcfg).eval()
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "all", "mountains", "."]) + "\n")
    tok = BertTokenizer(str(vocab))
    vc = SamVisionConfig(hidden_size=16, output_channels=8, num_hidden_layers=1, num_attention_heads=2,
                         image_size=64, patch_size=8, mlp_dim=32, window_size=2, global_attn_indexes=[0],
                         num_pos_feats=4)
    pc = SamPromptEncoderConfig(hidden_size=8, image_size=64, patch_size=8, mask_input_channels=4)
    mc = SamMaskDecoderConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, mlp_dim=16,
                              iou_head_hidden_dim=8)
    sam = SamModel(SamConfig(vision_config=vc, prompt_encoder_config=pc, mask_decoder_config=mc)).eval()
    return GroundedSamSegmentation(dino, tok, sam, box_threshold=threshold, dino_short_side=48,
                                   dino_max_side=96, max_boxes=3)


def test_grounded_sam_shapes(tmp_path):
    from pixels2peaks.perception.protocols import SegmentationBackend

    seg = tiny_grounded_sam(tmp_path)
    assert isinstance(seg, SegmentationBackend)
    boxes, scores = seg.boxes(IMG)
    assert boxes.shape == (3, 4) and scores.shape == (3,)
    assert (np.diff(scores) <= 0).all()
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 44).all() and (boxes[:, 3] <= 30).all()
    ms = seg.masks(IMG, boxes)
    assert ms.shape == (3, 30, 44) and ms.dtype == bool
    mask = seg.segment(IMG)
    assert mask.shape == (30, 44) and mask.dtype == bool
    assert np.array_equal(mask, ms.any(axis=0))
    # no box above the threshold -> empty mask
    seg.box_threshold = 1.0
    assert not seg.segment(IMG).any()
    assert seg.masks(IMG, np.zeros((0, 4))).shape == (0, 30, 44)


# ----------------------------------------------------------------------------------------------
# local vision-language priors (Gemma-3 architecture, tiny random weights, word-level tokenizer)
# ----------------------------------------------------------------------------------------------
WORDS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_image>", "<image_soft_token>", "<end_of_image>",
         "<start_of_turn>", "<end_of_turn>", "user", "model", "MEAN_SLOPE_DEG:", "MIN_ELEVATION_M:",
         "MAX_ELEVATION_M:", "12", "800", "2400", "\n"]


def tiny_gemma(folder):
    """Save a tiny random Gemma-3 image-text-to-text model and its processor to ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor, PreTrainedTokenizerFast

    try:
        from transformers import Gemma3ImageProcessorPil as ImageProcessor
    except ImportError:  # older transformers
        from transformers import Gemma3ImageProcessor as ImageProcessor
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
        extra_special_tokens={"boi_token": "<start_of_image>", "image_token": "<image_soft_token>",
                              "eoi_token": "<end_of_image>"})
    template = ("{{ bos_token }}{% for m in messages %}<start_of_turn> {{ m['role'] }} {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}{% endif %} {% endfor %}"
                "<end_of_turn> {% endfor %}{% if add_generation_prompt %}<start_of_turn> model {% endif %}")
    proc = Gemma3Processor(image_processor=ImageProcessor(size={"height": 28, "width": 28}, do_pan_and_scan=False),
                           tokenizer=tok, chat_template=template, image_seq_length=4)
    ids = tok.convert_tokens_to_ids
    cfg = Gemma3Config(
        text_config=dict(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=16,
                         max_position_embeddings=256),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        mm_tokens_per_image=4, boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"))
    torch.manual_seed(0)
    Gemma3ForConditionalGeneration(cfg).eval().save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def test_local_vlm_client_runs_offline_and_greedily(tmp_path):
    from pixels2peaks.perception import _defaults
    from pixels2peaks.perception.local_vlm import LocalChatClient
    from pixels2peaks.perception.protocols import select
    from pixels2peaks.perception.vlm import PROMPTS, VLMPriors, encode_image

    folder = str(tiny_gemma(tmp_path / "gemma"))
    client = LocalChatClient.from_pretrained(folder, max_new_tokens=6)
    url = encode_image(IMG)
    a, b = client.chat(PROMPTS[0], url), client.chat(PROMPTS[0], url)
    assert isinstance(a, str) and a == b  # temperature 0: greedy, deterministic
    assert isinstance(client.chat(PROMPTS[0], url, temperature=0.8), str)
    # random weights answer nonsense: every field falls back to the builtin priors, and says so
    pri = VLMPriors(client, fallback="builtin").estimate(IMG)
    assert 0 < pri.mean_slope_deg < 90 and pri.sources["mean_slope_deg"].startswith("no usable VLM answer")
    # availability and auto: a local folder with the model counts, nothing is downloaded
    assert _defaults._gemma_available({"gemma_model": folder}) == (True, "")
    assert not _defaults._gemma_available({"gemma_model": str(tmp_path / "missing")})[0]
    sel = select("priors", "auto", {"gemma_model": folder})
    assert sel.name == "gemma" and isinstance(sel.backend, VLMPriors) and sel.backend.name == "gemma"
    with pytest.raises(InputError, match="cannot load vision-language processor"):
        LocalChatClient.from_pretrained(str(tmp_path / "missing"))


def test_local_vlm_answers_are_parsed_like_the_servers(tmp_path):
    """A network scripted to emit a fixed answer: the processor decodes it and VLMPriors parses it."""
    from pixels2peaks.perception.local_vlm import LocalChatClient
    from pixels2peaks.perception.vlm import VLMPriors

    folder = tiny_gemma(tmp_path / "gemma")
    real = LocalChatClient.from_pretrained(str(folder))
    answer = ["MEAN_SLOPE_DEG:", "12", "\n", "MIN_ELEVATION_M:", "800", "\n", "MAX_ELEVATION_M:", "2400", "<eos>"]
    ids = real.processor.tokenizer.convert_tokens_to_ids(answer)

    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def generate(self, input_ids, **kw):
            self.seen.append({k: v for k, v in kw.items() if not torch.is_tensor(v)} | {"pixels": "pixel_values" in kw})
            return torch.cat([input_ids, torch.tensor([ids])], dim=1)

    net = Scripted()
    pri = VLMPriors(LocalChatClient(net, real.processor, model="tiny-gemma")).estimate(IMG)
    assert pri.mean_slope_deg == 12.0 and pri.elevation_range_m == (800.0, 2400.0)
    assert pri.sources["mean_slope_deg"] == "vlm tiny-gemma (median of 4/4 answers)"
    assert all(s["pixels"] and s["do_sample"] is False for s in net.seen)  # the image went in
