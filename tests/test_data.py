import numpy as np
import pytest
from PIL import Image

import dfd_utils as du
from dfd_utils.data import DataError, resolve_cifake

from conftest import fake_image, jpeg_bytes, make_cifake, zip_folder


def test_folder_and_zip_give_the_same_images(cifake_folder, cifake_zip):
    from_folder = du.load_cifake("train", cifake_folder, workers=1)
    from_zip = du.load_cifake("train", cifake_zip, workers=2)
    assert from_folder.images.shape == (48, 32, 32, 3) and from_folder.images.dtype == np.uint8
    assert (from_folder.n_real, from_folder.n_fake) == (24, 24)
    np.testing.assert_array_equal(from_folder.images, from_zip.images)
    np.testing.assert_array_equal(from_folder.ids, from_zip.ids)
    assert set(from_zip.labels[np.char.find(from_zip.ids.astype(str), "/FAKE/") >= 0]) == {1}


def test_pixels_match_pillow(cifake_folder):
    test = du.load_cifake("test", cifake_folder)
    index = 3
    expected = np.asarray(Image.open(cifake_folder / str(test.ids[index])).convert("RGB"))
    np.testing.assert_array_equal(test.images[index], expected)


def test_cache_is_used_and_invalidated(tmp_path, isolated_paths):
    source = make_cifake(tmp_path / "src", n_per_class=4)
    first = du.load_folder(source, "test")
    cached = list((isolated_paths / "cache").glob("*.npz"))
    assert len(cached) == 1
    again = du.load_folder(source, "test")
    np.testing.assert_array_equal(first.images, again.images)
    (source / "test" / "REAL" / "extra.jpg").write_bytes(jpeg_bytes(fake_image(np.random.default_rng(1), 0)))
    changed = du.load_folder(source, "test")
    assert changed.n_real == first.n_real + 1
    assert len(list((isolated_paths / "cache").glob("*.npz"))) == 2


def test_subsets_are_deterministic_and_stratified(cifake_folder):
    train = du.load_cifake("train", cifake_folder)
    a, b = train.per_class(5, seed=3), train.per_class(5, seed=3)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert (a.n_real, a.n_fake) == (5, 5)
    assert not np.array_equal(a.ids, train.per_class(5, seed=4).ids)
    fit, val = train.split(0.25, seed=0)
    assert (val.n_real, val.n_fake) == (6, 6) and len(fit) == 36
    assert not set(fit.ids) & set(val.ids)


def test_deduplicate_removes_leaked_and_repeated(cifake_folder):
    train, test = du.load_cifake("train", cifake_folder), du.load_cifake("test", cifake_folder)
    clean = du.deduplicate(test, train)
    assert len(clean) == len(test) - 2 and clean.n_fake == test.n_fake - 2
    assert not np.isin(clean.digests, train.digests).any()
    train_clean = du.deduplicate(train)
    assert len(train_clean) == len(train) - 1  # the one repeat within train/FAKE


def test_generic_folder_without_splits_and_split_required(tmp_path):
    make_cifake(tmp_path / "cf", n_per_class=3)
    generic = du.load_folder(tmp_path / "cf" / "test")
    assert (generic.n_real, generic.n_fake) == (3, 3)
    with pytest.raises(DataError, match="several splits"):
        du.load_folder(tmp_path / "cf")


# ------------------------------------------------------------------------------- bad input
@pytest.fixture
def small(tmp_path):
    return make_cifake(tmp_path / "small", n_per_class=3, leaked=0)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        du.load_folder(tmp_path / "nowhere", "test")


def test_missing_class_folder(small):
    import shutil
    shutil.rmtree(small / "test" / "FAKE")
    with pytest.raises(DataError, match=r"No images in a FAKE/ folder under .*small/test"):
        du.load_folder(small, "test")


def test_empty_class_folder(small):
    for path in (small / "test" / "REAL").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="REAL/"):
        du.load_folder(small, "test")


def test_wrong_split_name(small):
    with pytest.raises(DataError, match="splits found"):
        du.load_folder(small, "validation")


@pytest.mark.parametrize("as_zip", [False, True])
def test_truncated_image_fails_naming_the_file_then_skips_on_request(small, tmp_path, as_zip):
    bad = small / "test" / "FAKE" / "1 (2).jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    source = zip_folder(small, tmp_path / "s.zip") if as_zip else small
    with pytest.raises(DataError, match=r"1 \(2\)\.jpg: corrupt or truncated"):
        du.load_folder(source, "test")
    loaded = du.load_folder(source, "test", skip_invalid=True)
    assert len(loaded) == 5 and loaded.skipped[0][0] == "test/FAKE/1 (2).jpg"
    assert loaded.describe()["n_skipped"] == 1


def test_non_image_file(small):
    (small / "test" / "REAL" / "notes.txt").write_text("not a picture")
    with pytest.raises(DataError, match="notes.txt: not an image file"):
        du.load_folder(small, "test")


def test_garbage_with_image_suffix(small):
    (small / "test" / "REAL" / "x.jpg").write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="x.jpg: corrupt"):
        du.load_folder(small, "test")


def test_hidden_files_are_ignored(small):
    (small / "test" / "REAL" / ".DS_Store").write_bytes(b"junk")
    assert len(du.load_folder(small, "test")) == 6


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_non_rgb_modes_need_convert_mode(small, mode):
    image = fake_image(np.random.default_rng(0), 0).convert(mode)
    image.save(small / "test" / "REAL" / "odd.png")
    with pytest.raises(DataError, match=f"odd.png: mode {mode}, not RGB"):
        du.load_folder(small, "test")
    loaded = du.load_folder(small, "test", convert_mode=True)
    assert loaded.images.shape == (7, 32, 32, 3)


def test_other_size_needs_size_parameter(small):
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(small / "test" / "FAKE" / "big.png")
    with pytest.raises(DataError, match="big.png: size 64x48, expected 32x32"):
        du.load_folder(small, "test")
    loaded = du.load_folder(small, "test", size=16)
    assert loaded.images.shape == (7, 16, 16, 3)


def test_not_a_zip(tmp_path):
    (tmp_path / "data.zip").write_text("hello")
    with pytest.raises(DataError, match="not a zip"):
        du.load_folder(tmp_path / "data.zip", "test")


# ------------------------------------------------------------------------------- resolution
def test_resolution_order(tmp_path, monkeypatch, cifake_zip):
    monkeypatch.setenv("DFD_ROOT", str(tmp_path / "project"))
    monkeypatch.setenv("DFD_SHARED", str(tmp_path / "shared"))
    monkeypatch.delenv("DFD_CIFAKE", raising=False)
    with pytest.raises(DataError, match="CIFAKE not found.*DFD_CIFAKE"):
        resolve_cifake()
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (shared / "cifake.zip").write_bytes(cifake_zip.read_bytes())
    assert resolve_cifake() == shared / "cifake.zip"
    local = make_cifake(tmp_path / "project" / "data" / "cifake", n_per_class=3)
    assert resolve_cifake() == local
    monkeypatch.setenv("DFD_CIFAKE", str(cifake_zip))
    assert resolve_cifake() == cifake_zip
    assert resolve_cifake(str(local)) == local
    monkeypatch.setenv("DFD_CIFAKE", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="DFD_CIFAKE"):
        resolve_cifake()


def test_unknown_cifake_split(cifake_folder):
    with pytest.raises(DataError, match="splits 'train' and 'test'"):
        du.load_cifake("val", cifake_folder)


# ------------------------------------------------------------------------------- loaders
def test_loader_batches_and_augmentation(cifake_folder):
    from dfd_utils.loaders import make_loader

    train = du.load_cifake("train", cifake_folder)
    images, labels = next(iter(make_loader(train, batch_size=16)))
    assert images.shape == (16, 3, 32, 32) and images.dtype.is_floating_point
    assert float(images.min()) >= 0 and float(images.max()) <= 1 and labels.dtype.is_signed
    first = next(iter(make_loader(train, 16, shuffle=True, augment="flip_shift", seed=1)))[0]
    second = next(iter(make_loader(train, 16, shuffle=True, augment="flip_shift", seed=1)))[0]
    assert (first == second).all()
    with pytest.raises(ValueError, match="augment"):
        make_loader(train, augment="rotate")


# ------------------------------------------------------------------------------- real data
@pytest.mark.cifake
def test_real_cifake_counts_and_leakage(real_cifake):
    from dfd_utils.methods import audit

    train, test = du.load_cifake("train", real_cifake), du.load_cifake("test", real_cifake)
    assert (train.n_real, train.n_fake, test.n_real, test.n_fake) == (50000, 50000, 10000, 10000)
    summary = audit.duplicate_summary(train, test)
    assert summary["test_files_in_train"] == {"REAL": 0, "FAKE": 378}
    assert summary["pairs_total"] == 1336
    assert summary["unique_images"] == {"train/REAL": 50000, "train/FAKE": 49080,
                                        "test/REAL": 10000, "test/FAKE": 9962}
    assert len(du.deduplicate(test, train).ids) == 20000 - 378 - 38


@pytest.mark.parametrize("damage", ["truncate", "not a zip"])
def test_an_unreadable_cache_is_rebuilt_with_a_note(cifake_folder, capsys, damage):
    first = du.load_folder(cifake_folder, "test")
    (cache_file,) = list(du.paths.cache_dir().glob("*.npz"))
    data = cache_file.read_bytes()
    cache_file.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"garbage, not a zip")
    again = du.load_folder(cifake_folder, "test")
    assert "unreadable cache" in capsys.readouterr().out
    np.testing.assert_array_equal(first.images, again.images)
    assert du.load_folder(cifake_folder, "test").ids.tolist() == first.ids.tolist()  # and the rebuilt cache reads
