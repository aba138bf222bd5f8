"""Geometry of the dashboard's line chart, rendered as inline SVG by the template: no script, no
library, nothing fetched. Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 14, 34

#: series -> (label, colour, dash pattern): colour and dash tell the lines apart
STYLES = {
    "sent": ("Sent", "#1f5fa8", ""),
    "delivered": ("Delivered", "#1a7f37", "8 4"),
    "failed": ("Failed", "#b42318", "2 4"),
    "opt_outs": ("Opt-outs", "#7a3fb0", "12 4 2 4"),
}


@dataclass(frozen=True)
class Line:
    name: str
    label: str
    colour: str
    dash: str
    points: str
    dots: list[tuple[float, float, int]]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    lines: list[Line]
    #: (y, label) of the horizontal grid lines
    y_ticks: list[tuple[float, int]]
    #: (x, label) under the axis
    x_ticks: list[tuple[float, str]]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at or above ``value`` (at least 4: four steps)."""
    if value <= 4:
        return 4
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def tick_values(top: int) -> list[int]:
    """Round values from 0 to ``top`` (a ``nice_ceiling``) for the grid: 4 or 5 steps."""
    lead = top // 10 ** math.floor(math.log10(top))
    step = top // (4 if lead in (2, 4) else 5)
    return list(range(0, top + 1, step))


def line_chart(days: list[date], series: dict[str, list[int]]) -> Chart:
    count = len(days)
    top_value = nice_ceiling(max((max(v) for v in series.values() if v), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return round(LEFT + (plot_w * i / (count - 1) if count > 1 else plot_w / 2), 1)

    def y(v: int) -> float:
        return round(TOP + plot_h - plot_h * v / top_value, 1)

    lines = []
    for name, values in series.items():
        label, colour, dash = STYLES[name]
        dots = [(x(i), y(v), v) for i, v in enumerate(values)]
        points = " ".join(f"{px},{py}" for px, py, _ in dots)
        lines.append(Line(name, label, colour, dash, points, dots))
    y_ticks = [(y(value), value) for value in tick_values(top_value)]
    shown = sorted(range(count - 1, -1, -7))  # weekly, ending today
    x_ticks = [(x(i), f"{days[i]:%b} {days[i].day}") for i in shown]
    return Chart(WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, TOP, TOP + plot_h, lines, y_ticks, x_ticks)
