"""Crop and paste-back: batched in torch (runs wherever the frames are: CPU, CUDA, MPS), and per
frame with OpenCV on uint8 images (``crop_image``, ``paste_image``: what the pipeline uses; several
times faster on a CPU, and only a 256x256 crop travels to the model's device and back).

Conventions: torch frames are (B, C, H, W) floating tensors of any value range; pixel
coordinates use OpenCV's pixel-centre convention; a "matrix" is a (B, 2, 3) affine map
from frame pixels to crop pixels, the same matrix ``cv2.warpAffine`` takes. Matrices are
composed in float64 on the CPU (they are tiny) and the sampling grid is built in float32:
a half-precision grid would be off by whole pixels on a 1280-pixel-wide frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

Matrices = torch.Tensor | np.ndarray | Sequence[np.ndarray]


def pixel_to_normalized(height: int, width: int) -> torch.Tensor:
    """(3, 3) float64 map from pixel coordinates to ``affine_grid``/``grid_sample`` coordinates.

    With ``align_corners=False`` the normalised range [-1, 1] spans the outer edges of the
    border pixels, so pixel centre ``x`` sits at ``(2 x + 1) / width - 1``.
    """
    return torch.tensor(
        [[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )


def _homogeneous(matrices: Matrices) -> torch.Tensor:
    """(B, 2, 3) matrices of any kind -> (B, 3, 3) float64 CPU tensor."""
    m = torch.as_tensor(np.asarray(matrices) if not isinstance(matrices, torch.Tensor) else matrices)
    m = m.detach().to("cpu", torch.float64)
    if m.ndim != 3 or m.shape[1:] != (2, 3):
        raise ValueError(f"expected (B, 2, 3) affine matrices, got shape {tuple(m.shape)}")
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(m.shape[0], 1, 3)
    return torch.cat([m, bottom], dim=1)


def affine_grid_theta(matrices: Matrices, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> torch.Tensor:
    """``affine_grid`` theta (B, 2, 3) that resamples a ``src_hw`` image into ``dst_hw`` with
    the pixel-space ``matrices`` (src -> dst, like ``cv2.warpAffine``); float64, CPU.

    theta maps normalised destination coordinates to normalised source coordinates:
    ``N_src @ inverse(M) @ inverse(N_dst)``.
    """
    m = _homogeneous(matrices)
    n_src = pixel_to_normalized(*src_hw)
    n_dst_inv = torch.linalg.inv(pixel_to_normalized(*dst_hw))
    return (n_src @ torch.linalg.inv(m) @ n_dst_inv)[:, :2]


def _translation(dx: float, dy: float) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _footprint(inverse: torch.Tensor, size: int) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) in frame pixels of the crops' outer edges, over the batch."""
    lo, hi = -0.5, size - 0.5
    corners = torch.tensor([[lo, lo, 1.0], [hi, lo, 1.0], [lo, hi, 1.0], [hi, hi, 1.0]], dtype=torch.float64)
    pts = (inverse @ corners.T)[:, :2]  # (B, 2, 4)
    return pts[:, 0].min().item(), pts[:, 1].min().item(), pts[:, 0].max().item(), pts[:, 1].max().item()


def crop_footprint(matrices: Matrices, size: int) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) in frame pixels of the crops' outer edges, over the batch."""
    return _footprint(torch.linalg.inv(_homogeneous(matrices)), size)


def _shrink_factor(m: torch.Tensor) -> torch.Tensor:
    """Integer box-decimation factor per item: the largest ``k`` with crop scale * k <= 1."""
    scale = torch.linalg.det(m[:, :2, :2]).abs().sqrt()
    return torch.floor(1.0 / scale).clamp(1, 16).long()


def warp_to_crop(
    frames: torch.Tensor,
    matrices: Matrices,
    size: int = 256,
    *,
    padding_mode: str = "border",
    antialias: bool = True,
) -> torch.Tensor:
    """Cut the (B, C, size, size) crops out of (B, C, H, W) frames with bilinear sampling.

    Output pixel ``p`` takes the frame's value at ``inverse(matrix) @ p``, as
    ``cv2.warpAffine(frame, matrix, (size, size), flags=INTER_LINEAR)`` does (with
    ``padding_mode`` "zeros" = BORDER_CONSTANT 0, "border" = BORDER_REPLICATE). When the
    crop shrinks the frame by 2x or more and ``antialias`` is set, the frame is first
    averaged over k x k blocks (k = floor(1 / scale), like a mipmap level), so fine
    texture does not alias into shimmer. Only the region under the crops is read.
    Returns the frames' dtype.
    """
    if not frames.is_floating_point() or frames.ndim != 4:
        raise ValueError(f"expected floating (B, C, H, W) frames, got {frames.dtype} {tuple(frames.shape)}")
    batch, channels, height, width = frames.shape
    m = _homogeneous(matrices)
    if m.shape[0] != batch:
        raise ValueError(f"{m.shape[0]} matrices for {batch} frames")
    factors = _shrink_factor(m) if antialias else torch.ones(batch, dtype=torch.long)
    out = frames.new_empty(batch, channels, size, size)
    for k in factors.unique().tolist():
        idx = (factors == k).nonzero().flatten()
        mk = m[idx]
        margin = k + 1
        fx0, fy0, fx1, fy1 = _footprint(torch.linalg.inv(mk), size)
        # Region read, with a margin for the bilinear taps and the k x k blocks; it is clamped
        # to the frame but never empty, so "border" padding still replicates the frame edge.
        x0 = min(max(math.floor(fx0) - margin, 0), width - 1)
        y0 = min(max(math.floor(fy0) - margin, 0), height - 1)
        x1 = max(min(math.ceil(fx1) + margin + 1, width), x0 + 1)
        y1 = max(min(math.ceil(fy1) + margin + 1, height), y0 + 1)
        whole = len(idx) == batch  # a plain slice is a view: no copy of the frames
        region = frames[:, :, y0:y1, x0:x1] if whole else frames[idx.to(frames.device), :, y0:y1, x0:x1]
        region = region.float()
        if k > 1:
            region = F.avg_pool2d(region, k, stride=k, ceil_mode=True)
        # Block (i, j) of the region is centred on frame pixel (x0 + k i + (k-1)/2, y0 + k j + (k-1)/2).
        blocks = torch.tensor(
            [[k, 0.0, x0 + (k - 1) / 2], [0.0, k, y0 + (k - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float64
        )
        theta = affine_grid_theta((mk @ blocks)[:, :2], tuple(region.shape[-2:]), (size, size))
        grid = F.affine_grid(
            theta.to(frames.device, torch.float32), [len(idx), channels, size, size], align_corners=False
        )
        crops = F.grid_sample(region, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
        out[idx.to(frames.device)] = crops.to(frames.dtype)
    return out


def feather_mask(size: int, feather: float, device: torch.device | str | None = None) -> torch.Tensor:
    """(size, size) float32 mask: 0 on the outermost pixels, rising linearly to 1 over
    ``feather`` pixels inside the crop border (product of the two axes, so corners are soft)."""
    idx = torch.arange(size, dtype=torch.float32, device=device)
    dist = torch.minimum(idx, size - 1 - idx)  # 0 on the border pixels
    ramp = (dist / max(feather, 1e-6)).clamp(0, 1)
    return ramp[:, None] * ramp[None, :]


def paste_back(
    frames: torch.Tensor,
    crops: torch.Tensor,
    matrices: Matrices,
    feather: float = 8.0,
    *,
    mask: torch.Tensor | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """Warp (B, C, S, S) crops back into (B, C, H, W) frames and blend them in.

    The blend weight is ``feather_mask(S, feather)`` (times ``mask``, (B, 1, S, S) in [0, 1],
    if given, e.g. to paste only the mouth region), warped to the frame with the inverse
    of ``matrices`` (frame -> crop, as given to ``warp_to_crop``). Pixels where that weight
    is 0, including everything outside the crops' footprint, keep their exact values;
    only the bounding box of the footprint is computed. Returns a new tensor unless
    ``inplace``.
    """
    if not frames.is_floating_point() or frames.ndim != 4:
        raise ValueError(f"expected floating (B, C, H, W) frames, got {frames.dtype} {tuple(frames.shape)}")
    batch, channels, height, width = frames.shape
    size = crops.shape[-1]
    if crops.shape != (batch, channels, size, size):
        raise ValueError(f"crops {tuple(crops.shape)} do not match frames {tuple(frames.shape)}")
    m = _homogeneous(matrices)
    if m.shape[0] != batch:
        raise ValueError(f"{m.shape[0]} matrices for {batch} frames")
    out = frames if inplace else frames.clone()

    fx0, fy0, fx1, fy1 = _footprint(torch.linalg.inv(m), size)
    x0, y0 = max(math.floor(fx0), 0), max(math.floor(fy0), 0)
    x1, y1 = min(math.ceil(fx1) + 1, width), min(math.ceil(fy1) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return out

    weight = feather_mask(size, feather, crops.device).expand(batch, 1, size, size)
    if mask is not None:
        weight = weight * mask.to(crops.device, torch.float32)
    src = torch.cat([crops.float(), weight], dim=1)
    # Sample the crop for every pixel of the box: box pixels -> frame pixels -> crop pixels.
    theta = affine_grid_theta(torch.linalg.inv(m @ _translation(x0, y0))[:, :2], (size, size), (y1 - y0, x1 - x0))
    grid = F.affine_grid(
        theta.to(crops.device, torch.float32), [batch, channels + 1, y1 - y0, x1 - x0], align_corners=False
    )
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(frames.device)
    alpha = warped[:, channels:]
    region = out[:, :, y0:y1, x0:x1]
    base = region.float()
    blended = torch.addcmul(base, alpha, warped[:, :channels] - base).to(frames.dtype)
    out[:, :, y0:y1, x0:x1] = torch.where(alpha > 0, blended, region)
    return out


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) floats in [0, 1] -> (B, H, W, C) uint8 on the CPU."""
    return images.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _box(matrix: np.ndarray, size: int, margin: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) of the frame under a crop's footprint, ``margin`` pixels wider,
    clipped to the frame (never empty)."""
    fx0, fy0, fx1, fy1 = crop_footprint(np.asarray(matrix)[None], size)
    x0 = min(max(math.floor(fx0) - margin, 0), width - 1)
    y0 = min(max(math.floor(fy0) - margin, 0), height - 1)
    x1 = max(min(math.ceil(fx1) + margin + 1, width), x0 + 1)
    y1 = max(min(math.ceil(fy1) + margin + 1, height), y0 + 1)
    return x0, y0, x1, y1


def crop_image(frame: np.ndarray, matrix: np.ndarray, size: int = 256) -> np.ndarray:
    """The (size, size, C) crop of a uint8 (H, W, C) frame under a frame -> crop ``matrix`` (2, 3).

    What ``warp_to_crop`` computes, with OpenCV: bilinear, the border replicated, and a crop that
    shrinks the frame k >= 2 times averages k x k blocks first (``INTER_AREA`` at a whole factor),
    so fine texture does not alias. Only the region under the crop is read.
    """
    matrix = np.asarray(matrix, np.float64)
    height, width = frame.shape[:2]
    k = int(min(max(math.floor(1 / math.sqrt(abs(np.linalg.det(matrix[:, :2])))), 1), 16))
    x0, y0, x1, y1 = _box(matrix, size, k + 1, width, height)
    # Whole blocks only: the region is trimmed to a multiple of k (by less than the margin, except at
    # the frame's edge, where the border is replicated from the last whole block).
    nx, ny = max((x1 - x0) // k, 1), max((y1 - y0) // k, 1)
    region = frame[y0:y0 + ny * k, x0:x0 + nx * k]
    if k > 1:
        region = cv2.resize(region, (nx, ny), interpolation=cv2.INTER_AREA)
    # Block (i, j) is centred on frame pixel (x0 + k i + (k - 1) / 2, y0 + k j + (k - 1) / 2).
    blocks = np.array([[k, 0.0, x0 + (k - 1) / 2], [0.0, k, y0 + (k - 1) / 2], [0.0, 0.0, 1.0]])
    return cv2.warpAffine(region, matrix @ blocks, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def crop_to_frame(image: np.ndarray, matrix: np.ndarray, height: int, width: int
                  ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A crop-space ``image`` ((S, S) or (S, S, C), any OpenCV dtype) resampled back into a
    (height, width) frame with the inverse of the frame -> crop ``matrix`` (bilinear, 0 outside the
    crop), over the box its footprint covers only: (those pixels, the box (x0, y0, x1, y1))."""
    matrix = np.asarray(matrix, np.float64)
    x0, y0, x1, y1 = _box(matrix, image.shape[0], 0, width, height)
    # Box pixel (x, y) is frame pixel (x0 + x, y0 + y), which the crop shows at matrix @ (x0 + x, y0 + y, 1).
    to_crop = matrix.copy()
    to_crop[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)
    warped = cv2.warpAffine(np.ascontiguousarray(image), to_crop, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    return warped, (x0, y0, x1, y1)


def paste_image(frame: np.ndarray, crop: np.ndarray, weight: np.ndarray, matrix: np.ndarray) -> None:
    """Blend a uint8 (S, S, C) ``crop`` into a uint8 (H, W, C) ``frame`` in place, under ``weight``
    (float32 (S, S) in [0, 1], e.g. the attention mask times ``feather_mask``), both warped back with
    the inverse of the frame -> crop ``matrix``: what ``paste_back`` does, per frame with OpenCV.
    Only the box under the crop's footprint is computed; pixels of weight 0 keep their values exactly.
    """
    height, width = frame.shape[:2]
    moved, (x0, y0, x1, y1) = crop_to_frame(crop, matrix, height, width)
    alpha, _ = crop_to_frame(np.asarray(weight, np.float32), matrix, height, width)
    region = frame[y0:y1, x0:x1]
    region[...] = cv2.blendLinear(region, moved, 1 - alpha, alpha)
