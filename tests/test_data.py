"""Embedded data: digits, synthetic shapes with exact masks, bundled photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from areacam import data

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------ digits


def test_digits_split_shapes_ranges_and_labels():
    x_tr, y_tr = data.digits("train")
    x_te, y_te = data.digits("test")
    assert x_tr.shape == (1347, 1, 32, 32) and x_te.shape == (450, 1, 32, 32)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    for x in (x_tr, x_te):
        assert float(x.min()) == 0.0 and float(x.max()) <= 1.0 and float(x.max()) > 0.9
    assert sorted(set(y_tr.tolist())) == list(range(10)) and sorted(set(y_te.tolist())) == list(range(10))
    # Stratified: every class holds a quarter of its images (+-1) in the test split.
    counts_all = torch.bincount(torch.cat([y_tr, y_te]), minlength=10)
    counts_te = torch.bincount(y_te, minlength=10)
    assert ((counts_te - counts_all.double() * 0.25).abs() <= 1).all()


def test_digits_split_is_a_seeded_partition_of_the_whole_set():
    from sklearn.datasets import load_digits

    raw = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)
    x_all, _y_all = data.digits("all", size=8)
    assert torch.equal(x_all[:, 0], raw)
    x_tr, _ = data.digits("train", size=8, random_state=3)
    x_te, _ = data.digits("test", size=8, random_state=3)
    rows = lambda x: {tuple(r) for r in x.flatten(1).tolist()}  # noqa: E731
    assert rows(x_tr) | rows(x_te) == rows(x_all)
    assert torch.equal(data.digits("train", random_state=3)[0], data.digits("train", random_state=3)[0])
    assert not torch.equal(data.digits("train", random_state=3)[0], data.digits("train", random_state=4)[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(split="val"), ValueError, "'val'"),
        (dict(size=4), ValueError, "size must be >= 8, got 4"),
        (dict(test_fraction=1.0), ValueError, "test_fraction"),
        (dict(size=16.0), TypeError, "size must be an int"),
    ],
)
def test_digits_argument_errors(kwargs, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(")):
        data.digits(**kwargs)


# ------------------------------------------------------------------------------------------ shapes


def test_shapes_shapes_dtypes_ranges():
    images, labels, masks = data.shapes(12, size=48, random_state=0)
    assert images.shape == (12, 3, 48, 48) and images.dtype == torch.float32
    assert labels.shape == (12,) and labels.dtype == torch.int64
    assert masks.shape == (12, 48, 48) and masks.dtype == torch.int64
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert set(labels.tolist()) <= {0, 1, 2}
    for i in range(12):
        values = set(masks[i].unique().tolist())
        assert values == {0, int(labels[i]) + 1}
        # The shape lies fully inside the image: the border is background.
        border = torch.cat([masks[i, 0], masks[i, -1], masks[i, :, 0], masks[i, :, -1]])
        assert int(border.sum()) == 0
        assert 0.03 < float((masks[i] > 0).float().mean()) < 0.4


def test_shapes_all_classes_and_colours_occur():
    images, labels, masks = data.shapes(60, size=32, random_state=1)
    assert set(labels.tolist()) == {0, 1, 2}
    colours = {tuple(images[i][:, masks[i] > 0][:, 0].tolist()) for i in range(60)}
    palette = {tuple(float(np.float32(c)) for c in col) for col in data.SHAPE_COLORS}
    assert colours <= palette and len(colours) >= 6


def test_shapes_are_seeded_and_prefix_stable():
    a = data.shapes(6, size=32, random_state=5)
    b = data.shapes(6, size=32, random_state=5)
    c = data.shapes(3, size=32, random_state=5)
    d = data.shapes(6, size=32, random_state=6)
    for ta, tb, tc, td in zip(a, b, c, d):
        assert torch.equal(ta, tb)
        assert torch.equal(ta[:3], tc)
        assert not torch.equal(ta, td)


@pytest.mark.parametrize("size", [16, 37, 64, 128])
def test_shapes_masks_are_exactly_the_painted_pixels(size):
    images, _labels, masks = data.shapes(8, size=size, random_state=2)
    for i in range(8):
        inside = masks[i] > 0
        colour = images[i][:, inside][:, 0]
        painted = (images[i] == colour[:, None, None]).all(0)
        assert torch.equal(painted, inside), f"image {i}: {int((painted != inside).sum())} pixels differ"


def test_shapes_distractors_are_background_beside_an_unchanged_shape():
    plain = data.shapes(60, size=48, random_state=4)
    images, labels, masks = data.shapes(60, size=48, random_state=4, distractor=0.6)
    assert torch.equal(labels, plain[1]) and torch.equal(masks, plain[2])  # the shape and its mask are kept
    changed = (images != plain[0]).any(1)  # (60, 48, 48): the distractor's pixels
    with_one = changed.flatten(1).any(1)
    assert 0.4 < float(with_one.float().mean()) < 0.8 and not with_one.all()
    assert not (changed & (masks > 0)).any()  # never on the shape, whose painted pixels stay exactly its mask
    for i in torch.nonzero(with_one).flatten().tolist():
        colour = images[i][:, changed[i]][:, 0]
        assert (images[i][:, changed[i]] == colour[:, None]).all()  # one solid colour ...
        assert not (images[i][:, masks[i] > 0][:, 0] == colour).all()  # ... other than the shape's
        area = int(changed[i].sum())
        assert 0.5 * (0.1 * 48) ** 2 * np.pi < area < 1.5 * (0.16 * 48 * 1.1) ** 2 * np.pi
    assert torch.equal(data.shapes(5, size=48, random_state=4, distractor=0.6)[0], images[:5])  # prefix-stable
    with pytest.raises(ValueError, match=r"distractor must be a share in \[0, 1\], got 1.5"):
        data.shapes(2, distractor=1.5)


def test_draw_shape_circle_matches_the_disk_formula_and_nudges_clashing_background():
    size, cy, cx, r = 32, 15.0, 17.0, 6.5
    colour = (1.0, 0.0, 0.0)
    bg = torch.full((3, size, size), 0.5)
    bg[:, 0, 0] = torch.tensor(colour)  # background pixels with the shape's exact colour
    bg[:, 31, 5] = torch.tensor(colour)
    image, mask = data.draw_shape(bg, "circle", (cy, cx), r, colour)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disk = ((yy - cy) ** 2 + (xx - cx) ** 2) < r**2
    assert torch.equal(mask, disk)
    painted = (image == torch.tensor(colour)[:, None, None]).all(0)
    assert torch.equal(painted, mask)
    assert torch.equal(bg[:, 0, 0], torch.tensor(colour))  # the input is not modified
    # Pixels outside the mask are untouched except the two clashing ones.
    changed = (image != bg).any(0) & ~mask
    assert changed.nonzero().tolist() == [[0, 0], [31, 5]]


def test_draw_shape_polygons_have_their_area():
    bg = torch.zeros(3, 64, 64) + 0.3
    _, square = data.draw_shape(bg, "square", (32, 32), 10, (0, 0, 1), angle=np.pi / 4)
    _, triangle = data.draw_shape(bg, "triangle", (32, 32), 10, (0, 0, 1))
    side = 12.5 * np.sqrt(2)  # circumradius 1.25 * r
    assert abs(int(square.sum()) - side**2) / side**2 < 0.1
    tri = 3 * np.sqrt(3) / 4 * 14.5**2  # circumradius 1.45 * r
    assert abs(int(triangle.sum()) - tri) / tri < 0.1


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0,), {}, ValueError, "n must be >= 1, got 0"),
        ((-3,), {}, ValueError, "n must be >= 1, got -3"),
        ((2,), dict(size=8), ValueError, "size must be >= 16, got 8"),
        ((2.0,), {}, TypeError, "n must be an int"),
        ((2,), dict(random_state=-1), ValueError, "random_state must be >= 0"),
    ],
)
def test_shapes_argument_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        data.shapes(*args, **kwargs)


def test_draw_shape_argument_errors():
    bg = torch.zeros(3, 16, 16)
    with pytest.raises(ValueError, match="hexagon"):
        data.draw_shape(bg, "hexagon", (8, 8), 3, (1, 0, 0))
    with pytest.raises(ValueError, match=r"\(3, S, S\)"):
        data.draw_shape(torch.zeros(16, 16), "circle", (8, 8), 3, (1, 0, 0))
    with pytest.raises(ValueError, match="color"):
        data.draw_shape(bg, "circle", (8, 8), 3, (2, 0, 0))


# ------------------------------------------------------------------------------------------ photos


def test_photo_names():
    names = data.photo_names()
    assert {"astronaut", "coffee", "chelsea", "camera", "china", "flower"} <= set(names)


@pytest.mark.parametrize(
    ("name", "shape"), [("astronaut", (3, 512, 512)), ("coffee", (3, 400, 600)), ("china", (3, 427, 640))]
)
def test_photo_shapes_and_range(name, shape):
    img = data.photo(name)
    assert img.shape == shape and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0 and float(img.std()) > 0.1


def test_grey_photo_is_repeated_and_resizing_works():
    import skimage.data

    cam = data.photo("camera")
    assert cam.shape == (3, 512, 512)
    assert torch.equal(cam[0], cam[1]) and torch.equal(cam[0], cam[2])
    assert torch.equal(cam[0], torch.from_numpy(skimage.data.camera().astype(np.float32) / 255.0))
    assert data.photo("chelsea", 64).shape == (3, 64, 64)
    small = data.photo("flower", (48, 80))
    assert small.shape == (3, 48, 80) and float(small.min()) >= 0 and float(small.max()) <= 1


def test_photo_errors():
    with pytest.raises(ValueError, match=r"'lena'.*astronaut"):
        data.photo("lena")
    with pytest.raises(TypeError, match="size"):
        data.photo("coffee", size=(10, 10, 3))
    with pytest.raises(ValueError, match="positive"):
        data.photo("coffee", size=0)


def test_volumes_masks_are_the_noise_free_objects():
    volumes, labels, masks = data.volumes(6, size=16, random_state=2)
    assert volumes.shape == (6, 1, 16, 16, 16) and labels.shape == (6,) and masks.shape == (6, 16, 16, 16)
    assert set(labels.tolist()) == {0, 1} and torch.equal(masks.amax((1, 2, 3)), labels + 1)
    again, _, _ = data.volumes(3, size=16, random_state=2)
    assert torch.equal(again, volumes[:3])
    cube = int((labels == 1).nonzero()[0])
    inside = (masks[cube] > 0).nonzero()
    extent = inside.amax(0) - inside.amin(0)  # an axis-aligned cube fills its bounding box
    assert extent.max() - extent.min() <= 1 and len(inside) == int((extent + 1).prod())


def test_signals_differ_from_clean_exactly_on_one_window():
    noisy, clean, masks = data.signals(40, length=96, random_state=1)
    assert noisy.shape == clean.shape == (40, 1, 96) and masks.shape == (40, 96)
    assert torch.equal(noisy[:, 0][~masks], clean[:, 0][~masks])
    widths = masks.sum(1)
    assert widths.min() >= 8 and widths.max() <= 24
    runs = (masks[:, 1:] & ~masks[:, :-1]).sum(1) + masks[:, 0]
    assert runs.eq(1).all()  # one contiguous window each
    assert ((noisy - clean).abs().amax((1, 2)) > 0).float().mean() > 0.9
    with pytest.raises(ValueError, match="length must be >= 64"):
        data.signals(2, length=32)
