"""Event encoders: MNIST-family images [N, H, W] (pixels in [0, 1]) to spike trains
[T, N, ...] of 0/1 (or ±1 events) over T time steps, offline.

- :func:`rate`: each pixel fires with probability ``gain`` × intensity at every step
  (Bernoulli; drawn from a generator, which snnTorch's ``spikegen.rate`` does not take).
- :func:`latency`: each pixel fires once, brighter pixels earlier (snnTorch's
  ``spikegen.latency``, linear code over the whole window).
- :func:`saccades`: the image is moved along a small closed path of translations, one per
  step, and an event camera's ON / OFF events are the brightness changes beyond a threshold
  (snnTorch's ``spikegen.delta``): synthetic saccades, as the N-MNIST recordings made with a
  moving sensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memcim._errors import check_count, check_generator, is_real, require

#: One closed saccade cycle: right, down, left, up (pixels per step), back where it started.
SACCADE_PATH: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 1), (1, 0))


def _check_images(images: Tensor) -> Tensor:
    require(isinstance(images, Tensor) and images.dim() >= 2, "images",
            getattr(images, "shape", images), "a tensor [N, ...] of pixels")  # fmt: skip
    images = images.float()
    low, high = float(images.min()), float(images.max())
    require(low >= 0 and high <= 1, "images", f"pixels in [{low:g}, {high:g}]",
            "pixels in [0, 1] (divide 8-bit images by 255)")  # fmt: skip
    return images


def rate(images: Tensor, steps: int, *, generator: torch.Generator,
         gain: float = 1.0) -> Tensor:  # fmt: skip
    """Rate code: spikes [T, N, ...], each 1 with probability ``gain`` × pixel, independent
    over pixels and steps."""
    images = _check_images(images)
    check_count(steps, "steps", 1)
    check_generator(generator)
    require(is_real(gain) and 0 < gain <= 1, "gain", gain, "in (0, 1]")
    p = (gain * images).expand(steps, *images.shape)
    return torch.bernoulli(p, generator=generator)


def latency(images: Tensor, steps: int, *, threshold: float = 0.01) -> Tensor:
    """Latency code: spikes [T, N, ...] with one spike per pixel above ``threshold``, at a
    step that falls linearly with its intensity (1 at step 0, ``threshold`` at the last);
    darker pixels stay silent."""
    from snntorch import spikegen

    images = _check_images(images)
    check_count(steps, "steps", 2)
    require(is_real(threshold) and 0 < threshold < 1, "threshold", threshold, "in (0, 1)")
    return spikegen.latency(images, num_steps=steps, threshold=threshold, tau=1, linear=True,
                            normalize=True, clip=True)  # fmt: skip


def saccades(images: Tensor, steps: int, *, threshold: float = 0.1,
             path: tuple[tuple[int, int], ...] = SACCADE_PATH) -> Tensor:  # fmt: skip
    """Delta code of small translations: events [T, N, H, W] of +1 (ON, brighter by at least
    ``threshold``), −1 (OFF) or 0, as the image follows ``path`` (row, column shifts in pixels,
    repeated over the T steps; zeros enter at the edges). Step 0 compares with the first
    position itself, so a still image gives no event."""
    from snntorch import spikegen

    images = _check_images(images)
    require(images.dim() == 3, "images", tuple(images.shape), "[N, H, W]")
    check_count(steps, "steps", 2)
    require(is_real(threshold) and 0 < threshold <= 1, "threshold", threshold, "in (0, 1]")
    require(len(path) >= 1 and all(len(p) == 2 and all(isinstance(v, int) for v in p)
                                   for p in path), "path", path,
            "(row, column) integer shifts")  # fmt: skip
    frames = torch.stack([_shifted(images, *path[t % len(path)]) for t in range(steps)])
    return spikegen.delta(frames, threshold=threshold, padding=True, off_spike=True)


def _shifted(images: Tensor, rows: int, cols: int) -> Tensor:
    """``images`` moved by (rows, cols) pixels, zeros where nothing moved in."""
    out = torch.zeros_like(images)
    h, w = images.shape[-2:]
    src_r, dst_r = slice(max(0, -rows), h - max(0, rows)), slice(max(0, rows), h - max(0, -rows))
    src_c, dst_c = slice(max(0, -cols), w - max(0, cols)), slice(max(0, cols), w - max(0, -cols))
    out[..., dst_r, dst_c] = images[..., src_r, src_c]
    return out
