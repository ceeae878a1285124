import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from advimb.config.sections import DataConfig, SyntheticConfig
from advimb.data.cache import forget_datasets
from advimb.data.dataset import eval_subset
from advimb.data.sources import load_dataset
from advimb.data.synthetic import make_synthetic
from advimb.errors import UserError


def _folder(root, classes=("ant", "bee", "wasp"), n_train=4, n_test=2, size=16, ext="png"):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for i, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True)
            for j in range(n):
                arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                arr[0, 0] = [i, j, 0]  # identifiable pixel
                Image.fromarray(arr).save(d / f"{j:04d}.{ext}")
    return root


def _load(root, cache, source="folder"):
    forget_datasets()
    return load_dataset(DataConfig(source=source, dir=str(root), cache_dir=str(cache)))


def test_synthetic_is_seeded_and_class_structured():
    a, b = make_synthetic(SyntheticConfig(seed=1)), make_synthetic(SyntheticConfig(seed=1))
    assert a.fingerprint == b.fingerprint and np.array_equal(a.x_train, b.x_train)
    assert a.fingerprint != make_synthetic(SyntheticConfig(seed=2)).fingerprint
    assert a.x_train.shape == (2000, 32, 32, 3) and a.x_train.dtype == np.uint8
    assert np.bincount(a.y_train).tolist() == [200] * 10

    # not noise: a nearest-class-mean classifier on simple features beats chance by far
    def feats(x):
        f = np.abs(np.fft.fft2(x.astype(float).mean(-1) - 128)).reshape(len(x), -1)[:, :300]
        return np.concatenate([f / f.max(), x.reshape(len(x), -1, 3).mean(1) / 255], 1)

    ftr, fte = feats(a.x_train), feats(a.x_test)
    means = np.stack([ftr[a.y_train == c].mean(0) for c in range(10)])
    pred = np.argmin(((fte[:, None] - means[None]) ** 2).sum(-1), 1)
    assert (pred == a.y_test).mean() > 0.5


def test_image_folder_any_classes_and_cache(tmp_path):
    root = _folder(tmp_path / "insects")
    ds = _load(root, tmp_path / "cache")
    assert ds.classes == ("ant", "bee", "wasp") and ds.x_train.shape == (12, 16, 16, 3)
    assert ds.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ds.x_train[5, 0, 0].tolist() == [1, 1, 0]  # bee #1 really is that file
    assert list((tmp_path / "cache" / "arrays").glob("*.npz"))
    again = _load(root, tmp_path / "cache")  # from the cache
    assert again.fingerprint == ds.fingerprint and np.array_equal(again.x_test, ds.x_test)


def test_cifar10_source_refuses_other_classes(tmp_path):
    root = _folder(tmp_path / "insects")
    with pytest.raises(UserError, match="not CIFAR-10; for another image-folder dataset use --set data.source=folder"):
        _load(root, tmp_path / "cache", source="cifar10")


def test_archive_of_an_image_folder(tmp_path):
    root = _folder(tmp_path / "src" / "insects")
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "insects.tar.gz", "w:gz") as t:
        t.add(root, arcname="insects")
    ds = _load(data, tmp_path / "cache")
    assert ds.classes == ("ant", "bee", "wasp") and len(ds.y_test) == 6


def test_official_python_batches(tmp_path, monkeypatch):
    """The official layout read through torchvision (its md5 check is bypassed here only
    because these batches are made up)."""
    import torchvision

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = list(range(10)) * 2
        with open(d / name, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), "labels": labels}, fh)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names}, fh)
    ds = _load(tmp_path, tmp_path / "cache", source="cifar10")
    assert ds.x_train.shape == (100, 32, 32, 3) and len(ds.y_test) == 20
    assert ds.classes[3] == "cat"


def test_corrupt_official_batches(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(UserError, match="missing or corrupt"):
        _load(tmp_path, tmp_path / "cache", source="cifar10")


def test_corrupt_image_names_the_file(tmp_path):
    root = _folder(tmp_path / "insects")
    bad = root / "train" / "bee" / "0002.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"cannot decode image .*bee/0002.png"):
        _load(root, tmp_path / "cache")


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.mkdir(), p)[1], "no dataset found"),
        (lambda p: (p.mkdir(), (p / "train").mkdir(), (p / "test").mkdir(), p)[3], "holds no class folders"),
    ],
)
def test_bad_layouts(tmp_path, make, msg):
    root = make(tmp_path / "d")
    with pytest.raises(UserError, match=msg):
        _load(root, tmp_path / "cache")


def test_mixed_image_sizes(tmp_path):
    root = _folder(tmp_path / "insects")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "ant" / "0009.png")
    with pytest.raises(UserError, match="share one size"):
        _load(root, tmp_path / "cache")


def test_test_subset_takes_the_first_images_of_each_class():
    ds = make_synthetic(SyntheticConfig(test_per_class=10))
    idx = eval_subset(ds, 3)
    assert np.bincount(ds.y_test[idx]).tolist() == [3] * 10
    assert len(eval_subset(ds, 0)) == 100
    with pytest.raises(UserError, match="asks for 11"):
        eval_subset(ds, 11)


# ----------------------------------------------------------------------------- channels, size, classes


def _gray_folder(root, classes=("zero", "one"), n=3, size=28, mode="L"):
    for split in ("train", "test"):
        for i, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True)
            for j in range(n):
                a = np.full((size, size), 10 * (i + 1) + j, np.uint8)
                Image.fromarray(a, mode=mode).save(d / f"{j}.png")
    return root


def test_grayscale_images_keep_one_channel(tmp_path):
    ds = _load(_gray_folder(tmp_path / "g"), tmp_path / "cache")
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.image_shape == (1, 28, 28)
    assert ds.classes == ("one", "zero") and ds.x_train[1, 0, 0, 0] == 21  # "one", image 1, its own grey level
    assert ds.summary()["image_shape"] == [1, 28, 28]


def test_a_colour_image_among_grayscale_makes_a_colour_dataset(tmp_path):
    root = _gray_folder(tmp_path / "g")
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(root / "train" / "zero" / "9.png")
    ds = _load(root, tmp_path / "cache")
    assert ds.x_train.shape == (7, 28, 28, 3) and ds.x_test.shape[3] == 3
    gray = ds.x_train[0]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_pad_and_resize(tmp_path):
    from advimb.data.dataset import transform

    ds = _load(_gray_folder(tmp_path / "g"), tmp_path / "cache")
    padded = transform(ds, pad=2)
    assert padded.x_train.shape == (6, 32, 32, 1) and padded.image_shape == (1, 32, 32)
    assert (padded.x_train[:, :2] == 0).all() and (padded.x_train[:, :, -2:] == 0).all()
    assert np.array_equal(padded.x_train[:, 2:-2, 2:-2], ds.x_train)
    assert padded.fingerprint == ds.fingerprint and padded.summary()["source_image_shape"] == [1, 28, 28]
    resized = transform(ds, resize=16)
    assert resized.x_test.shape == (6, 16, 16, 1)
    assert np.array_equal(resized.x_train[:, :, :, 0], ds.x_train[:, :16, :16, 0])  # constant images stay constant
    both = transform(ds, resize=24, pad=4)
    assert both.image_shape == (1, 32, 32)
    cfg = DataConfig(source="folder", dir=str(tmp_path / "g"), cache_dir=str(tmp_path / "cache"), pad=2)
    forget_datasets()
    assert load_dataset(cfg).image_shape == (1, 32, 32)


def test_one_class_is_refused(tmp_path):
    root = _folder(tmp_path / "solo", classes=("cat",))
    with pytest.raises(UserError, match=r"holds 1 class \(cat\); .* needs at least two"):
        _load(root, tmp_path / "cache")


def test_size_advice_names_the_setting():
    from advimb.models import size_advice

    assert size_advice(28, 28) == "set data.pad = 2 (28x28 -> 32x32) or data.resize = 32"
    assert size_advice(29, 29) == "set data.resize = 32 (29x29 -> 32x32)"
    assert size_advice(28, 20) == "set data.resize = 32 (28x20 -> 32x32)"
