"""Tests of tfglv.data.file_checks: damaged .npz and image files.

Each hostile file is one case of a list with the one line it must give.
"""

import io
import os
import struct
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from tfglv.data import file_checks

IMAGES = np.random.RandomState(0).randint(0, 256, (20, 16, 16, 3)).astype(
    np.uint8)


def npy_bytes(array, shape=None, dtype=None):
  """An .npy file of `array` whose header may claim another shape/dtype."""
  header = np.lib.format.header_data_from_array_1_0(array)
  if shape is not None:
    header["shape"] = shape
  if dtype is not None:
    header["descr"] = np.lib.format.dtype_to_descr(np.dtype(dtype))
  buffer = io.BytesIO()
  np.lib.format.write_array_header_1_0(buffer, header)
  buffer.write(array.tobytes())
  return buffer.getvalue()


def write_zip(path, members, compression=zipfile.ZIP_STORED):
  with zipfile.ZipFile(path, "w", compression) as archive:
    for name, content in members.items():
      archive.writestr(name, content)
  return str(path)


def _patched(path, patch):
  """Rewrites `path` with `patch(content, info of x_test.npy)` applied."""
  with zipfile.ZipFile(path) as archive:
    info = archive.getinfo("x_test.npy")
  content = bytearray(open(path, "rb").read())
  patch(content, info)
  with open(path, "wb") as f:
    f.write(content)
  return path


def with_flipped_byte(path):
  """`path` with a byte in the middle of member x_test's stored (or
  compressed) data flipped."""

  def flip(content, info):
    name_length, extra_length = struct.unpack(
        "<HH", content[info.header_offset + 26:info.header_offset + 30])
    data = info.header_offset + 30 + name_length + extra_length
    content[data + info.compress_size // 2] ^= 0xFF

  return _patched(path, flip)


def with_claimed_size(path, size):
  """`path` whose zip directory says member x_test holds `size` bytes."""

  def claim(content, info):
    struct.pack_into("<I", content, info.header_offset + 22, size)
    central = content.find(b"PK\x01\x02" + content[info.header_offset + 4:
                                                  info.header_offset + 6])
    while content[central + 46:central + 56] != b"x_test.npy":
      central = content.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", content, central + 24, size)

  return _patched(path, claim)


def hostile_npz_files(tmp_path):
  """(path, expected message) for each damaged or foreign .npz."""
  good = {"x_train.npy": npy_bytes(IMAGES), "x_test.npy": npy_bytes(IMAGES)}
  np.save(tmp_path / "single.npy", IMAGES)
  os.rename(tmp_path / "single.npy", tmp_path / "single.npz")
  (tmp_path / "text.npz").write_text("x_train,x_test\n1,2\n")
  (tmp_path / "empty.npz").write_bytes(b"")
  np.savez(tmp_path / "objects.npz",
           x_train=np.array([{"a": 1}], dtype=object), x_test=IMAGES)
  complete = open(write_zip(tmp_path / "whole.npz", good), "rb").read()
  (tmp_path / "cut.npz").write_bytes(complete[:len(complete) // 2])
  return [
      (with_flipped_byte(write_zip(tmp_path / "crc.npz", good)),
       "member 'x_test' is damaged: Bad CRC-32 for file 'x_test.npy'"),
      (with_flipped_byte(write_zip(tmp_path / "deflate.npz", good,
                                   zipfile.ZIP_DEFLATED)),
       "member 'x_test' is damaged: "),
      # The header and the zip directory agree on 100000 images (76.8 MB)
      # that the file does not hold.
      (with_claimed_size(write_zip(tmp_path / "claims.npz", dict(
          good, **{"x_test.npy": npy_bytes(IMAGES, (100000, 16, 16, 3))})),
                         128 + 100000 * 768),
       "member 'x_test' claims 76,800,128 bytes but stores 15,488; the file "
       "is damaged."),
      (write_zip(tmp_path / "huge.npz", dict(
          good, **{"x_train.npy": npy_bytes(IMAGES, (10**9, 16, 16, 3))})),
       "member 'x_train' claims shape (1000000000, 16, 16, 3) of uint8 "
       "(768,000,000,000 bytes of data) but stores 15,360"),
      (write_zip(tmp_path / "wide.npz", dict(
          good, **{"x_test.npy": npy_bytes(IMAGES, dtype=np.float64)})),
       "member 'x_test' claims shape (20, 16, 16, 3) of float64"),
      (write_zip(tmp_path / "deflated.npz", dict(
          good, **{"x_train.npy": npy_bytes(IMAGES, (40, 16, 16, 3))}),
                 zipfile.ZIP_DEFLATED),
       "member 'x_train' claims shape (40, 16, 16, 3)"),
      (write_zip(tmp_path / "noheader.npz",
                 dict(good, **{"x_train.npy": b"not an npy member"})),
       "member 'x_train' has no readable .npy header"),
      (str(tmp_path / "single.npz"),
       "is a single .npy array (np.save), not an .npz archive"),
      (str(tmp_path / "text.npz"), "is not a zip archive"),
      (str(tmp_path / "empty.npz"), "it is empty (0 bytes)"),
      (str(tmp_path / "cut.npz"), "Cannot read npz file"),
      (str(tmp_path / "objects.npz"),
       "member 'x_train' holds Python objects (dtype object)"),
  ]


def test_every_hostile_npz_gets_one_line_naming_file_and_member(tmp_path):
  cases = hostile_npz_files(tmp_path)
  for path, message in cases:
    with pytest.raises(ValueError) as error:
      with file_checks.NpzArchive(path) as archive:
        for name in archive.files:
          archive[name]  # pylint: disable=pointless-statement
    text = str(error.value)
    assert message in text and path in text, (path, text)
    assert "\n" not in text


def test_good_npz_files_read_as_np_load_reads_them(tmp_path):
  labels = np.arange(20, dtype=np.int64)
  for save in (np.savez, np.savez_compressed):
    path = str(tmp_path / f"{save.__name__}.npz")
    save(path, images=IMAGES, labels=labels, scalar=np.float32(2.5),
         fortran=np.asfortranarray(IMAGES[:, :, :, 0]))
    with file_checks.NpzArchive(path) as archive, np.load(path) as expected:
      assert sorted(archive.files) == sorted(expected.files)
      for name in expected.files:
        np.testing.assert_array_equal(archive[name], expected[name])
        assert archive.headers[name] == (expected[name].dtype,
                                         expected[name].shape)
      with pytest.raises(KeyError):
        archive["missing"]  # pylint: disable=pointless-statement


def encoded(fmt, seed=0):
  image = np.random.RandomState(seed).randint(0, 256, (12, 12, 3)).astype(
      np.uint8)
  encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
  return encode(image).numpy()


# (name, content, expected problem or None for a usable image)
IMAGE_FILES = [
    ("good.png", encoded("png"), None),
    ("good.jpg", encoded("jpg"), None),
    # Data after the image: the end marker is not last, but it decodes.
    ("appended.jpg", encoded("jpg") + b"\0" * 64, None),
    ("appended.png", encoded("png") + b"extra", None),
    ("text.png", b"just some text", "not a PNG or JPEG file"),
    ("zero.jpg", b"", "empty (0 bytes)"),
    ("cut.jpg", encoded("jpg")[:-100],
     "truncated JPEG (no end-of-image marker at its end"),
    ("cut_by_one.jpg", encoded("jpg")[:-1], "truncated JPEG"),
    ("cut.png", encoded("png")[:-30], "truncated PNG (no IEND chunk"),
    ("header_only.png", encoded("png")[:8], "truncated PNG"),
]


@pytest.mark.parametrize("name,content,problem", IMAGE_FILES)
def test_image_file_problem(tmp_path, name, content, problem):
  path = tmp_path / name
  path.write_bytes(content)
  found = file_checks.image_file_problem(str(path))
  if problem is None:
    assert found is None
  else:
    assert found is not None and problem in found, found


def test_an_unopenable_file_is_named_not_raised(tmp_path):
  os.symlink(tmp_path / "nowhere.png", tmp_path / "broken.png")
  assert file_checks.bad_image_files(str(tmp_path), ["broken.png"]) == {
      "broken.png": "cannot be opened (No such file or directory)"}
