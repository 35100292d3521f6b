"""A matplotlib backend for the tests' notebook runs: every figure a notebook shows is checked as
the inline backend would save it (cropped to what it draws, so only overlaps count;
figure_check.problems) and recorded in $FIGURE_CHECK_LOG, one JSON line per figure."""

from __future__ import annotations

import json
import os

from figure_check import problems
from matplotlib._pylab_helpers import Gcf
from matplotlib.backends.backend_agg import FigureCanvasAgg

FigureCanvas = FigureCanvasAgg


def show(*args, **kwargs) -> None:
    log = os.environ.get("FIGURE_CHECK_LOG")
    for manager in Gcf.get_all_fig_managers():
        figure = manager.canvas.figure
        found = problems(figure, edges=False)
        if log:
            titles = [t for t in (figure.get_suptitle(), *(ax.get_title() for ax in figure.axes)) if t]
            with open(log, "a") as f:
                f.write(json.dumps({"titles": titles, "problems": found}) + "\n")
    Gcf.destroy_all()
