"""The four methods, each described once: which positive its intra term uses, which views it reads,
whether it adds the cycle term. Everything else (objective, trainer, config, comparison,
benchmarks) reads this table instead of comparing names.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """What makes one method different from the others.

    ``positive`` of the intra term: ``"other_crop"`` (a second crop ``x_k`` of the same frame,
    MoCo v2), ``"other_frame"`` (a crop ``x_p`` of another frame ``f'`` of the video) or
    ``"queue_neighbour"`` (the nearest neighbour in the queue ``Q_z`` of ``z(x_p)``: NNCLR-like,
    a positive from another video with no cycle back).
    """
    name: str
    positive: str
    cycle: bool  # adds λ · L_cycle, the cross-video cycle of DESIGN.md
    summary: str

    @property
    def needs_other_frame(self) -> bool:
        """Whether the method reads ``x_p``, a view of another frame ``f'`` of the video."""
        return self.positive != "other_crop"

    def needs_key_view(self, key_encoder: str) -> bool:
        """Whether ``x_k`` (a second crop of ``f``) is read: always for momentum keys (they fill the
        queues); with ``method.key_encoder=online`` only when it is the positive."""
        return key_encoder == "momentum" or not self.needs_other_frame


# The comparison's order: from the image baseline to the full method.
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("moco_v2", "other_crop", False, "InfoNCE(z(x_q), z_m(x_k), Q_z): positive is the same frame, another crop"),
    Method("intra_video", "other_frame", False, "InfoNCE(z(x_q), z_m(x_p), Q_z): positive is another frame of the video"),
    Method("forward_nn", "queue_neighbour", False,
           "positive is the nearest neighbour in Q_z (other videos) of z_m(x_p); no cycle back"),
    Method("cycle_contrast", "other_frame", True, "intra_video + λ · L_cycle (the cross-video cycle)"),
)}


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``; ValueError naming the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"method.name: unknown method {name!r} (one of {', '.join(METHODS)})") from None
