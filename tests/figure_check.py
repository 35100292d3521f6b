"""What a reader cannot read in a figure: text boxes that overlap, text over a neighbouring
axes, and text cut at the figure's edge. Measured on the figure as drawn (Agg, off-screen)."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text


def texts(fig: Figure) -> list[Text]:
    """Every text the figure draws: titles, labels, tick labels, notes, legends (matplotlib keeps
    tick labels for ticks outside the view too, and draws only those inside it)."""
    undrawn = set()
    for ax in fig.axes:
        for axis, along in ((ax.xaxis, 0), (ax.yaxis, 1)):
            if not ax.axison or not axis.get_visible():  # axis("off"): its ticks are not drawn
                undrawn.update(id(label) for label in axis.get_ticklabels(which="both"))
                continue
            low, high = sorted(axis.get_view_interval())
            span = (high - low) * 1e-6
            for label in axis.get_ticklabels(which="both"):
                if not low - span <= label.get_position()[along] <= high + span:
                    undrawn.add(id(label))
    return [t for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_alpha() != 0 and id(t) not in undrawn]


def problems(fig: Figure, pad: float = 1.0, edges: bool = True) -> list[str]:
    """Everything unreadable in `fig`, in words (empty when it reads at a glance). edges=False for
    a figure saved cropped to what it draws (the notebooks' inline figures), which cuts nothing."""
    if not hasattr(fig.canvas, "get_renderer"):  # a Figure made without pyplot, as the report makes them
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t, t.get_window_extent(renderer).expanded(1.0, 1.0)) for t in texts(fig)]
    page = fig.bbox
    found = []
    for t, box in boxes:
        outside = box.x0 < page.x0 - pad or box.y0 < page.y0 - pad or box.x1 > page.x1 + pad or box.y1 > page.y1 + pad
        if edges and outside:
            found.append(f"{t.get_text()!r} is cut at the figure's edge")
        home = t.axes
        for ax in fig.axes:
            if ax is not home and ax.get_visible() and home is not None and _overlap(box, ax.bbox, pad):
                found.append(f"{t.get_text()!r} lies on another axes")
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            if _overlap(box_a, box_b, pad):
                found.append(f"{a.get_text()!r} overlaps {b.get_text()!r}")
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            for other in fig.axes:
                if other is not ax and _overlap(box, other.bbox, pad):
                    found.append("a legend lies on another axes")
            if edges and (box.x1 > page.x1 + pad or box.y0 < page.y0 - pad):
                found.append("a legend is cut at the figure's edge")
    return found


def _overlap(a, b, pad: float) -> bool:
    return a.x0 + pad < b.x1 and b.x0 + pad < a.x1 and a.y0 + pad < b.y1 and b.y0 + pad < a.y1
