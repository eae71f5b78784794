"""A small report builder that writes the same content as Markdown and as HTML.

Blocks are headings, paragraphs (with ``**bold**`` and ```code``` inline), tables,
code blocks, notes, images and galleries (many images as a grid of thumbnails). The
Markdown links images by relative path; the HTML embeds them (base64), so the HTML
file is self-contained and opens anywhere.

Examples
--------
>>> rep = Report("Results")
>>> rep.para("Accuracy is **not** the paper's.")
>>> rep.table(["model", "Acc"], [["symaffect", "41.0"]])
>>> rep.write("report.md", "report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from symaffect._io import write_text
from symaffect.eval.tables import markdown_table

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1.2em;color:#1d1d1f;line-height:1.5}
h1{font-size:1.7em;border-bottom:2px solid #ddd;padding-bottom:.3em}
h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #eee;padding-bottom:.2em}
h3{font-size:1.08em;margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f3f3f6;padding:0 .25em;border-radius:3px;font-size:.92em}
pre{background:#f6f6f8;padding:.8em;overflow-x:auto;border-radius:4px}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.6em .9em;margin:1em 0}
.leaky{color:#b00020;font-weight:bold}
figcaption{color:#555;font-size:.9em}
.thumbs{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:.4em .8em;margin:.5em 0}
.thumbs figure{margin:0}
.thumbs img{margin:0;cursor:zoom-in}
.thumbs img:focus{position:fixed;inset:0;margin:auto;max-width:96vw;max-height:96vh;z-index:10;
cursor:zoom-out;background:#fff;box-shadow:0 0 0 100vmax rgba(0,0,0,.55);outline:none}
"""


def _inline_html(text: str) -> str:
    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<i>\1</i>", s)
    s = s.replace("LEAKY", '<span class="leaky">LEAKY</span>')
    return s


def _td(cell: str) -> str:
    num = re.match(r"^[-+−–]?\d", cell) is not None or cell == "–"
    return f'<td class="num">{_inline_html(cell)}</td>' if num else f"<td>{_inline_html(cell)}</td>"


def _link(path: Path, md_dir: str | Path | None) -> str:
    """``path`` relative to the Markdown file's folder (as given when that is unknown)."""
    return Path(os.path.relpath(path, md_dir) if md_dir is not None else path).as_posix()


def _figure_html(path: Path, caption: str, *, thumb: bool = False) -> str:
    """A ``<figure>`` with the PNG embedded (base64); a note when the file is missing."""
    if not path.is_file():
        return f"<p><i>missing figure {html.escape(str(path))}</i></p>"
    b64 = base64.b64encode(path.read_bytes()).decode()
    cap = html.escape(caption)
    extra = ' tabindex="0" title="click to enlarge"' if thumb else ""
    return (f'<figure><img alt="{cap}"{extra} src="data:image/png;base64,{b64}">'
            f"<figcaption>{cap}</figcaption></figure>")


@dataclass
class Report:
    """Ordered blocks of a report.

    Parameters
    ----------
    title : str
        The ``<h1>`` / ``#`` title.
    """

    title: str
    blocks: list[tuple[str, tuple]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> Report:
        self.blocks.append(("heading", (text, level)))
        return self

    def para(self, text: str) -> Report:
        self.blocks.append(("para", (text,)))
        return self

    def note(self, text: str) -> Report:
        """A highlighted paragraph (what the numbers mean)."""
        self.blocks.append(("note", (text,)))
        return self

    def bullets(self, items: Sequence[str]) -> Report:
        self.blocks.append(("bullets", (tuple(items),)))
        return self

    def code(self, text: str) -> Report:
        self.blocks.append(("code", (text,)))
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Report:
        self.blocks.append(("table", (tuple(header), tuple(tuple(map(str, r)) for r in rows))))
        return self

    def image(self, path: str | Path, caption: str, *, base: str | Path | None = None) -> Report:
        """An image file; ``base`` is the folder the Markdown file will be in (for the link)."""
        self.blocks.append(("image", (Path(path), caption, None if base is None else Path(base))))
        return self

    def gallery(self, items: Sequence[tuple[str | Path, str]]) -> Report:
        """Several images ``[(path, caption)]`` kept compact.

        HTML: a grid of thumbnails (embedded like :meth:`image`; click one to see it full
        size). Markdown: the first image in full, links to the others.
        """
        self.blocks.append(("gallery", (tuple((Path(p), str(c)) for p, c in items),)))
        return self

    # --- rendering ----------------------------------------------------------------------
    def markdown(self, md_dir: str | Path | None = None) -> str:
        """The report as Markdown; image links relative to ``md_dir`` when given."""

        out = [f"# {self.title}", ""]
        for kind, a in self.blocks:
            if kind == "heading":
                out += [f"{'#' * a[1]} {a[0]}", ""]
            elif kind == "para":
                out += [a[0], ""]
            elif kind == "note":
                out += ["> " + a[0].replace("\n", "\n> "), ""]
            elif kind == "bullets":
                out += [f"- {b}" for b in a[0]] + [""]
            elif kind == "code":
                out += ["```", a[0].rstrip("\n"), "```", ""]
            elif kind == "table":
                out += [markdown_table(a[0], a[1]), ""]
            elif kind == "image":
                path, caption, _ = a
                out += [f"![{caption}]({_link(path, md_dir)})", ""]
            elif kind == "gallery" and a[0]:
                (first, cap), *rest = a[0]
                out += [f"![{cap}]({_link(first, md_dir)})", ""]
                if rest:
                    out += ["Others: " + " · ".join(f"[{c}]({_link(p, md_dir)})" for p, c in rest), ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        """The report as one self-contained HTML page (images embedded)."""
        out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
               f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>",
               f"<h1>{_inline_html(self.title)}</h1>"]
        for kind, a in self.blocks:
            if kind == "heading":
                lv = min(6, max(2, a[1]))
                out.append(f"<h{lv}>{_inline_html(a[0])}</h{lv}>")
            elif kind == "para":
                out.append(f"<p>{_inline_html(a[0])}</p>")
            elif kind == "note":
                out.append(f'<div class="note">{_inline_html(a[0])}</div>')
            elif kind == "bullets":
                out.append("<ul>" + "".join(f"<li>{_inline_html(b)}</li>" for b in a[0]) + "</ul>")
            elif kind == "code":
                out.append(f"<pre>{html.escape(a[0])}</pre>")
            elif kind == "table":
                head = "".join(f"<th>{_inline_html(h)}</th>" for h in a[0])
                body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in a[1])
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "image":
                out.append(_figure_html(a[0], a[1]))
            elif kind == "gallery" and a[0]:
                figs = "".join(_figure_html(p, c, thumb=True) for p, c in a[0])
                out.append(f'<div class="thumbs">{figs}</div>')
        out.append("</body></html>")
        return "\n".join(out) + "\n"

    def write(self, md_path: str | Path | None = None, html_path: str | Path | None = None) -> list[Path]:
        """Write the Markdown and / or HTML files (atomically); return the paths written."""
        written = []
        if md_path is not None:
            md_path = Path(md_path)
            write_text(md_path, self.markdown(md_path.parent))
            written.append(md_path)
        if html_path is not None:
            write_text(html_path, self.html())
            written.append(Path(html_path))
        return written


__all__ = ["Report"]
