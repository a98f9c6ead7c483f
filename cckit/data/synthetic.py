"""Moving-digit videos from any labelled image array: the default, download-free dataset.

Each video shows one image instance (by default one real handwritten digit scan) moving over a
video-specific background. The class is shared across videos while the nuisances (background
texture and colour, foreground colour) are per video: the setting where cross-video
cycle-consistency is claimed to help (CycleContrast, Wu & Wang, ICCV 2021). Videos are real
H.264 mp4 files, read back through :mod:`cckit.data.video` like any user video.
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import math
from fractions import Fraction
import multiprocessing
import os
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np
from PIL import Image

from cckit.errors import ConfigError, DataError

from ..atomic import atomic_path, file_lock
from .manifest import load_manifest, write_manifest

MOTIONS = ("linear", "bounce", "circular", "zoom", "jitter")
GENERATOR_VERSION = 2  # bump when rendering changes, so cached datasets are regenerated
FPS, CODEC, CRF = 10, "libx264", 18
# Reproducible bytes: one x264 thread of every kind, and no macroblock-tree rate control: with it,
# identical frames encoded in one process came out different in about 1 of 600 videos
# (benchmarks/encode_repeat.py), which moved decoded pixels by up to 14.
X264_PARAMS = "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0"
LOCK_NAME = ".generate.lock"  # held while a process generates a dataset root


@dataclasses.dataclass(frozen=True)
class MotionStyle:
    """Difficulty of a generated dataset: digit size, motion range and nuisance strength."""

    digit_scale: tuple[float, float] = (0.55, 0.8)  # digit side / frame side, drawn per video
    max_shift: float = 0.2  # travel of the digit centre within a video, fraction of frame side
    max_rotation_deg: float = 10.0  # largest |rotation| of the digit in any frame
    scale_jitter: float = 0.1  # largest relative change of the digit size within a video
    brightness_jitter: float = 0.1  # largest relative change of the frame brightness
    background_contrast: float = 0.25  # 0 = flat background, 1 = full-contrast texture
    background_colour_strength: float = 0.25  # 0 = grey background, 1 = saturated colour
    foreground_colour_strength: float = 0.3  # 0 = white digit, 1 = saturated colour
    noise_std: float = 0.01  # per-pixel Gaussian noise std, in [0, 1] intensity units
    background_level: tuple[float, float] = (0.1, 0.35)  # dark background intensity, drawn per video
    # True: background (texture, level, hue) and digit colour drawn anew for every frame, nuisance
    # that only the digit's shape outlives (the colour of colour images stays per video).
    # False: drawn once per video.
    nuisance_per_frame: bool = False
    motions: tuple[str, ...] = MOTIONS  # motion types, one drawn uniformly per video

    def __post_init__(self) -> None:
        lo, hi = self.digit_scale
        if not 0 < lo <= hi <= 2:
            raise ConfigError(f"digit_scale must be 0 < lo <= hi <= 2, got {self.digit_scale}")
        unknown = set(self.motions) - set(MOTIONS)
        if not self.motions or unknown:
            raise ConfigError(f"motions must be a non-empty subset of {MOTIONS}, "
                              f"got {self.motions}")
        lo, hi = self.background_level
        if not 0 <= lo <= hi <= 1:
            raise ConfigError(f"background_level must be 0 <= lo <= hi <= 1, got {self.background_level}")
        for field in ("background_contrast", "background_colour_strength",
                      "foreground_colour_strength"):
            if not 0 <= getattr(self, field) <= 1:
                raise ConfigError(f"{field} must be in [0, 1], got {getattr(self, field)}")


# Tuned by eye so far; a training sweep decides the final numbers. "easy" keeps the digit the
# dominant content (big, bright, on a dark mildly textured background): the design notes show a
# full-nuisance prototype stayed at chance for every method within the CPU quickstart.
STYLES = {
    "easy": MotionStyle(
        digit_scale=(0.55, 0.8), max_shift=0.2, max_rotation_deg=10.0, scale_jitter=0.1,
        brightness_jitter=0.1, background_contrast=0.25, background_colour_strength=0.25,
        foreground_colour_strength=0.3, noise_std=0.01),
    # the default since the learning calibration (README "Calibration"): a new full-contrast
    # background texture every frame, its hue per video, white digits. Clutter dominates raw pixels
    # and random features; only the digit links two frames of a video and digits of one class
    # link videos, so intra-video positives have to keep the digit and drop the clutter.
    "clutter": MotionStyle(
        digit_scale=(0.45, 0.7), max_shift=0.3, max_rotation_deg=15.0, scale_jitter=0.15,
        brightness_jitter=0.1, background_contrast=1.0, background_colour_strength=0.2,
        foreground_colour_strength=0.0, background_level=(0.05, 0.3), noise_std=0.02,
        nuisance_per_frame=True),
    "hard": MotionStyle(
        digit_scale=(0.3, 0.5), max_shift=0.5, max_rotation_deg=25.0, scale_jitter=0.25,
        brightness_jitter=0.25, background_contrast=1.0, background_colour_strength=1.0,
        foreground_colour_strength=1.0, noise_std=0.03),
}


def resolve_style(style: str | MotionStyle | None) -> tuple[str, MotionStyle]:
    """Return ``(name, style)`` for a preset name, a MotionStyle (name "custom") or None (easy)."""
    if style is None:
        style = "easy"
    if isinstance(style, MotionStyle):
        return "custom", style
    if style not in STYLES:
        raise ConfigError(f"style: unknown preset {style!r}, expected one of {sorted(STYLES)}")
    return style, STYLES[style]


class _Job(NamedTuple):
    """Everything one worker needs to render and write one video (picklable)."""

    path: Path
    record: dict
    image: np.ndarray  # (h, w) or (h, w, 3) float32 in [0, 1]
    frames: int | tuple[int, int]
    size: int
    seed: int
    style: MotionStyle


def _hue_rgb(hue: float, strength: float) -> np.ndarray:
    """(3,) colour between white (strength 0) and the fully saturated ``hue`` (strength 1)."""
    return (1 - strength) + strength * np.array(colorsys.hsv_to_rgb(hue % 1.0, 1.0, 1.0))


def _resize(channels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of ``(h, w, C)`` float to ``(height, width, C)``, clipped to [0, 1]."""
    out = [np.asarray(Image.fromarray(channels[..., c].astype(np.float32))
                      .resize((width, height), Image.BICUBIC)) for c in range(channels.shape[-1])]
    return np.clip(np.stack(out, axis=-1), 0.0, 1.0)


def _background(size: int, style: MotionStyle, hue: float, rng: np.random.Generator) -> np.ndarray:
    """``(S, S, 3)`` smooth per-video texture (noise, stripes or gradient) in [0, 1]."""
    kind = rng.choice(["noise", "stripes", "gradient"])
    ys, xs = (np.mgrid[0:size, 0:size] + 0.5) / size
    angle = rng.uniform(0, 2 * math.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    if kind == "noise":
        cells = int(rng.integers(2, 6))
        texture = _resize(rng.random((cells, cells, 1)), size, size)[..., 0]
    elif kind == "stripes":
        texture = np.sin(2 * math.pi * (rng.uniform(1, 4) * along + rng.random()))
    else:
        texture = along
    texture = (texture - texture.min()) / max(np.ptp(texture), 1e-6)
    # A dark and a light colour of nearby hues; contrast 0 leaves the flat dark one, so the
    # (bright) digit stays the dominant content in mild styles.
    strength = style.background_colour_strength
    dark = rng.uniform(*style.background_level) * _hue_rgb(hue, strength)
    light = rng.uniform(0.6, 0.95) * _hue_rgb(hue + rng.uniform(-0.15, 0.15), strength)
    return dark + style.background_contrast * texture[..., None] * (light - dark)


def _trajectory(motion: str, num_frames: int, size: int, style: MotionStyle,
                rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Per-frame centre ``(T, 2)`` px, relative scale, angle (rad) and brightness, each ``(T,)``."""
    t = np.linspace(0.0, 1.0, num_frames)
    ramp = 2 * t - 1  # -1 .. 1 over the video
    travel = style.max_shift * size
    heading = rng.uniform(0, 2 * math.pi)
    unit = np.array([math.cos(heading), math.sin(heading)])
    if motion == "linear":
        offset = np.outer(ramp / 2, unit) * travel * rng.uniform(0.5, 1.0)
    elif motion == "bounce":  # independent triangle waves in x and y: reflections off a box
        speed, phase = rng.uniform(0.75, 1.5, 2), rng.random(2)
        offset = (4 * np.abs((np.outer(t, speed) + phase) % 1.0 - 0.5) - 1) * travel / 2
    elif motion == "circular":
        radius, omega = travel / 2 * rng.uniform(0.5, 1.0), rng.choice([-1, 1]) * rng.uniform(1, 2)
        phi = heading + omega * math.pi * t
        offset = radius * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    elif motion == "zoom":
        offset = np.outer(ramp / 2, unit) * travel * 0.2
    else:  # jitter: independent small displacement each frame
        offset = np.clip(rng.normal(0, travel / 6, (num_frames, 2)), -travel / 2, travel / 2)
    centre = size / 2 + rng.uniform(-1, 1, 2) * size * 0.05 + offset
    angle0 = rng.uniform(-0.5, 0.5) * style.max_rotation_deg
    if motion == "jitter":
        scale = 1 + style.scale_jitter * 0.5 * rng.uniform(-1, 1, num_frames)
        angle = angle0 + 0.5 * style.max_rotation_deg * rng.uniform(-1, 1, num_frames)
    else:
        zoom = rng.choice([-1, 1]) if motion == "zoom" else 0.5 * rng.uniform(-1, 1)
        scale = 1 + style.scale_jitter * zoom * ramp
        angle = angle0 + 0.5 * style.max_rotation_deg * rng.uniform(-1, 1) * ramp
    flicker = np.sin(2 * math.pi * (rng.uniform(0.5, 1.5) * t + rng.random()))
    brightness = 1 + style.brightness_jitter * rng.uniform(0.5, 1.0) * flicker
    return centre, scale, np.deg2rad(angle), brightness


def _sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample ``(H, W, C)`` at continuous coords (pixel centres at ``i + 0.5``); zero outside."""
    h, w, channels = image.shape
    # A zero ring makes outside taps read 0; flat float32 gathers keep this the cheap part.
    flat = np.pad(image, ((1, 1), (1, 1), (0, 0))).astype(np.float32).reshape(-1, channels)
    fx, fy = (x + 0.5).astype(np.float32), (y + 0.5).astype(np.float32)  # padded index coords
    x0, y0 = np.floor(fx), np.floor(fy)
    wx, wy = (fx - x0)[..., None], (fy - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    xa, xb = np.clip(x0, 0, w + 1), np.clip(x0 + 1, 0, w + 1)
    ya, yb = np.clip(y0, 0, h + 1) * (w + 2), np.clip(y0 + 1, 0, h + 1) * (w + 2)
    top = (1 - wx) * flat[ya + xa] + wx * flat[ya + xb]
    bottom = (1 - wx) * flat[yb + xa] + wx * flat[yb + xb]
    return (1 - wy) * top + wy * bottom


def _render(image: np.ndarray, num_frames: int, size: int, style: MotionStyle, motion: str,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render one video: frames ``(T, S, S, 3)`` uint8 and digit boxes ``(T, 4)`` x0, y0, x1, y1."""
    hue = rng.random()
    background = _background(size, style, hue, rng)
    colour = rng.uniform(0.85, 1.0) * _hue_rgb(hue + 0.5 + rng.uniform(-0.15, 0.15),
                                               style.foreground_colour_strength)
    fill_colour = colour  # of ink-on-black images, per frame with nuisance_per_frame
    if style.nuisance_per_frame:  # extra draws only here: per-video styles keep their frames
        hues = rng.random(num_frames - 1)
        background = np.stack([background] + [_background(size, style, h, rng) for h in hues])
        fill_colour = np.stack([colour] + [rng.uniform(0.85, 1.0) * _hue_rgb(
            h + 0.5 + rng.uniform(-0.15, 0.15), style.foreground_colour_strength) for h in hues])[:, None, None, :]
    side = rng.uniform(*style.digit_scale) * size
    h, w = image.shape[:2]
    width, height = max(1, round(side * w / max(h, w))), max(1, round(side * h / max(h, w)))
    if image.ndim == 2:  # ink on black (digits, Fashion-MNIST): intensity is the opacity
        alpha = _resize(image[..., None], width, height)[..., 0]
        patch = alpha[..., None]  # fill = alpha * colour, applied after sampling (4x cheaper)
    else:  # colour images are opaque patches, tinted toward the video's colour
        rgb = _resize(image, width, height)
        alpha = np.ones((height, width))
        tint = style.foreground_colour_strength
        fill = (1 - tint) * rgb + tint * rgb.mean(axis=-1, keepdims=True) * colour
        patch = np.concatenate([fill, alpha[..., None]], axis=-1)  # premultiplied (alpha = 1)
    centre, scale, angle, brightness = _trajectory(motion, num_frames, size, style, rng)

    # Inverse map, output pixel p -> patch point q = L/2 + R(-angle)(p - centre) / scale,
    # vectorised over (T, S, S); premultiplied fill keeps the patch edges free of dark fringes.
    grid = np.arange(size) + 0.5
    dx = grid[None, None, :] - centre[:, 0, None, None]
    dy = grid[None, :, None] - centre[:, 1, None, None]
    cos, sin = (np.cos(angle) / scale)[:, None, None], (np.sin(angle) / scale)[:, None, None]
    u, v = cos * dx + sin * dy + width / 2, -sin * dx + cos * dy + height / 2
    sampled = _sample_bilinear(patch, u, v)  # (T, S, S, 1 or 4)
    opacity = sampled[..., -1:]
    fill = opacity * fill_colour if image.ndim == 2 else sampled[..., :3]
    frames = background * (1 - opacity) + fill  # (T, S, S, 3)
    frames = frames * brightness[:, None, None, None]
    frames = frames + rng.normal(0.0, style.noise_std, frames.shape)
    frames = np.round(np.clip(frames, 0.0, 1.0) * 255).astype(np.uint8)

    # Box: forward-map the centres of clearly inked patch pixels, pad by half a pixel.
    ink_y, ink_x = np.nonzero(alpha >= 0.25 * alpha.max() if alpha.max() > 0 else alpha >= 0)
    qx, qy = ink_x + 0.5 - width / 2, ink_y + 0.5 - height / 2
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    px = centre[:, 0, None] + scale[:, None] * (c * qx - s * qy)
    py = centre[:, 1, None] + scale[:, None] * (s * qx + c * qy)
    pad = 0.5 * scale
    boxes = np.stack([px.min(1) - pad, py.min(1) - pad, px.max(1) + pad, py.max(1) + pad], axis=1)
    return frames, np.clip(boxes, 0.0, size)


def _write_mp4(path: Path, frames: np.ndarray, *, x264_params: str = X264_PARAMS) -> None:
    """Encode ``(T, S, S, 3)`` uint8 as H.264/yuv420p mp4, atomically: never half-written."""
    with atomic_path(path, durable=False) as tmp:  # the manifest, written last, is the durable mark
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(CODEC, rate=FPS)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(CRF), "x264-params": x264_params}
            stream.codec_context.thread_count = 1
            for index, frame in enumerate(frames):
                yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
                yuv.pts, yuv.time_base = index, Fraction(1, FPS)
                container.mux(stream.encode(yuv))
            container.mux(stream.encode(None))


def _make_video(job: _Job) -> dict:
    """Render, write and describe one video; its RNG depends only on (seed, video_id)."""
    record = job.record
    rng = np.random.default_rng(np.random.SeedSequence(job.seed, spawn_key=(1, record["video_id"])))
    lo, hi = (job.frames, job.frames) if isinstance(job.frames, int) else job.frames
    num_frames = int(rng.integers(lo, hi + 1))
    motion = str(rng.choice(job.style.motions))
    frames, boxes = _render(job.image, num_frames, job.size, job.style, motion, rng)
    _write_mp4(job.path, frames)
    head = {key: value for key, value in record.items() if key != "source_index"}
    return {**head, "motion": motion, "num_frames": num_frames,  # keys in the documented order
            "boxes": [[round(float(b), 2) for b in box] for box in boxes],
            "source_index": record["source_index"]}


def _make_chunk(jobs: list[_Job]) -> list[dict]:
    return [_make_video(job) for job in jobs]


def _check_frames(frames_per_video: int | tuple[int, int]) -> int | tuple[int, int]:
    """Validate ``frames_per_video``: an int >= 1, or an inclusive ``(lo, hi)`` range."""
    single = isinstance(frames_per_video, (int, np.integer))
    lo, hi = (frames_per_video,) * 2 if single else frames_per_video
    if not 1 <= int(lo) <= int(hi):
        raise ValueError(f"frames_per_video must be an int >= 1 or a (lo, hi) pair with "
                         f"1 <= lo <= hi, got {frames_per_video!r}")
    return int(lo) if single else (int(lo), int(hi))


def make_moving_videos(images: np.ndarray, labels: np.ndarray, root: str | os.PathLike, *,
                       num_videos: int, frames_per_video: int | tuple[int, int], size: int,
                       seed: int, split: str = "train", style: str | MotionStyle | None = None,
                       first_video_id: int = 0, class_names: Any = None,
                       workers: int = 1) -> list[dict]:
    """Write one H.264 video per drawn image instance, moving over a per-video background.

    Instances are drawn without replacement while possible (then the pool is reshuffled).
    Every video's content depends only on ``(seed, video_id)``, never on ``workers``.

    Args:
        images: ``(N, h, w)`` or ``(N, h, w, 3)`` array of any dtype and range; min-max
            normalised to [0, 1] over the whole array. Grayscale images are ink on black
            (intensity = opacity); colour images are pasted as opaque patches.
        labels: ``(N,)`` integer class labels.
        root: Dataset root; videos go to ``root/videos/<split>/<video_id:06d>.mp4``.
        num_videos: Number of videos to write.
        frames_per_video: Frames per video, an int or an inclusive ``(lo, hi)`` range.
        size: Frame side ``S`` in pixels; even (H.264 4:2:0) and >= 8.
        seed: Non-negative generator seed.
        split: Split name, used in the path and the records.
        style: Preset name in :data:`STYLES`, a :class:`MotionStyle`, or None for "easy".
        first_video_id: Id of the first video; ids are consecutive.
        class_names: Sequence or mapping label -> name; None uses ``str(label)``.
        workers: Processes rendering and encoding in parallel (1 = in this process).

    Returns:
        One record per video: ``video_id``, ``path`` (posix, relative to root), ``split``,
        ``label``, ``class_name``, ``motion``, ``num_frames``, ``boxes`` (``num_frames`` digit
        boxes ``[x0, y0, x1, y1]`` in pixels, after rotation and scale, clipped to the frame) and
        ``source_index`` (row of ``images``).
    """
    if not isinstance(size, (int, np.integer)) or size < 8 or size % 2:
        raise ValueError(f"size must be an even integer >= 8 (H.264 yuv420p needs even frame "
                         f"sides), got {size!r}")
    frames = _check_frames(frames_per_video)
    _, style = resolve_style(style)
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise ValueError(f"images must have shape (N, h, w) or (N, h, w, 3), got {images.shape}")
    if labels.shape != images.shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be ({len(images)},) integers, got {labels.dtype} "
                         f"{labels.shape}")
    if num_videos < 0 or (num_videos > 0 and len(images) == 0):
        raise ValueError(f"cannot make num_videos={num_videos} from {len(images)} images")
    if split in ("", ".", "..") or "/" in split or "\\" in split:
        raise ValueError(f"split must be a plain name, got {split!r}")
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 1.0)
    span = high - low if high > low else 1.0  # a constant array stays constant

    # Instance order: permutations of the pool, concatenated, so no repeats until it runs out.
    assign = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, first_video_id)))
    rounds = -(-num_videos // max(len(images), 1))
    order = np.concatenate([assign.permutation(len(images)) for _ in range(rounds)] or [[]])
    out_dir = Path(root) / "videos" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for offset, index in enumerate(order[:num_videos].astype(int)):
        video_id, label = first_video_id + offset, int(labels[index])
        try:
            name = str(label if class_names is None else class_names[label])
        except (KeyError, IndexError) as error:
            raise ValueError(f"class_names has no entry for label {label}") from error
        relative = f"videos/{split}/{video_id:06d}.mp4"
        record = {"video_id": video_id, "path": relative, "split": split, "label": label,
                  "class_name": name, "source_index": int(index)}
        image = ((images[index].astype(np.float32) - low) / span)
        jobs.append(_Job(Path(root) / relative, record, image, frames, size, seed, style))

    if workers <= 1 or len(jobs) < 2:
        return _make_chunk(jobs)
    # Several chunks per worker balance the load; order of results follows the chunks.
    step = max(1, math.ceil(len(jobs) / (4 * workers)))
    chunks = [jobs[i:i + step] for i in range(0, len(jobs), step)]
    with multiprocessing.get_context().Pool(min(workers, len(chunks))) as pool:
        return [record for chunk in pool.map(_make_chunk, chunks) for record in chunk]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's bundled digits: images ``(1797, 8, 8)`` (0..16), labels ``(1797,)``, names."""
    from sklearn.datasets import load_digits  # deferred: sklearn import is slow

    digits = load_digits()
    return digits.images, digits.target.astype(np.int64), [str(n) for n in digits.target_names]


def make_default_dataset(root: str | os.PathLike, *, num_train: int = 1000, num_test: int = 200,
                         frames_per_video: int | tuple[int, int] = (8, 16), size: int = 64,
                         style: str | MotionStyle = "easy", seed: int = 0, workers: int = 2,
                         test_instances: int = 300) -> tuple[list[dict], dict]:
    """Generate (or reuse) the default moving-digits dataset under ``root``.

    The 1797 digit scans are split, stratified by class, into disjoint train and test pools
    (``test_instances`` go to test), so no digit instance appears in both splits. Test video ids
    follow the train ids. Videos are written first and the manifest last, after deleting any
    old one, so an interrupted run never looks complete. If ``root/manifest.json`` already
    holds the same parameters and every video exists, it is returned without regenerating.

    Returns:
        ``(records, meta)`` as :func:`load_manifest` would return them.
    """
    from sklearn.model_selection import train_test_split

    style_name, style_params = resolve_style(style)
    images, labels, class_names = load_digits_arrays()
    frames = _check_frames(frames_per_video)
    meta = {"generator": "cckit.data.synthetic.make_default_dataset",
            "generator_version": GENERATOR_VERSION, "source": "sklearn.datasets.load_digits",
            "num_train": num_train, "num_test": num_test, "test_instances": test_instances,
            "frames_per_video": frames, "size": size, "style": style_name,
            "style_params": dataclasses.asdict(style_params), "seed": seed,
            "fps": FPS, "codec": CODEC, "crf": CRF, "class_names": class_names}
    meta = json.loads(json.dumps(meta))  # tuples -> lists, as they come back from disk
    root = Path(root)
    if (found := _complete(root, meta)) is not None:
        return found, meta
    # Two runs started together on one root (a sweep, the resume test) must not both write it:
    # the second waits here, then finds the first one's dataset.
    with file_lock(root / LOCK_NAME):
        if (found := _complete(root, meta)) is not None:
            return found, meta
        (root / "manifest.json").unlink(missing_ok=True)
        train_pool, test_pool = train_test_split(np.arange(len(labels)), test_size=test_instances,
                                                 stratify=labels, random_state=seed % 2**32)
        records = []
        for split, pool, count, first in (("train", train_pool, num_train, 0),
                                          ("test", test_pool, num_test, num_train)):
            made = make_moving_videos(images[pool], labels[pool], root, num_videos=count,
                                      frames_per_video=frames, size=size, seed=seed, split=split,
                                      style=style_params, first_video_id=first,
                                      class_names=class_names, workers=workers)
            for record in made:  # index into the full digits array, not the split's pool
                record["source_index"] = int(pool[record["source_index"]])
            records += made
        write_manifest(root, records, meta)
    return records, meta


def _complete(root: Path, meta: dict) -> list[dict] | None:
    """The records of ``root``'s manifest when it was generated with ``meta`` and every video exists."""
    try:
        records, old_meta = load_manifest(root)
    except DataError:
        return None
    if old_meta == meta and all((root / r["path"]).is_file() for r in records):
        return records
    return None
