"""Rendering the moving-image videos: motion styles and the frames of one video, as uint8 arrays.

:mod:`cckit.data.synthetic` draws each video's parameters, calls :func:`render` and encodes the
frames; this module only paints them (numpy, no I/O), so a figure or a test can render a video
without writing one.
"""
from __future__ import annotations

import colorsys
import dataclasses
import math

import numpy as np
from PIL import Image

from ..errors import ConfigError

MOTIONS = ("linear", "bounce", "circular", "zoom", "jitter")


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


def render(image: np.ndarray, num_frames: int, size: int, style: MotionStyle, motion: str,
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
