"Data contracts: missing-data errors, train/val split, K-user grouping, tiles, image folders, loaders, real data."
import pickle
import numpy as np
import pytest
import torch
from PIL import Image

from kdd_semnoma.data import (CIFAR10, ArrayImages, ImageFolderDataset, MultiUserDataset, cifar10_from_npz,
                              get_dls, sample_tiles, train_val_split)


def _write_npz(path, n=40, size=8, seed=0):
    "A class-sorted fake export like train_jpeg_q75.npz; returns (images, labels)."
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), n // 10)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=images, labels=labels)
    return images, labels


# ---------- failure cases ----------

@pytest.mark.parametrize("split,fname", [("train", "train_jpeg_q75.npz"), ("test", "test_jpeg_q75.npz"),
                                         ("test-exact", "test_exact_first932.npz")])
def test_npz_missing_names_file_and_env(tmp_path, monkeypatch, split, fname):
    monkeypatch.setenv("KDD_SEMNOMA_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e: cifar10_from_npz(split)
    msg = str(e.value)
    assert fname in msg and "KDD_SEMNOMA_DATA" in msg and str(tmp_path / "cifar10") in msg


def test_npz_bad_split():
    with pytest.raises(ValueError, match="test-exact"): cifar10_from_npz("valid")


def test_npz_wrong_keys(tmp_path):
    np.savez(tmp_path / "test_jpeg_q75.npz", x=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(KeyError, match="expected 'images'"): cifar10_from_npz("test", tmp_path)


def test_cifar10_missing_names_path_and_download(tmp_path):
    with pytest.raises(FileNotFoundError) as e: CIFAR10("train", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "download=True" in msg and "kdd_train --download" in msg


@pytest.mark.parametrize("k", [0, -1])
def test_bad_n_users(k):
    with pytest.raises(ValueError, match="n_users must be >= 1"): MultiUserDataset(sample_tiles(n=4), k)


def test_too_few_images_for_k():
    with pytest.raises(ValueError, match="fewer than n_users=5"): MultiUserDataset(sample_tiles(n=4), 5)


def test_bad_mode_and_name():
    with pytest.raises(ValueError, match="'fixed'"): MultiUserDataset(sample_tiles(n=4), 2, mode="epoch")
    with pytest.raises(ValueError, match="'tiles'"): get_dls("mnist", 2, 4)


def test_array_images_validates():
    with pytest.raises(ValueError, match=r"uint8 \(N, H, W, 3\)"): ArrayImages(np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="labels must be"): ArrayImages(np.zeros((2, 8, 8, 3), np.uint8), [1, 2, 3])


def test_train_val_split_contract():
    tv = train_val_split(100, 10, seed=3)
    assert len(tv.train) == 90 and len(tv.valid) == 10 and torch.cat(tv).unique().numel() == 100
    assert torch.equal(train_val_split(100, 10, seed=3).valid, tv.valid)
    with pytest.raises(ValueError, match="n_val=0"): train_val_split(100, 0)


# ---------- npz and torchvision success paths on fake files ----------

def test_npz_split_is_seeded_permutation(tmp_path):
    images, labels = _write_npz(tmp_path / "train_jpeg_q75.npz")
    tr, va = cifar10_from_npz("train", tmp_path, n_val=8), cifar10_from_npz("val", tmp_path, n_val=8)
    assert (len(tr), len(va)) == (32, 8)
    assert sorted(tr.indices.tolist() + va.indices.tolist()) == list(range(40))
    assert va.indices.tolist() != list(range(32, 40))                         # not the class-sorted tail
    assert torch.equal(cifar10_from_npz("val", tmp_path, n_val=8).indices, va.indices)
    assert not torch.equal(cifar10_from_npz("val", tmp_path, n_val=8, seed=1).indices, va.indices)
    j = int(va.indices[3]); x, y = va[3]
    assert torch.equal(x, torch.from_numpy(images[j]).permute(2, 0, 1).float() / 255) and int(y) == labels[j]


def test_cifar10_wrapper_on_fake_pickles(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tvc
    base = tmp_path / "cifar-10-batches-py"; base.mkdir()
    rng = np.random.default_rng(0)
    def batch(n): return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        (base / name).write_bytes(pickle.dumps(batch(10)))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": ["c%d" % i for i in range(10)]}))
    monkeypatch.setattr(tvc.CIFAR10, "_check_integrity", lambda self: True)   # fake files fail the md5 check
    monkeypatch.setattr(tvc, "check_integrity", lambda *a, **k: True)
    tr, va, te = (CIFAR10(s, root=tmp_path, n_val=5) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (45, 5, 10)
    assert set(tr.indices.tolist()).isdisjoint(va.indices.tolist())
    x, y = te[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    raw = pickle.loads((base / "test_batch").read_bytes())
    assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(raw["data"][0].reshape(3, 32, 32)))
    assert int(y) == raw["labels"][0] and te.classes[0] == "c0"


# ---------- grouping ----------

def test_fixed_grouping_reproducible_and_disjoint():
    ds = sample_tiles(n=50)
    a, b = MultiUserDataset(ds, 3, mode="fixed", seed=5), MultiUserDataset(ds, 3, mode="fixed", seed=5)
    assert torch.equal(a.groups, b.groups) and a.groups.shape == (16, 3)
    assert a.groups.flatten().unique().numel() == 48                      # no image reused
    a.set_epoch(7); assert torch.equal(a.groups, b.groups)                # fixed ignores the epoch
    assert not torch.equal(MultiUserDataset(ds, 3, mode="fixed", seed=6).groups, b.groups)


def test_random_grouping_changes_per_epoch_reproducibly():
    ds = sample_tiles(n=40)
    m = MultiUserDataset(ds, 2, mode="random", seed=1)
    g0 = m.groups.clone(); m.set_epoch(1); g1 = m.groups.clone()
    assert not torch.equal(g0, g1)
    assert sorted(g1.flatten().tolist()) == list(range(40))
    m.set_epoch(0); assert torch.equal(m.groups, g0)


def test_group_item_stacks_users():
    ds = sample_tiles(n=10)
    m = MultiUserDataset(ds, 2, mode="sequential")
    x, y = m[2]
    assert x.shape == (2, 3, 32, 32) and y.shape == (2,) and y.dtype == torch.long
    assert torch.equal(x[0], ds[4][0]) and torch.equal(x[1], ds[5][0]) and int(y[1]) == int(ds[5][1])


def test_grouping_over_plain_dataset():
    "Any dataset of (image, int label) works, not only ArrayImages."
    ds = [(torch.full((3, 4, 4), i / 10), i) for i in range(7)]
    x, y = MultiUserDataset(ds, 3, mode="sequential")[1]
    assert len(MultiUserDataset(ds, 3)) == 2 and y.tolist() == [3, 4, 5] and torch.allclose(x[0], torch.full((3, 4, 4), 0.3))


# ---------- tiles ----------

def test_tiles_deterministic_and_shaped():
    a, b = sample_tiles(), sample_tiles()
    assert len(a) == 128 and torch.equal(a.indices, b.indices) and torch.equal(a[17][0], b[17][0])
    s = sample_tiles(16, n=6, per_side=2)
    assert len(s) == 6 and s[0][0].shape == (3, 16, 16)
    assert a[0][0].std() > 0.01                                           # a real picture, not a flat patch
    with pytest.raises(ValueError, match="raise per_side"): sample_tiles(n=129)


# ---------- image folders ----------

def test_image_folder(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i, (c, wh) in enumerate(zip(colours, [(40, 60), (64, 64), (50, 30)])):
        Image.new("RGB", wh, c).save(tmp_path / f"im{i}.png")
    (tmp_path / "readme.txt").write_text("skip me")
    ds = ImageFolderDataset(tmp_path, 32)
    assert len(ds) == 3 and [p.name for p in ds.files] == ["im0.png", "im1.png", "im2.png"]
    for i, c in enumerate(colours):
        x, y = ds[i]
        assert x.shape == (3, 32, 32) and int(y) == -1
        assert torch.allclose(x.mean((1, 2)), torch.tensor(c) / 255, atol=1e-3)
    with pytest.raises(FileNotFoundError, match="no images"): ImageFolderDataset(tmp_path, 32, exts=(".jpg",))
    with pytest.raises(FileNotFoundError, match="does not exist"): ImageFolderDataset(tmp_path / "nope", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"): ImageFolderDataset(tmp_path / "empty", 32)


def test_get_dls_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(12): Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / f"{i:02d}.png")
    dls = get_dls("folder", 2, 3, root=tmp_path, size=16)
    assert [len(dl.dataset.ds) for dl in dls] == [8, 2, 2]
    x, y = next(iter(dls.train))
    assert x.shape == (3, 2, 3, 16, 16) and y.shape == (3, 2) and (y == -1).all()
    with pytest.raises(ValueError, match="too few"): get_dls("folder", 5, 3, root=tmp_path, size=16)


# ---------- loaders ----------

def test_get_dls_tiles_contract():
    dls = get_dls("tiles", 2, 4)
    x, y = next(iter(dls.train))
    assert x.shape == (4, 2, 3, 32, 32) and y.shape == (4, 2) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    v1, v2 = next(iter(dls.valid))[0], next(iter(get_dls("tiles", 2, 4).valid))[0]
    assert torch.equal(v1, v2)
    assert dls.train.dataset.mode == "random" and dls.valid.dataset.mode == "fixed" and dls.test.dataset.mode == "fixed"
    with pytest.raises(ValueError, match="32x32"): get_dls("cifar10", 2, 4, size=64)


# ---------- real data ----------

@pytest.mark.data
def test_real_shared_data(real_data, monkeypatch):
    monkeypatch.setenv("KDD_SEMNOMA_DATA", str(real_data))
    ex = cifar10_from_npz("test-exact")
    assert len(ex) == 932 and tuple(ex.images.shape) == (932, 32, 32, 3) and ex.images.dtype == torch.uint8
    assert ex.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]      # official test order
    te = cifar10_from_npz("test")
    assert len(te) == 10000 and torch.bincount(te.labels).tolist() == [1000] * 10
    dls = get_dls("cifar10-npz", 2, 8)
    assert [len(dl.dataset) for dl in dls] == [22500, 2500, 466]
    x, y = next(iter(dls.valid))
    assert x.shape == (8, 2, 3, 32, 32) and y.shape == (8, 2)
    assert torch.equal(dls.valid.dataset.groups, get_dls("cifar10-npz", 2, 8).valid.dataset.groups)
    faces = ImageFolderDataset(real_data / "faces256", 256)
    assert len(faces) == 11 and faces[0][0].shape == (3, 256, 256)
