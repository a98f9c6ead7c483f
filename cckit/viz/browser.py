"""The cycle-match browser: a widget that redraws a query's cycle as the controls change."""
from __future__ import annotations

import html

import ipywidgets as widgets

from .bank import FrameBank
from .cycle import CycleMatch, cycle_consistency, cycle_match, cycle_match_figure
from .images import figure_png


class CycleBrowser(widgets.VBox):
    """Slider over query frames, dropdown over checkpoints/methods, toggles for T_nn and the support size.

    Args:
        banks: name -> :class:`FrameBank` of the *same* frames under different models
            (e.g. ``{"cycle_contrast": ..., "moco_v2": ..., "random init": ...}``).
        support_sizes: choices for M (sizes not below the bank size collapse into "all");
            ``support_size``, the one selected first, is always among them.
        temperatures: choices for T_nn (``nn_temperature``, the one selected first, always among them).
        query: the bank row shown first.
        top_k: support frames and candidates shown.

    ``match`` is the :class:`CycleMatch` on display and ``rate`` the fraction of all bank frames
    whose cycle returns at the current setting; both are recomputed on every change.
    """

    def __init__(self, banks: dict[str, FrameBank], *, support_sizes=(16, 64, 256, 1024),
                 temperatures=(0.03, 0.07, 0.1, 0.3, 1.0), nn_temperature: float = 0.1,
                 support_size: int | None = None, query: int = 0, top_k: int = 5, seed: int = 0,
                 space: str = "cycle"):
        if not banks:
            raise ValueError("CycleBrowser needs at least one frame bank")
        sizes = {len(b) for b in banks.values()}
        if len(sizes) != 1:
            raise ValueError(f"the banks must hold the same frames, got sizes {sorted(sizes)}")
        n = sizes.pop()
        self.banks, self.top_k, self.seed, self.space = banks, top_k, seed, space
        sizes = sorted({s for s in support_sizes if s < n} | {n})
        support_size = min(support_size, n) if support_size else sizes[len(sizes) // 2]
        sizes = sorted(set(sizes) | {support_size})  # the caller's M, so the widget opens where the figures are
        size_options = [("all" if s == n else str(s), s) for s in sizes]
        temps = sorted(set(temperatures) | {nn_temperature})
        self.query = widgets.IntSlider(value=query, min=0, max=n - 1, description="query frame",
                                       continuous_update=False, style={"description_width": "initial"},
                                       layout=widgets.Layout(width="460px"))
        self.checkpoint = widgets.Dropdown(options=list(banks), description="checkpoint")
        self.temperature = widgets.ToggleButtons(options=[(f"{t:g}", t) for t in temps], value=nn_temperature,
                                                 description="T_nn", style={"button_width": "56px"})
        self.support = widgets.ToggleButtons(options=size_options, value=support_size, description="support |U|",
                                             style={"button_width": "56px"})
        self.summary = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.match: CycleMatch | None = None
        self.rate: float | None = None
        self._rates: dict = {}
        super().__init__([widgets.HBox([self.query, self.checkpoint]), self.temperature, self.support,
                          self.summary, self.image])
        for control in (self.query, self.checkpoint, self.temperature, self.support):
            control.observe(self.update, names="value")
        self.update()

    def settings(self) -> dict:
        return {"support_size": self.support.value, "nn_temperature": self.temperature.value, "seed": self.seed,
                "space": self.space}

    def update(self, change=None) -> None:
        """Recompute the match of the current query and redraw."""
        bank = self.banks[self.checkpoint.value]
        settings = self.settings()
        key = (self.checkpoint.value, *settings.values())
        if key not in self._rates:
            self._rates[key] = float(cycle_consistency(bank, **settings).float().mean())
        self.rate = self._rates[key]
        self.match = cycle_match(bank, self.query.value, **settings)
        fig = cycle_match_figure(bank, self.match, top_k=self.top_k)
        self.image.value = figure_png(fig, dpi=90)
        q = self.match.query
        verdict = ("<b style='color:#2ca02c'>returns to its own video</b>" if self.match.returns else
                   f"<b style='color:#d62728'>does not return</b> (first own-video frame at rank "
                   f"{self.match.own_video_rank or 'none'})")
        self.summary.value = (
            f"<span class='cckit-cycle-summary'>{html.escape(bank.name)} · query {q} = video "
            f"{int(bank.video_ids[q])}, frame {int(bank.frame_indices[q])}, class "
            f"{html.escape(bank.class_name(int(bank.labels[q])))}: the cycle {verdict}. "
            f"At this setting the cycle returns for {self.rate:.0%} of the {len(bank)} frames.</span>")
