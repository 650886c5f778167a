"""Raster charts drawn with numpy alone: what ``render()`` of the control envs returns.

:func:`chart` stacks panels of line series into an ``(H, W, 3)`` uint8 image; :func:`step_size_chart` is the chart
of a step-size episode (the quality, and ``log10`` of both players' step sizes). :func:`check_render_mode`
validates the ``render_mode`` argument of the Gymnasium, vector and PettingZoo faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Colors of the chart's series: the generator, the discriminator, the quality.
GENERATOR_COLOR, DISCRIMINATOR_COLOR, QUALITY_COLOR = (31, 119, 180), (214, 39, 40), (44, 160, 44)


def chart(panels: Sequence[tuple[np.ndarray, Sequence[tuple[int, int, int]]]], width: int = 320,
          panel_height: int = 120) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 line chart drawn with numpy alone, what ``render()`` of the control envs returns.

    Args:
        panels: stacked top to bottom; each is ``(values, colors)`` with ``values`` of shape ``(T, k)``: ``k``
            series over the ``T`` steps so far (stretched over the width), each drawn in its ``(r, g, b)`` color,
            every panel scaled to the finite range of its own values (larger values up). Non-finite values are
            skipped; a panel with none finite stays blank.
        width: the image's width in pixels.
        panel_height: each panel's height in pixels.

    Returns:
        The image, ``(panel_height * len(panels), width, 3)`` uint8, white where nothing is drawn.
    """
    margin = 4
    image = np.full((panel_height * len(panels), width, 3), 255, dtype=np.uint8)
    for p, (values, colors) in enumerate(panels):
        top = p * panel_height
        image[top + panel_height - 1, :] = 200  # the separator below the panel
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        finite = np.isfinite(values)
        if not finite.any():
            continue
        lo, hi = values[finite].min(), values[finite].max()
        span = hi - lo if hi > lo else 1.0
        steps = len(values)
        xs = np.linspace(0, width - 1, steps) if steps > 1 else np.zeros(1)
        cols = np.arange(width)
        rows = np.arange(panel_height)[:, None]
        for series, color in zip(values.T, colors):
            ok = np.isfinite(series)
            if not ok.any():
                continue
            y = (hi - series[ok]) / span * (panel_height - 1 - 2 * margin) + margin  # larger values up
            inside = (cols >= xs[ok][0]) & (cols <= xs[ok][-1])
            at = np.round(np.interp(cols, xs[ok], y)).astype(np.int64)
            prev = np.concatenate([at[:1], at[:-1]])
            low, high = np.minimum(at, prev), np.maximum(at, prev)  # join neighbouring columns: no gaps
            mask = (rows >= low[None]) & (rows <= high[None]) & inside[None]
            image[top:top + panel_height][mask] = color
    return image


def step_size_chart(history: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """The chart of a step-size episode so far: the quality (green, top) and ``log10`` of the generator's (blue)
    and the discriminator's (red) step sizes (bottom).

    Args:
        history: ``(quality, lr_G, lr_D)`` per step.

    Returns:
        The :func:`chart` of the two panels, ``(240, 320, 3)`` uint8.
    """
    h = np.asarray(history, dtype=np.float64).reshape(-1, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lr = np.log10(h[:, 1:])
    return chart([(h[:, :1], [QUALITY_COLOR]), (log_lr, [GENERATOR_COLOR, DISCRIMINATOR_COLOR])])


#: The render modes of the Gymnasium and vector faces.
RENDER_MODES: tuple[str, ...] = ("rgb_array",)


def check_render_mode(render_mode: Any, owner: str, modes: tuple[str, ...] = RENDER_MODES) -> str | None:
    """``render_mode`` if it is ``None`` or one of ``modes``, else a ``ValueError`` naming ``owner`` and the modes.

    Args:
        render_mode: what the user passed.
        owner: the env class, for the message.
        modes: the modes ``owner`` renders (default :data:`RENDER_MODES`).
    """
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"{owner} renders {', '.join(map(repr, modes))} (a chart of the episode so far); "
                         f"render_mode must be None or one of them, got {render_mode!r}")
    return render_mode
