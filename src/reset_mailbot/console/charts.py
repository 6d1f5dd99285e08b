"""The stats page's chart: requests per week and the median time to reset, as inline SVG.

Server-rendered and dependency-free: numbers become coordinates, nothing from mail reaches
the markup (labels are dates and counts), and only presentation attributes are used, never
`style=`, which the console's Content-Security-Policy forbids.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Week:
    start: date  # the Monday
    requests: int
    executed: int
    median_hours_to_reset: float | None


def weekly(times: Iterable[tuple[datetime, datetime | None]], tz: ZoneInfo,
           today: date, weeks: int = 12) -> list[Week]:
    """`weeks` weeks up to the one holding `today`, oldest first (empty weeks included)."""
    first = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    counts = [0] * weeks
    durations: list[list[float]] = [[] for _ in range(weeks)]
    for created, executed in times:
        day = created.astimezone(tz).date()
        index = (day - first).days // 7
        if 0 <= index < weeks:
            counts[index] += 1
            if executed is not None:
                durations[index].append((executed - created).total_seconds() / 3600)
    return [
        Week(first + timedelta(weeks=i), counts[i], len(durations[i]),
             statistics.median(durations[i]) if durations[i] else None)
        for i in range(weeks)
    ]


def bar_chart(weeks: list[Week], width: int = 640, height: int = 180) -> str:
    """An SVG bar chart of requests per week, with the executed share darker, and the median
    hours to reset as a line on its own scale."""
    top = max((w.requests for w in weeks), default=0) or 1
    pad_left, pad_bottom, pad_top = 28, 22, 8
    plot_h = height - pad_bottom - pad_top
    slot = (width - pad_left) / max(len(weeks), 1)
    bar = max(slot * 0.7, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="Requests per week, last {len(weeks)} weeks">',
        f'<text x="0" y="{pad_top + 10}" font-size="11" fill="#555">{top}</text>',
        f'<line x1="{pad_left}" y1="{height - pad_bottom}" x2="{width}" '
        f'y2="{height - pad_bottom}" stroke="#999"/>',
    ]
    for i, week in enumerate(weeks):
        x = pad_left + i * slot + (slot - bar) / 2
        h = plot_h * week.requests / top
        he = plot_h * week.executed / top
        y = height - pad_bottom - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="#9ec5e8">'
            f'<title>week of {week.start:%d %b}: {week.requests} requests, '
            f'{week.executed} executed</title></rect>')
        parts.append(
            f'<rect x="{x:.1f}" y="{height - pad_bottom - he:.1f}" width="{bar:.1f}" '
            f'height="{he:.1f}" fill="#2c6fb7"/>')
        if i % 2 == 0 or len(weeks) <= 8:
            parts.append(f'<text x="{x:.1f}" y="{height - 6}" font-size="10" '
                         f'fill="#555">{week.start:%d-%m}</text>')
    medians = [(i, w.median_hours_to_reset) for i, w in enumerate(weeks)
               if w.median_hours_to_reset is not None]
    if medians:
        # the median time to reset, on its own scale (right axis, hours)
        high = max(m for _, m in medians) or 1.0
        points = [(pad_left + i * slot + slot / 2, height - pad_bottom - plot_h * m / high)
                  for i, m in medians]
        parts.append(f'<text x="{width - 4}" y="{pad_top + 10}" font-size="11" fill="#b35c00" '
                     f'text-anchor="end">{high:.1f} h</text>')
        if len(points) > 1:
            parts.append('<polyline fill="none" stroke="#b35c00" stroke-width="2" points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
        for (x, y), (i, m) in zip(points, medians, strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#b35c00"><title>'
                         f'week of {weeks[i].start:%d %b}: median {m:.1f} h to reset'
                         '</title></circle>')
    parts.append("</svg>")
    return "".join(parts)
