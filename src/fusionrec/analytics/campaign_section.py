"""The "Campaigns and promotions" section: static HTML (tables) and one plotly chart.

It is drawn from `fusionrec.analytics.campaigns.campaign_analysis`' JSON and put into the page
before the end of ``<main>`` (`with_campaign_section`) by the report
(`fusionrec.analytics.report.build_report`) and by the live dashboard's page, so the page and its
script stay as they are. Plotly is loaded before ``<main>`` in both.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

SECTION_ID = "campaigns-section"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.0f} %"


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.2f}"


def _ratio(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def _kpi_table(rows: list[dict[str, Any]]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("campaign", "channel", "period", "cost", "new customers", "revenue", "CPA", "ROAS")
    )
    body = "".join(
        "<tr>"
        f'<td class="text">{escape(str(r["campaign"]))}</td><td class="text">{escape(str(r["channel"]))}</td>'
        f'<td class="text">{escape(r["period"] or "all")}</td><td>{_money(r["cost"])}</td>'
        f"<td>{r['acquisitions']:,.1f}</td><td>{_money(r['revenue'])}</td><td>{_money(r['cpa'])}</td>"
        f"<td>{_ratio(r['roas'])}</td></tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _effect_table(effects: list[dict[str, Any]]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("", "target", "window", "treated / controls", "conversion", "revenue", "verdict")
    )
    rows = []
    for e in effects:
        cells = []
        for metric in ("conversion", "revenue"):
            lift = e[metric]
            css = ' class="good"' if lift["detected"] and (lift["estimate"] or 0) > 0 else ""
            css = ' class="bad"' if lift["detected"] and (lift["estimate"] or 0) < 0 else css
            interval = "" if lift["low"] is None else f" ({_pct(lift['low'])} to {_pct(lift['high'])})"
            cells.append(f"<td{css}>{_pct(lift['estimate'])}{interval}</td>")
        verdict = f"{e['conversion']['verdict']}; {e['revenue']['verdict']}"
        verdict += "".join(f" ({note})" for note in e["notes"])
        rows.append(
            f'<tr><td class="text">{escape(e["kind"])} {escape(e["name"])}</td>'
            f'<td class="text">{escape(e["target"])}</td>'
            f'<td class="text">{e["start"]} to {e["end"]} (pre: {e["pre_start"]} to {e["pre_end"]})</td>'
            f"<td>{e['treated']} / {e['controls']}</td>{''.join(cells)}"
            f'<td class="text">{escape(verdict)}</td></tr>'
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _plot_script(effects: list[dict[str, Any]]) -> str:
    """Lifts with their intervals as error bars, one trace per metric."""
    traces = []
    for metric in ("conversion", "revenue"):
        shown = [e for e in effects if e[metric]["estimate"] is not None]
        traces.append(
            {
                "type": "bar",
                "name": f"{metric} lift",
                "x": [f"{e['kind']} {e['name']}" for e in shown],
                "y": [e[metric]["estimate"] * 100 for e in shown],
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [(e[metric]["high"] - e[metric]["estimate"]) * 100 for e in shown],
                    "arrayminus": [(e[metric]["estimate"] - e[metric]["low"]) * 100 for e in shown],
                },
            }
        )
    layout = {"barmode": "group", "yaxis": {"title": "lift, % (95 % interval)"}, "margin": {"t": 20}}
    data = json.dumps({"traces": traces, "layout": layout}).replace("</", "<\\/")
    return (
        "<script>(function () { var d = " + data + "; if (window.Plotly) "
        "Plotly.newPlot('plot-campaign-effects', d.traces, d.layout, {displayModeBar: false}); })();</script>"
    )


def campaign_section(analysis: dict[str, Any] | None) -> str:
    """The section's HTML for a `campaign_analysis` result (a short note when there is nothing)."""
    title = "<h2>Campaigns and promotions</h2>"
    if analysis is None or not (analysis["has"]["campaign_costs"] or analysis["has"]["promotions"]):
        note = (
            '<p class="note">No campaign costs and no promotions calendar in this store '
            "(fusionrec ingest FILE --format costs / --format promotions).</p>"
        )
        return f'<section class="wide" id="{SECTION_ID}">{title}{note}</section>'
    effects = [*analysis["promotions"], *analysis["campaigns"]]
    parts = [title]
    if analysis["kpis"]:
        parts.append(
            '<p class="note">CPA = cost / new customers, ROAS = revenue / cost; a channel\'s new customers '
            "and revenue of a day are shared among that day's campaigns on it by cost; unknown where "
            "there is no cost.</p>" + _kpi_table(analysis["kpis"])
        )
    if effects:
        parts.append(
            '<div class="plot" id="plot-campaign-effects"></div>'
            '<p class="note">Difference-in-differences against comparable unpromoted items (promotions) '
            "or the other channels (campaigns), window vs the pre-period just before it; intervals are "
            "cluster-robust (by item, or by day) and, where the data reach back, include the shocks "
            "the treated units share, measured on earlier windows (see the notes).</p>"
            + _effect_table(effects)
            + _plot_script(effects)
        )
    return f'<section class="wide" id="{SECTION_ID}">{"".join(parts)}</section>'


def with_campaign_section(page: str, analysis: dict[str, Any] | None, scope: str | None = None) -> str:
    """``page`` with the section for ``analysis`` at the end of its ``<main>``; ``scope`` a note on
    what the numbers cover (the live dashboard's are over every date, whatever its filters)."""
    section = campaign_section(analysis)
    if scope:
        section = section.replace("</h2>", f'</h2><p class="note">{escape(scope)}</p>', 1)
    head, main_end, tail = page.rpartition("</main>")
    return head + section + main_end + tail
