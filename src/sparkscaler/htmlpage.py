"""Building blocks of the project's self-contained HTML reports (the evaluation's and the demo's).

A report is one file (inline CSS, figures as base64 PNGs, no scripts, fonts or links), so it
opens offline and can be attached to an issue or mailed as is.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from PIL import Image

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #1f2328; line-height: 1.45; }
h1, h2, h3, h4 { line-height: 1.2; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; }
th { background: #f6f8fa; }
td { font-variant-numeric: tabular-nums; }
td:not(:first-child) { text-align: right; }
.tables { display: flex; flex-wrap: wrap; gap: 0 2em; }
.settings { color: #57606a; font-size: 14px; }
img { max-width: 100%; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 13px; }
"""


class Cell(NamedTuple):
    """A table cell with an inline style (a colour), where plain text is not enough."""

    text: str
    style: str


def esc(value: object) -> str:
    return html.escape(str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence[str | Cell]]) -> str:
    """An HTML table; every text is escaped here, so callers pass plain text."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = "".join(
            f"<td style='{html.escape(c.style, quote=True)}'>{esc(c.text)}</td>"
            if isinstance(c, Cell)
            else f"<td>{esc(c)}</td>"
            for c in row
        )
        lines.append(f"<tr>{cells}</tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(lines) + "\n</table>"


def figure_png(fig: Figure, alt: str) -> str:
    """The figure as an ``<img>`` with the PNG inline; the figure is closed.

    The PNG is reduced to a 256-colour palette, which looks the same for a plot and halves the
    size of the page (Pillow comes with matplotlib).
    """
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    buffer = io.BytesIO()
    Image.open(rendered).convert("RGB").quantize(colors=256).save(buffer, "png", optimize=True)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img src=\"data:image/png;base64,{data}\" alt='{html.escape(alt, quote=True)}'>"


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body`` (already HTML), with the reports' style."""
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{esc(title)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
