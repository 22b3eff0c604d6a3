"""Per-image preprocessing and training augmentation (DESIGN section 1).

Images stay uint8 from source to batch: dequantization and the `n_bits`
reduction belong to the model, so the pipeline never rescales pixel values.

Augmentations (`DataConfig.augmentation`):
  "none":        nothing.
  "cifar":       reflect-pad 4, random crop back to H x W, random horizontal
                 flip (training only; the authors' CIFAR-10 setting).
  "flip":        random horizontal flip (training only; CelebA-HQ).
  "center_crop": largest centred square, resized to `image_size`; applied to
                 train and test alike, it is deterministic (LSUN).

Random choices are stateless: each image's seed is derived from the run seed
and the image's position in the stream, so a restored iterator or a rerun
with the same seed reproduces the same augmented images.
"""

import tensorflow as tf

AUGMENTATIONS = ("none", "cifar", "flip", "center_crop")
CIFAR_PADDING = 4

# Salts that separate the random streams drawn from one user seed.
_AUGMENT_SALT = 0x5A17
_SHUFFLE_SALT = 0x0B5E


def check_augmentation(name: str) -> str:
  if name not in AUGMENTATIONS:
    raise ValueError(f"Unknown augmentation {name!r}; allowed: "
                     f"{', '.join(AUGMENTATIONS)}.")
  return name


def _mix(seed: int, salt: int) -> int:
  """A 63-bit stream key from a user seed and a salt (splitmix-style)."""
  value = (int(seed) * 0x9E3779B97F4A7C15 + salt) % (1 << 64)
  value ^= value >> 31
  return value % (1 << 63)


def shuffle_key(seed: int) -> int:
  """First half of the stateless seed that permutes each epoch."""
  return _mix(seed, _SHUFFLE_SALT)


def augment_key(seed: int) -> int:
  """First half of the stateless seed of each image's augmentation."""
  return _mix(seed, _AUGMENT_SALT)


def center_crop_and_resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """Crops the largest centred square of `image` and resizes it.

  Args:
    image: uint8 [h, w, C], any h and w.
    image_size: side S of the output.

  Returns:
    uint8 [S, S, C]. A square input of side S comes back unchanged; larger
    inputs are downsampled with an antialiased bilinear filter.
  """
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  side = tf.minimum(height, width)
  top = (height - side) // 2
  left = (width - side) // 2
  square = image[top:top + side, left:left + side, :]

  def resize():
    resized = tf.image.resize(tf.cast(square, tf.float32),
                              [image_size, image_size], method="bilinear",
                              antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

  # Skipping the resize keeps already-sized images bit-exact.
  return tf.cond(tf.equal(side, image_size), lambda: square, resize)


def augment(image: tf.Tensor, augmentation: str, seed: tf.Tensor) -> tf.Tensor:
  """Applies the random part of `augmentation` to one image.

  Args:
    image: uint8 [H, W, C] with a static shape.
    augmentation: one of AUGMENTATIONS; "none" and "center_crop" have no
      random part and return `image`.
    seed: int64 [2] stateless seed of this image.

  Returns:
    uint8 [H, W, C].
  """
  check_augmentation(augmentation)
  if augmentation in ("none", "center_crop"):
    return image
  crop_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=2))
  if augmentation == "cifar":
    pad = CIFAR_PADDING
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    image = tf.image.stateless_random_crop(padded, tf.shape(image),
                                           seed=crop_seed)
  return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
