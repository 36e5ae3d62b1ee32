"""Report blocks as Markdown (images linked beside it) or as one self-contained HTML page.

The HTML page has its style inline and every image as a base64 data URI (the PNG, shown at the
figure's size in inches): it references nothing outside itself, so it reads the same offline, attached
to an email, or from any directory. Markdown links each figure's PNG, PDF and SVG beside it.
"""

from __future__ import annotations

import base64
import html
import struct

from reports.document import Block, Bullets, Heading, Image, Paragraph, TableBlock
from reports.plots import FIGURE_DPI
from reports.tables import Table

CSS_DPI = 96  # a figure shows at its size in inches: CSS pixels are 1/96 inch

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; display: block; overflow-x: auto; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, table.text th, table.text td { text-align: left; }
th { background: #eee; }
figure { margin: 1em 0; }
figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; height: auto; }
"""


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(_md_cell(h) for h in table.header) + " |",
        "|" + "|".join([":---"] + [":---" if table.text else "---:"] * (len(table.header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, TableBlock):
            parts.append(_md_table(block.table))
        elif isinstance(block, Image):
            others = ", ".join(f"[{fmt.upper()}]({block.stem}.{fmt})" for fmt in block.files if fmt != "png")
            parts.append(f"![{block.caption}]({block.filename})" + (f"\n\n(also {others})" if others else ""))
        else:
            raise TypeError(f"unknown block {type(block).__name__}")
    return "\n\n".join(parts) + "\n"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in table.rows)
    opening = '<table class="text">' if table.text else "<table>"
    return f"{opening}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _png_width(png: bytes) -> int:
    """Pixel width from the PNG's IHDR chunk (bytes 16..20, big-endian)."""
    return struct.unpack(">I", png[16:20])[0]


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, TableBlock):
        return _html_table(block.table)
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        caption = html.escape(block.caption)
        others = ", ".join(f"{block.stem}.{fmt}" for fmt in block.files if fmt != "png")
        width = _png_width(block.png) * CSS_DPI // FIGURE_DPI
        return (
            f'<figure><img alt="{caption}" width="{width}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}{html.escape(f' (also {others} beside this page)' if others else '')}"
            "</figcaption></figure>"
        )
    raise TypeError(f"unknown block {type(block).__name__}")


def to_html(blocks: list[Block], title: str) -> str:
    body = "\n".join(_html_block(b) for b in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
