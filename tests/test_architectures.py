"""Any architecture: token, channels-last and dict layers; Hugging Face outputs; wrapped models.

Models are built from small configs with random weights (nothing downloads). CAM maps are checked
against pytorch-grad-cam with the reshape transforms its docs give for ViT and Swin.
"""

from __future__ import annotations

import pytest
import pytorch_grad_cam as pgc
import timm
import torch
import torchvision
from _modules import ChannelsFirst, ChannelsLast
from _numerics import U32, assert_close, assert_identical, maps_allowed, reduction, rounded
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

import areacam as ac
from areacam.layers import AmbiguousLayoutError, Hooks, LayerCapture, LayerView, layer_table, resolve_layer

METHODS = [(ac.GradCAM, pgc.GradCAM), (ac.GradCAMPlusPlus, pgc.GradCAMPlusPlus), (ac.LayerCAM, pgc.LayerCAM)]


def vit_reshape(prefix: int, height: int, width: int):
    """pytorch-grad-cam's ViT reshape_transform, with the prefix token count as a parameter."""

    def reshape(tensor):
        result = tensor[:, prefix:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    return reshape


def swin_reshape(tensor):
    """pytorch-grad-cam's Swin reshape_transform for timm's channels-last stages."""
    return tensor.permute(0, 3, 1, 2)


def _vit(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    base = dict(pretrained=False, img_size=64, embed_dim=32, depth=2, num_heads=2, num_classes=10)
    return timm.create_model(kwargs.pop("name", "vit_tiny_patch16_224"), **{**base, **kwargs}).eval()


TIMM = {
    "vit": (lambda: _vit(), "blocks.1.norm1", vit_reshape(1, 4, 4), "tokens(prefix=1, grid=4x4)"),
    "vit-registers": (lambda: _vit(reg_tokens=4), "blocks.1.norm1", vit_reshape(5, 4, 4), "tokens(prefix=5, grid=4x4)"),
    "deit-distilled": (
        lambda: _vit(name="deit_tiny_distilled_patch16_224"),
        "blocks.1.norm1",
        vit_reshape(2, 4, 4),
        "tokens(prefix=2, grid=4x4)",
    ),
    "swin": (
        lambda: (
            torch.manual_seed(0),
            timm.create_model(
                "swin_tiny_patch4_window7_224",
                pretrained=False,
                img_size=64,
                embed_dim=24,
                depths=(1, 1, 1, 1),
                num_heads=(1, 1, 2, 2),
                window_size=2,
                num_classes=10,
            ).eval(),
        )[1],
        "layers.2",
        swin_reshape,
        "nhwc",
    ),
}


@pytest.fixture(scope="module")
def timm_models():
    return {name: build() for name, (build, *_) in TIMM.items()}


@pytest.fixture(scope="module")
def timm_x():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def timm_models64():
    """The timm models in float64: pytorch-grad-cam's maps are then float64 references (rule 2)."""
    return {name: build().double() for name, (build, *_) in TIMM.items()}


@pytest.mark.parametrize(("ours", "theirs"), METHODS, ids=["gradcam", "gradcam++", "layercam"])
@pytest.mark.parametrize("name", list(TIMM))
def test_timm_maps_equal_pytorch_grad_cam_with_its_reshape(timm_models64, timm_x, name, ours, theirs):
    model, x = timm_models64[name], timm_x.double()
    _, layer, reshape, layout = TIMM[name]
    expl = ours(model, layer)(x, ac.Class([2, 5]))  # no layout argument: the shape decides
    assert expl.layout == layout
    with theirs(model=model, target_layers=[resolve_layer(model, layer)], reshape_transform=reshape) as cam:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(2), ClassifierOutputTarget(5)])
    assert not expl.degenerate.any()
    assert_close(expl.maps, torch.from_numpy(ref)[:, None], maps_allowed(expl.raw, (64, 64), pgc=True), "maps")


def test_explicit_layout_arguments_equal_the_read_ones(timm_models, timm_x):
    model = timm_models["deit-distilled"]
    read = ac.GradCAM(model, "blocks.1.norm1")(timm_x, ac.Class(1))
    for kwargs in (
        dict(layout="tokens", prefix_tokens=2),
        dict(grid=(4, 4)),
        dict(prefix_tokens=2, grid=(4, 4)),
        dict(reshape=vit_reshape(2, 4, 4)),
    ):
        given = ac.GradCAM(model, "blocks.1.norm1", **kwargs)(timm_x, ac.Class(1))
        assert_identical(given.raw, read.raw, f"raw with {kwargs}")
    assert given.layout == "reshape(reshape)"


# ------------------------------------------------------------------------------ reading shapes


def _permuting_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        ChannelsLast(),
        ChannelsFirst(),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


def test_ambiguous_channels_raise_naming_both_readings_and_layout_settles_it():
    model = _permuting_net().double()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for layer in ("1", "2"):  # (2, 8, 8, 8) on an 8x8 input, from modules whose type says nothing
        with pytest.raises(ValueError, match=r"channels-first \(nchw\) or channels-last \(nhwc\).*layout='nchw'"):
            ac.GradCAM(model, layer)(x, ac.Class(0))
    conv = ac.GradCAM(model, "0")(x, ac.Class(0))  # an nn.Conv2d output is channels-first by its type
    last = ac.GradCAM(model, "1", layout="nhwc")(x, ac.Class(0))
    first = ac.GradCAM(model, "2", layout="nchw")(x, ac.Class(0))
    assert (conv.layout, last.layout, first.layout) == ("nchw", "nhwc", "nchw")
    assert not conv.degenerate.any()
    # the same numbers in another memory order (permuted views): float64 sums in other orders (rule 2)
    assert_close(last.raw, conv.raw, rounded(conv.raw), "raw read channels-last")
    assert_close(first.raw, conv.raw, rounded(conv.raw), "raw read channels-first")


def test_reading_rules():
    view = LayerView()
    assert str(view.read((2, 512, 7, 7), (224, 224), "l")) == "nchw"
    assert str(view.read((2, 7, 7, 768), (224, 224), "l")) == "nhwc"
    assert str(view.read((2, 9, 8, 4), (225, 100), "l")) == "nchw"  # ResNet's ceil-rounded stride 32
    assert str(view.read((2, 197, 192), (224, 224), "l")) == "tokens(prefix=1, grid=14x14)"
    assert str(view.read((2, 261, 384), (224, 224), "l")) == "tokens(prefix=5, grid=16x16)"  # DINOv2 + 4 registers
    assert str(view.read((2, 3136, 96), (224, 224), "l")) == "tokens(prefix=0, grid=56x56)"  # a flattened stage
    assert str(view.read((2, 129, 64), (128, 256), "l")) == "tokens(prefix=1, grid=8x16)"
    assert view.read((2, 3, 17, 64), (64, 64), "l").assumed  # neither grid fits: channels-first by convention
    with pytest.raises(AmbiguousLayoutError, match=r"prefix_tokens=1 \+ grid 4x4 or prefix_tokens=8 \+ grid 3x3"):
        view.read((2, 17, 8), (24, 24), "l")
    assert str(LayerView(prefix_tokens=8).read((2, 17, 8), (24, 24), "l")) == "tokens(prefix=8, grid=3x3)"
    with pytest.raises(ValueError, match=r"15 tokens do not split.*grid=\(h, w\)"):
        view.read((2, 15, 8), (64, 64), "l")
    with pytest.raises(ValueError, match="not a feature map"):
        view.read((2, 10), (64, 64), "l")
    with pytest.raises(ValueError, match=r"18 tokens, which is not prefix_tokens=None \+ grid 4x5"):
        LayerView(grid=(4, 5)).read((2, 18, 8), (64, 64), "l")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(layout="chw"), ValueError, "unknown layout 'chw'"),
        (dict(grid=(4,)), ValueError, r"grid must be two positive ints \(h, w\), got \(4,\)"),
        (dict(grid=(4, 0)), ValueError, "grid must be two positive ints"),
        (dict(prefix_tokens=-1), ValueError, "prefix_tokens must be an int >= 0, got -1"),
        (dict(layout="nhwc", grid=(4, 4)), ValueError, "describe token layers, but layout='nhwc'"),
        (dict(reshape="tokens"), TypeError, "reshape must be callable"),
        (dict(layer_output=1.5), TypeError, "layer_output must be a key or an index"),
    ],
)
def test_bad_layout_arguments_fail_at_construction(resnet, kwargs, error, match):
    with pytest.raises(error, match=match):
        ac.GradCAM(resnet, "layer4", **kwargs)


def test_nchw_layers_cost_no_copy(resnet, images):
    """The channels-first path hands the captured tensor on as is (no reshape, no copy)."""
    with LayerCapture(resnet, "layer4") as capture:
        capture.run(images)
        assert capture.activation() is capture.value
    grads = torch.rand(2, 3, 512, 2, 2)
    assert capture.layout.per_target(grads) is grads


# ----------------------------------------------------------------------- dict and tuple layers


def test_deeplab_backbone_dict_output_equals_its_tensor_layer():
    torch.manual_seed(0)
    model = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3, aux_loss=True
    ).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    target = ac.Area(box=(8, 8, 40, 40), channel=1)
    picked = ac.GradCAM(model, "backbone", layer_output="out")(x, target)
    inner = ac.GradCAM(model, "backbone.16")(x, target)
    assert not inner.degenerate.any()
    assert_identical(picked.raw, inner.raw, "raw")
    assert_identical(picked.scores, inner.scores, "scores")
    aux_target = ac.Area(box=(8, 8, 40, 40), channel=1, output="aux")  # the auxiliary head reads "aux"
    aux = ac.GradCAM(model, "backbone", layer_output="aux")(x, aux_target)
    assert_identical(aux.raw, ac.GradCAM(model, "backbone.4")(x, aux_target).raw, "aux raw")
    with pytest.raises(TypeError, match=r"returned a OrderedDict \(keys \['aux', 'out'\]\).*layer_output="):
        ac.GradCAM(model, "backbone")(x, target)
    with pytest.raises(KeyError, match="layer_output='high' is not a key"):
        ac.GradCAM(model, "backbone", layer_output="high")(x, target)


def detection_score(detections: list[dict]) -> torch.Tensor:
    """Sum of the detection scores of each image: ``(B,)``."""
    return torch.stack([d["scores"].sum() for d in detections])


def test_faster_rcnn_body_key_equals_its_tensor_layer():
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=3,
        min_size=64,
        max_size=64,
        box_score_thresh=0.0,
        box_detections_per_img=5,
        rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=20,
    ).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    target = ac.Score(detection_score)
    picked = ac.GradCAM(model, "backbone.body", layer_output="3")(x, target)
    inner = ac.GradCAM(model, "backbone.body.layer4")(x, target)
    assert picked.layout == "nchw" and picked.raw.shape == (1, 1, 2, 2)
    assert inner.raw.abs().sum() > 0
    assert_identical(picked.raw, inner.raw, "raw")
    assert_identical(picked.scores, inner.scores, "scores")


class TupleLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        features = self.conv(x)
        return features, features.mean()


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = TupleLayer()
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        features, _ = self.body(x)
        return self.head(torch.relu(features).mean(dim=(2, 3)))


def test_tuple_layer_output_by_index():
    torch.manual_seed(0)
    model, x = TupleNet().eval(), torch.rand(2, 3, 16, 16)
    picked = ac.LayerCAM(model, "body", layer_output=0)(x, ac.Class(1))
    assert_identical(picked.raw, ac.LayerCAM(model, "body.conv")(x, ac.Class(1)).raw, "raw")
    with pytest.raises(IndexError, match="layer_output=2 is out of range"):
        ac.GradCAM(model, "body", layer_output=2)(x, ac.Class(1))
    with pytest.raises(ValueError, match=r"layer 'body' gives an output of shape \(\), which is not a feature map"):
        ac.GradCAM(model, "body", layer_output=1)(x, ac.Class(1))
    assert all(not m._forward_hooks for m in model.modules())


# ------------------------------------------------------------------------------ Hugging Face


class Logits(nn.Module):
    """The hand-written wrapper areacam makes unnecessary."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).logits


@pytest.fixture(scope="module")
def hf_vit():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=5,
    )
    return ViTForImageClassification(config).eval()


@pytest.fixture(scope="module")
def hf_segformer():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        num_labels=3,
    )
    return SegformerForSemanticSegmentation(config).eval()


def _hf_layer(model: nn.Module, suffix: str) -> str:
    """The dotted name ending in ``suffix`` (transformers renamed encoder.layer to layers in v5)."""
    names = [name for name, _ in model.named_modules() if name.endswith(suffix)]
    assert names, suffix
    return names[-1]


class InterpolatedLogits(nn.Module):
    """By hand: a ViT run at another image size with its position embeddings interpolated."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x, interpolate_pos_encoding=True).logits


def test_hf_vit_at_another_size_through_forward_kwargs(hf_vit):
    """interpolate_pos_encoding=True as a forward keyword: a 48 px input on a ViT built for 32 px."""
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(5))
    layer = _hf_layer(hf_vit, "1.layernorm_before")
    passed = {"interpolate_pos_encoding": True}
    direct = ac.GradCAM(hf_vit, layer)(x, [ac.Class(), ac.Class(3)], forward_kwargs=passed)
    by_hand = ac.GradCAM(InterpolatedLogits(hf_vit), f"model.{layer}")(x, [ac.Class(), ac.Class(3)])
    assert direct.layout == "tokens(prefix=1, grid=6x6)"
    assert not direct.degenerate.any()
    assert_identical(direct.maps, by_hand.maps, "maps")
    assert_identical(direct.scores, by_hand.scores, "scores")


def test_hf_vit_class_targets_need_no_wrapper(hf_vit):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    layer = _hf_layer(hf_vit, "1.layernorm_before")
    wrapped = Logits(hf_vit)
    for method in (ac.GradCAM, ac.LayerCAM):
        direct = method(hf_vit, layer)(x, [ac.Class(), ac.Class(3)])
        by_hand = method(wrapped, f"model.{layer}")(x, [ac.Class(), ac.Class(3)])
        assert direct.layout == "tokens(prefix=1, grid=4x4)"
        assert not direct.degenerate.any()
        assert_identical(direct.maps, by_hand.maps, "maps")
        assert_identical(direct.scores, by_hand.scores, "scores")


def test_hf_segformer_segment_and_area_need_no_wrapper(hf_segformer):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = hf_segformer(pixel_values=x).logits  # (1, 3, 16, 16): a quarter of the input
    cls = int(logits.argmax(1).flatten().mode().values)
    targets = [ac.Segment(cls), ac.Area(box=(2, 2, 10, 10), channel=1)]
    layer = _hf_layer(hf_segformer, "stages.1.layer_norm")
    direct = ac.GradCAM(hf_segformer, layer)(x, targets)
    by_hand = ac.GradCAM(Logits(hf_segformer), f"model.{layer}")(x, targets)
    assert direct.layout == "tokens(prefix=0, grid=8x8)"
    assert not direct.degenerate.any()
    assert_identical(direct.maps, by_hand.maps, "maps")
    assert_identical(direct.scores, by_hand.scores, "scores")
    box = logits[0, 1, 2:10, 2:10]  # the same 64 logits summed in another order: rule 3
    assert_close(direct.scores[0, 1], box.sum(), reduction(64) * box.abs().sum(), "box score")


def test_model_output_selection():
    from transformers.modeling_outputs import SemanticSegmenterOutput

    logits, masks, x = torch.rand(2, 3, 4, 4), torch.rand(2, 1, 4, 4), torch.rand(2, 3, 4, 4)
    output = SemanticSegmenterOutput(logits=logits, hidden_states=(masks,))
    assert ac.Area(channel=1)(output, x).equal(logits[:, 1].sum(dim=(1, 2)))
    mapping = {"logits": logits, "pred_masks": masks}
    assert ac.Area()(mapping, x).equal(logits.sum(dim=(1, 2, 3)))
    assert ac.Area(output="pred_masks")(mapping, x).equal(masks.sum(dim=(1, 2, 3)))
    assert ac.Area()({"out": masks, "logits": logits}, x).equal(masks.sum(dim=(1, 2, 3)))  # "out" first
    with pytest.raises(KeyError, match=r"neither an 'out' nor a 'logits' entry \(keys: \['boxes', 'masks'\]\)"):
        ac.Area()({"boxes": logits, "masks": masks}, x)
    assert ac.Area()({"boxes": logits}, x).equal(logits.sum(dim=(1, 2, 3)))  # one tensor entry: read as it


# --------------------------------------------------------------------------- wrapped models


def test_compiled_model_names_resolve_and_explain_like_the_original(resnet, images):
    compiled = torch.compile(resnet)  # nothing compiles until a forward: explainers run _orig_mod eagerly
    plain = ac.GradCAM(resnet, "layer4")(images, ac.Class(3))
    for name in ("layer4", "_orig_mod.layer4"):
        assert resolve_layer(compiled, name) is resnet.layer4
        assert_identical(ac.GradCAM(compiled, name)(images, ac.Class(3)).maps, plain.maps, name)
    with pytest.raises(ValueError, match=r"closest valid names: \['layer4'"):
        resolve_layer(compiled, "layer44")


def test_data_parallel_names_resolve_and_explain_like_the_original(resnet, images):
    parallel = nn.DataParallel(resnet)
    plain = ac.LayerCAM(resnet, "layer3")(images, ac.Class(1))
    for name in ("layer3", "module.layer3"):
        assert_identical(ac.LayerCAM(parallel, name)(images, ac.Class(1)).maps, plain.maps, name)
    assert all(not m._forward_hooks for m in resnet.modules())


# ---------------------------------------------------------------- feature maps, embed, table


def test_feature_maps_and_embed_read_token_layers(timm_models, timm_x):
    model = timm_models["vit"]
    acts, _ = ac.feature_maps(model, "blocks.1.norm1", timm_x, channels=2)
    with torch.no_grad():
        tokens = model.blocks[1].norm1(model.blocks[0](model._pos_embed(model.patch_embed(timm_x))))
    assert_identical(acts, tokens[:, 1:].transpose(1, 2).reshape(2, 32, 4, 4), "feature maps")
    embedding = ac.embed(model, "blocks.1.norm1", timm_x.repeat(2, 1, 1, 1), method="pca")
    grid = tokens[:, 1:]  # the mean of 16 grid tokens, over another axis (another order): rule 3
    allowed = (reduction(16) + U32) * grid.abs().mean(dim=1)
    assert_close(torch.from_numpy(embedding.features[:2]), grid.mean(dim=1), allowed, "pooled features")


def test_layer_table_reads_layouts_and_suggests_layers_the_output_reaches(timm_models):
    rows = {r["name"]: r for r in layer_table(timm_models["vit"], torch.rand(1, 3, 64, 64))}
    assert rows["blocks.1.norm1"]["layout"] == "tokens 1+4x4, C=32"
    assert rows["blocks.1.norm1"]["reaches"]
    # The class token alone feeds the head: patch tokens after the last attention do not reach it.
    assert not rows["blocks.1"]["reaches"] and not rows["norm"]["reaches"]
    assert rows["head"]["layout"] is None
    assert [n for n, r in rows.items() if r["suggested"]] == ["blocks.1.attn.qkv"]
    swin = {r["name"]: r for r in layer_table(timm_models["swin"], torch.rand(1, 3, 64, 64))}
    assert swin["layers.2"]["layout"] == "nhwc 4x4, C=96"
    assert swin["layers.2"]["suggested"]
    assert all(not m._forward_hooks for m in timm_models["swin"].modules())


# ----------------------------------------------------------------------- hooks and guidance


def test_hooks_remove_twice_and_capture_restores_grad_mode(resnet, images):
    capture = LayerCapture(resnet, "layer2", mode="leaf")
    with torch.no_grad(), capture:
        capture.run(images)
        assert not torch.is_grad_enabled()  # the layer switched autograd on only inside run()
        assert capture.value.requires_grad
    capture.remove()
    hooks = Hooks()
    hooks.add(resnet.layer1.register_forward_hook(lambda *args: None))
    hooks.remove()
    hooks.remove()
    assert all(not m._forward_hooks for m in resnet.modules())
    with LayerCapture(resnet, "layer1", mode="value", stop=True) as capture:
        assert capture.run(images) is None  # stopped after layer1
        assert capture.value.shape == (2, 64, 16, 16) and not capture.value.requires_grad


def test_guided_backprop_warning_counts_guided_and_unguided_modules(timm_models, timm_x):
    with pytest.warns(UserWarning, match=r"guides 0 nn.ReLU module\(s\) and leaves 2 GELU unguided"):
        guided = ac.GuidedBackprop(timm_models["vit"])(timm_x, ac.Class(0))
    assert_identical(guided.raw, ac.Saliency(timm_models["vit"])(timm_x, ac.Class(0)).raw, "raw")
    torch.manual_seed(0)
    mixed = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.SiLU(), nn.Flatten(), nn.LazyLinear(2))
    mixed(torch.rand(1, 3, 8, 8))
    with pytest.warns(UserWarning, match=r"guides 1 nn.ReLU module\(s\) and leaves 1 SiLU unguided"):
        ac.GuidedBackprop(mixed.eval())(torch.rand(1, 3, 8, 8), ac.Class(0))


def test_a_tie_is_broken_only_where_sequential_semantics_prove_the_layout():
    # 16 channels on a 16x16 grid reads both ways by its shape alone.
    block = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
    model = nn.Sequential(block, nn.Dropout(0.0), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for layer in ("0.2", "0", "1"):  # a ReLU after a BatchNorm, the block itself, a dropout after the block
        expl = ac.GradCAM(model, layer)(x, ac.Class(1))
        assert expl.layout == "nchw"
        assert_identical(expl.raw, ac.GradCAM(model, layer, layout="nchw")(x, ac.Class(1)).raw, layer)
    permuted = _permuting_net()  # a custom module permutes: nothing is proved, the tie raises
    with pytest.raises(AmbiguousLayoutError):
        ac.GradCAM(permuted, "3")(torch.rand(2, 3, 8, 8), ac.Class(0))


VIT_FACTORY = """
import timm
import torch


def build():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, embed_dim=32, depth=2,
                             num_heads=2, num_classes=10)
"""


def test_layers_command_prints_each_layout(tmp_path, monkeypatch, capsys):
    from areacam.app.cli import main

    (tmp_path / "vitnet_arch.py").write_text(VIT_FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["layers", "--model", "vitnet_arch:build", "--size", "64", "64"]) == 0
    lines = {
        line.split()[1] if line.startswith("*") else line.split()[0]: line
        for line in capsys.readouterr().out.splitlines()[1:-1]
    }
    assert lines["blocks.1.norm1"].rstrip().endswith("tokens 1+4x4, C=32")
    assert lines["patch_embed.proj"].rstrip().endswith("nchw 4x4, C=32")
    assert lines["blocks.1.attn.qkv"].startswith("* ")
