"""Charts for the report pages, drawn on the server as SVG with pygal (no script, nothing from
a CDN): inline in the page, they scale to the width of a phone."""

from xml.etree import ElementTree

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#888",
    colors=("#1d4ed8", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2"),
    font_family="system-ui, sans-serif",
)
OPTIONS = {
    "style": STYLE,
    "width": 800,
    "height": 360,
    "legend_at_bottom": True,
    "truncate_label": 18,
    # No embedded scripts or external stylesheets: the page serves everything itself.
    "js": [],
    "disable_xml_declaration": True,
    "explicit_size": False,
}


def _svg(chart) -> SafeString:
    """The chart as an SVG element, without the script pygal puts in for its interactive
    version (it would carry the labels inside a <script> of the page)."""
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == "script":
                parent.remove(child)
    # The serializer escapes every label and value it writes into the SVG.
    return mark_safe(ElementTree.tostring(tree, encoding="unicode"))


def bar_chart(*, labels: list[str], series: dict[str, list[float]], stacked=False, title=""):
    chart = (pygal.StackedBar if stacked else pygal.Bar)(title=title, **OPTIONS)
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    return _svg(chart)


def line_chart(*, labels: list[str], series: dict[str, list[float]], title=""):
    chart = pygal.Line(title=title, **OPTIONS)
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    return _svg(chart)


def funnel_chart(*, steps: list[tuple[str, float]], title=""):
    chart = pygal.Funnel(title=title, **OPTIONS)
    for name, value in steps:
        chart.add(name, [value])
    return _svg(chart)
