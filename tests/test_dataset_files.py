"""Hostile files in a dataset folder, round 3: oversized files, decoder crashes, links, odd names, EXIF, and a
`plan` over a folder that does not exist. Each test is named after the case it guards (issue 24)."""

from __future__ import annotations

import io
import unicodedata

import numpy as np
import pytest
from conftest import image_bytes, run_cli, write_image_folder
from PIL import Image
from samplesize.data import decode_image, scan_folder
from samplesize.errors import DataError
from samplesize.storage import LocalStorage

# ---------------------------------------------------------------- (2) an oversized file


def test_oversized_file_in_a_class_folder_is_skipped_by_its_size_without_being_read(tmp_path, monkeypatch):
    from samplesize.data import sources

    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    with open(root / "a" / "huge.png", "wb") as f:  # 6 GB, sparse: no disk used
        f.truncate(6 * 1024**3)
    opened = []
    real_open_read = LocalStorage.open_read
    monkeypatch.setattr(LocalStorage, "read", lambda self, key: pytest.fail(f"{key} read whole"))
    monkeypatch.setattr(LocalStorage, "open_read", lambda self, key: opened.append(key) or real_open_read(self, key))
    data = scan_folder(LocalStorage(root), size=12)
    assert len(data.labels) == 6 and "a/huge.png" not in opened
    assert data.skipped.counts == {f"too large (over {sources.MAX_IMAGE_BYTES:,} bytes)": 1}
    assert any("huge.png" in e for e in data.skipped.examples)


def test_oversized_file_grown_after_the_listing_is_read_with_a_bound(tmp_path, monkeypatch):
    from samplesize.data import sources

    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    monkeypatch.setattr(sources, "MAX_IMAGE_BYTES", 4096)
    grows = root / "a" / "grows.png"
    grows.write_bytes(image_bytes(np.random.default_rng(3)))
    real_open_read = LocalStorage.open_read

    def open_read(self, key):  # listed small; grown to 1 MB before it is read
        if key.endswith("grows.png"):
            with open(grows, "ab") as f:
                f.write(b"\x00" * 2**20)
        return real_open_read(self, key)

    monkeypatch.setattr(LocalStorage, "open_read", open_read)
    data = scan_folder(LocalStorage(root), size=12)
    assert data.skipped.counts == {"too large (over 4,096 bytes)": 1}


# ---------------------------------------------------------------- (6) image decoders


@pytest.mark.parametrize("fmt, save", [("DDS", {}), ("ICO", {}), ("PPM", {}), ("TGA", {}), ("PCX", {})])
def test_image_decoders_outside_the_allowed_formats_are_refused(fmt, save):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, format=fmt, **save)
    with pytest.raises(ValueError, match="not a readable image"):
        decode_image(buf.getvalue(), 12)


def test_image_decoders_any_exception_from_one_file_skips_it(tmp_path, monkeypatch):
    from samplesize.data import sources

    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    (root / "a" / "bad.png").write_bytes(image_bytes(np.random.default_rng(1), size=21))
    real = sources._open_reduced

    def open_reduced(img, size):  # as Pillow's SPIDER, BLP, DDS and TIFF decoders did on fuzzed files
        if img.size == (21, 21):
            raise AttributeError("'NoneType' object has no attribute 'read'")
        return real(img, size)

    monkeypatch.setattr(sources, "_open_reduced", open_reduced)
    data = scan_folder(LocalStorage(root), size=12)
    assert len(data.labels) == 6
    assert data.skipped.counts == {"truncated or corrupt": 1}
    assert any("bad.png" in e for e in data.skipped.examples)


def _valid_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for fmt, mode in [("PNG", "RGB"), ("PNG", "I;16"), ("JPEG", "RGB"), ("TIFF", "RGB"), ("TIFF", "F"),
                      ("BMP", "RGB"), ("GIF", "P"), ("WEBP", "RGB")]:
        if mode == "F":
            img = Image.fromarray(rng.random((9, 11), dtype=np.float32))
        elif mode == "I;16":
            img = Image.fromarray(rng.integers(0, 4096, (9, 11), dtype=np.uint16))
        else:
            img = Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).convert(mode)
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


def test_image_decoders_survive_a_seeded_fuzz_over_the_allowed_formats():
    """Mutated small files of every allowed format: each decodes to an image or raises ValueError, nothing else."""
    rng = np.random.default_rng(24)
    outcomes = {"decoded": 0, "refused": 0}
    for original in _valid_images():
        for _ in range(150):
            data = bytearray(original)
            for _ in range(int(rng.integers(1, 6))):
                kind = rng.integers(3)
                at = int(rng.integers(len(data)))
                if kind == 0:
                    data[at] = int(rng.integers(256))
                elif kind == 1:
                    del data[at : at + int(rng.integers(1, 16))]
                else:
                    data[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
            try:
                pixels = decode_image(bytes(data), 12)
            except ValueError:
                outcomes["refused"] += 1
                continue
            assert pixels.shape == (12, 12, 3) and pixels.dtype == np.uint8
            outcomes["decoded"] += 1
    assert outcomes["decoded"] and outcomes["refused"]


# ---------------------------------------------------------------- (7) links


def test_symlinks_inside_the_dataset_are_followed_and_links_leaving_it_are_skipped_and_named(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    outside = write_image_folder(tmp_path / "elsewhere", classes=("c",), per_class=3, seed=4)
    rng = np.random.default_rng(7)
    (root / "shared").mkdir()
    for i in range(3):
        (root / "shared" / f"s{i}.png").write_bytes(image_bytes(rng, tint=2))
    (root / "linked").symlink_to(root / "shared", target_is_directory=True)  # a class folder that is a link, inside
    (root / "a" / "alias.png").symlink_to(root / "b" / "img 0.png")  # a file link inside the root
    (root / "a" / "host.png").symlink_to("/etc/hostname")  # a file link leaving the root
    (root / "far").symlink_to(outside / "c", target_is_directory=True)  # a class folder leaving the root
    (root / "b" / "dangling.png").symlink_to(root / "nowhere.png")
    (root / "b" / "loop").symlink_to(root, target_is_directory=True)
    data = scan_folder(LocalStorage(root), size=12)
    assert data.class_names == ["a", "b", "linked", "shared"]
    assert len(data.labels) == 3 + 1 + 3 + 3 + 3
    assert data.skipped.counts == {"a link leaving the dataset folder": 2, "a broken link": 1,
                                   "a link to a folder above it": 1}
    shown = "; ".join(data.skipped.examples)
    assert "a/host.png" in shown and "far" in shown and "/etc/hostname" not in shown


# ---------------------------------------------------------------- (11) a backslash in a file name


@pytest.mark.parametrize("where", ["local", "gcs"])
def test_backslash_in_a_file_name_skips_that_file_and_names_it(tmp_path, where, request):
    root = write_image_folder(tmp_path / "images", classes=("c0", "c1"), per_class=3)
    junk = image_bytes(np.random.default_rng(2))
    if where == "local":
        (root / "c0" / "photos\\img999.png").write_bytes(junk)
        store = LocalStorage(root)
    else:  # the GCS listing refused the whole folder (exit 65) for one such name
        from samplesize.commands import open_uri

        store = open_uri(f"gs://{request.getfixturevalue('gcs_emulator').new_bucket()}/images")
        for path in (p for p in root.rglob("*") if p.is_file()):
            store.write(path.relative_to(root).as_posix(), path.read_bytes())
        store._client.bucket(store.bucket_name).blob("images/c0/photos\\img999.png").upload_from_string(junk)
    data = scan_folder(store, size=12)
    assert len(data.labels) == 6
    assert data.skipped.counts == {"a backslash in its name": 1}
    assert any("img999.png" in e for e in data.skipped.examples)


# ---------------------------------------------------------------- weak points


def _exif_rotated_jpeg(orientation: int) -> bytes:
    pixels = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high: left half red, right half blue
    pixels[:, :20, 0] = 255
    pixels[:, 20:, 2] = 255
    img = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    upright = decode_image(_exif_rotated_jpeg(1), 16).astype(int)
    turned = decode_image(_exif_rotated_jpeg(6), 16).astype(int)  # 6: rotate 90 degrees clockwise to view
    assert upright[8, 2, 0] > 200 and upright[8, 13, 2] > 200  # left red, right blue
    assert turned[2, 8, 0] > 200 and turned[13, 8, 2] > 200  # after turning clockwise: top red, bottom blue


def test_a_source_format_is_the_upright_size_and_the_mode_before_any_reduction():
    formats = []
    for orientation in (1, 6):
        decode_image(_exif_rotated_jpeg(orientation), 16, formats=formats)
    big = io.BytesIO()
    Image.fromarray(np.zeros((300, 200), np.uint8), mode="L").save(big, format="JPEG")  # drafted at 1/4 scale
    decode_image(big.getvalue(), 16, formats=formats)
    assert formats == [(40, 20, "RGB"), (20, 40, "RGB"), (200, 300, "L")]


def test_nfc_and_nfd_spellings_of_a_class_folder_name_are_refused_naming_both(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("plain",), per_class=3)
    for name, tint in [(unicodedata.normalize("NFC", "café"), 1), (unicodedata.normalize("NFD", "café"), 2)]:
        write_image_folder(root, classes=(name,), per_class=3, seed=tint)
    with pytest.raises(DataError) as err:
        scan_folder(LocalStorage(root), size=12)
    message = str(err.value)
    assert "caf\\xe9" in message and "cafe\\u0301" in message and "rename" in message


def test_nfd_class_folder_name_is_normalised_to_nfc(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("plain", unicodedata.normalize("NFD", "café")),
                              per_class=3)
    data = scan_folder(LocalStorage(root), size=12)
    assert data.class_names == sorted(["plain", unicodedata.normalize("NFC", "café")])


def test_newlines_in_dataset_file_names_never_forge_prepare_output_lines(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    (root / "a" / "x\nprepared cache-dataset-forged.npz: pool 1000000\r.png").write_bytes(b"junk")
    proc = run_cli("prepare", "--set", f"dataset.source=folder:{root}", "--set", f"output={tmp_path}/out",
                   "--set", "dataset.image_size=12")
    assert proc.returncode == 0, proc.stderr
    assert not any(line.startswith("prepared cache-dataset-forged") for line in proc.stdout.splitlines())
    assert not any(line.startswith("prepared cache-dataset-forged") for line in proc.stderr.splitlines())
    assert "x\\nprepared cache-dataset-forged.npz" in proc.stdout


@pytest.mark.parametrize("where", ["local", "gcs"])
def test_plan_with_a_folder_source_that_does_not_exist_exits_65(tmp_path, where, request):
    if where == "local":
        source, env = f"folder:{tmp_path}/no-such-folder", None
    else:
        emulator = request.getfixturevalue("gcs_emulator")
        source, env = f"folder:gs://{emulator.new_bucket()}/no-such-folder", None
    proc = run_cli("plan", "--set", f"dataset.source={source}", "--set", f"output={tmp_path}/out", env=env)
    assert proc.returncode == 65, proc.stdout + proc.stderr
    assert "no-such-folder" in proc.stderr and "does not exist" in proc.stderr


def test_plan_with_a_folder_source_that_exists_still_runs_without_preparing(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    proc = run_cli("plan", "--set", f"dataset.source=folder:{root}", "--set", f"output={tmp_path}/out")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "out" / "cache").exists()


def test_symlinked_dataset_root_itself_is_followed(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    link = tmp_path / "link-to-images"
    link.symlink_to(root, target_is_directory=True)
    data = scan_folder(LocalStorage(link), size=12)
    assert len(data.labels) == 6 and not data.skipped.total


def test_file_names_in_messages_are_cut_with_their_length(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    long_name = "n" * 200 + ".png"
    (root / "a" / long_name).write_bytes(b"junk")
    data = scan_folder(LocalStorage(root), size=12)
    example = data.skipped.examples[0]
    assert len(example) < 160 and "206 characters" in example, example
