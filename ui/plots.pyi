"""CurvePlot: a LinePlot that still shows a series with a single value.

Vega-Lite draws a line between points and nothing for a lone one, so a run with one evaluation
(a 1-epoch fine-tune, a short language model) had an empty validation chart, and its line was
missing in Compare. When any series has fewer than two values, the frame is drawn as points.
Steps are integers: the x-axis is formatted as such (a lone step 157 read `157.000000`).
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

STEP_FORMAT = "d"  # d3 format: integer steps


def has_lone_point(frame: pd.DataFrame, series: str = "series", value: str = "value") -> bool:
    """Whether some series of a long-format frame has exactly one value to draw."""
    if frame is None or frame.empty:
        return False
    counts = frame.dropna(subset=[value]).groupby(series).size()
    return bool((counts == 1).any())

from gradio.events import Dependency

class CurvePlot(gr.LinePlot):
    """A LinePlot (x=step, y=value, color=series) that switches to points when a series has one value.

    It keeps LinePlot's constructor: Gradio rebuilds a component from its constructor's arguments
    on every property update (visible, y_lim) and reads their names from its signature.
    """

    def postprocess(self, value):
        data = super().postprocess(value)
        if isinstance(value, pd.DataFrame) and data is not None and has_lone_point(value):
            data.mark = "point"
        return data
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component