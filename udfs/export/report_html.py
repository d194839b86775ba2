"""The data report's plots and page: small aggregate frames in, one self-contained HTML file out (plotly.js is
embedded inline once, so the file works offline)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

HEIGHT = 380


@dataclass
class Section:
    title: str
    figures: list = field(default_factory=list)  # plotly Figures; empty = the section only has notes
    notes: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return self.title.lower().replace(" ", "-")


def _has(frame: pd.DataFrame | None) -> bool:
    return frame is not None and len(frame) > 0


def _figure(title: str, **layout):
    import plotly.graph_objects as go

    fig = go.Figure()
    settings = {"template": "plotly_white", "height": HEIGHT, "margin": {"l": 60, "r": 20, "t": 50, "b": 60}}
    fig.update_layout(title=title, **{**settings, **layout})
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)  # long category labels (drop reasons, FDC names) get the room they need
    return fig


def _bar(title: str, x, y, orientation: str = "v", **layout):
    import plotly.graph_objects as go

    fig = _figure(title, **layout)
    fig.add_trace(go.Bar(x=list(x), y=list(y), orientation=orientation))
    return fig


def _hist(title: str, frame: pd.DataFrame, xlabel: str):
    import plotly.graph_objects as go

    fig = _figure(title, xaxis_title=xlabel, yaxis_title="documents", bargap=0.02)
    mids = [(a + b) / 2 for a, b in zip(frame["left"], frame["right"], strict=True)]
    widths = [b - a for a, b in zip(frame["left"], frame["right"], strict=True)]
    fig.add_trace(go.Bar(x=mids, y=list(frame["docs"]), width=widths))
    return fig


def _missing(table: str, stage: str) -> str:
    return f"No `{table}` table yet: run the {stage} stage (refinery run --stage {stage})."


def funnel_section(agg: dict) -> Section:
    import plotly.graph_objects as go

    section = Section("Funnel")
    funnel, drops = agg.get("funnel"), agg.get("drops")
    if not _has(funnel):
        section.notes.append(_missing("documents", "ingest"))
        return section
    fig = _figure("Documents left after each stage (cumulative, as the curated view)")
    fig.add_trace(go.Funnel(y=list(funnel["stage"]), x=list(funnel["docs"]), textinfo="value+percent initial"))
    section.figures.append(fig)
    if _has(drops):
        labels = [f"{s}: {r}" for s, r in zip(drops["stage"], drops["reason"], strict=True)]
        section.figures.append(_bar("Drop reasons per stage (a quality-dropped document counts once per failed rule)",
                                    drops["n"], labels, orientation="h", height=max(HEIGHT, 22 * len(labels) + 120),
                                    yaxis={"autorange": "reversed"}))
    else:
        section.notes.append("No drop reasons recorded.")
    return section


def languages_section(agg: dict) -> Section:
    section = Section("Languages")
    frame = agg.get("languages")
    if _has(frame):
        section.figures.append(_bar("Documents per language (fastText lid.176, top 30)", frame["language"],
                                    frame["docs"], yaxis_title="documents"))
    else:
        section.notes.append(_missing("documents", "ingest"))
    return section


def quality_section(agg: dict) -> Section:
    section = Section("Quality")
    scores, buckets, words = agg.get("quality_scores"), agg.get("quality_buckets"), agg.get("quality_words")
    if scores is None:
        section.notes.append(_missing("quality", "quality"))
        return section
    if _has(scores):
        section.figures.append(_hist("quality_score (primary classifier)", scores, "quality_score"))
    else:
        section.notes.append("No quality_score: no classifier is configured (quality.classifiers); "
                             "the histogram and buckets appear once one is.")
    if _has(buckets):
        import plotly.graph_objects as go

        fig = _figure("Documents per quality bucket (percentile of quality_score)", barmode="stack",
                      xaxis_title="quality_bucket", yaxis_title="documents")
        fig.add_trace(go.Bar(x=list(buckets["bucket"]), y=list(buckets["kept"]), name="kept"))
        fig.add_trace(go.Bar(x=list(buckets["bucket"]), y=list(buckets["docs"] - buckets["kept"]), name="dropped"))
        section.figures.append(fig)
    if _has(words):
        section.figures.append(_hist("Words per document (Gopher quality signal)", words, "words"))
    return section


def dedup_section(agg: dict) -> Section:
    section = Section("Dedup")
    frame = agg.get("cluster_sizes")
    if frame is None:
        section.notes.append(_missing("duplicates", "dedup"))
    elif _has(frame):
        section.figures.append(_bar("Clusters by size (1 = unique document)", frame["cluster_size"].astype(str),
                                    frame["clusters"], xaxis_title="cluster size (documents)",
                                    yaxis_title="clusters", yaxis_type="log"))
    else:
        section.notes.append("`duplicates` is empty.")
    return section


def contamination_section(agg: dict) -> Section:
    section = Section("Contamination")
    frame, scanned = agg.get("contamination"), agg.get("contamination_scanned")
    if frame is None:
        section.notes.append(_missing("contamination", "decontaminate"))
        return section
    docs, bad = (int(scanned["docs"][0]), int(scanned["contaminated"][0])) if _has(scanned) else (0, 0)
    section.notes.append(f"{bad} of {docs} scanned documents are contaminated.")
    if _has(frame):
        section.figures.append(_bar("Contaminated documents per benchmark (verified 13-gram matches)",
                                    frame["benchmark"], frame["docs"], yaxis_title="documents"))
    return section


def taxonomy_section(agg: dict) -> Section:
    section = Section("Taxonomy")
    status = agg.get("taxonomy_status")
    if status is None:
        section.notes.append("Not labelled yet: no `taxonomy` table (run the label stage: refinery run --stage "
                             "label with llm.model set).")
        return section
    if _has(status):
        section.figures.append(_bar("Label outcomes", status["status"], status["docs"], yaxis_title="documents"))
    for key, title in (("fdc_l1", "FDC subject (level 1), primary"), ("document_type_v2", "Document type v2"),
                       ("education_level", "Education level")):
        frame = agg.get(f"taxonomy_{key}")
        if _has(frame):
            section.figures.append(_bar(title, frame["docs"], frame["label"], orientation="h",
                                        yaxis={"autorange": "reversed"}))
        else:
            section.notes.append(f"{title}: no document labelled ok.")
    return section


def synthetic_section(agg: dict) -> Section:
    import plotly.graph_objects as go

    section = Section("Synthetic")
    frame = agg.get("synthetic")
    if frame is None:
        section.notes.append(_missing("synthetic", "rewrite"))
        return section
    if not _has(frame):
        section.notes.append("`synthetic` is empty.")
        return section
    for value, title in (("rows", "Synthetic rows by style and status"),
                         ("tokens", "Output tokens by style and status")):
        fig = _figure(title, barmode="stack", yaxis_title=value)
        for status, part in frame.groupby("status", sort=True):
            fig.add_trace(go.Bar(x=list(part["style_id"]), y=list(part[value]), name=status))
        section.figures.append(fig)
    return section


def runs_section(agg: dict) -> Section:
    import plotly.graph_objects as go

    section = Section("Runs")
    frame = agg.get("runs")
    if not _has(frame):
        section.notes.append("No `runs` table yet: no stage has run (refinery run).")
        return section
    for value, title in (("seconds", "Run duration (s)"), ("docs_per_s", "Throughput (rows out per second)")):
        fig = _figure(title, xaxis_title="started (UTC)", yaxis_title=value)
        for stage, part in frame.groupby("stage", sort=True):
            fig.add_trace(go.Scatter(x=list(part["started_at"]), y=list(part[value]), mode="markers+lines",
                                     name=stage))
        section.figures.append(fig)
    return section


def build_sections(agg: dict, where: str) -> list[Section]:
    sections = [funnel_section(agg), languages_section(agg), quality_section(agg), dedup_section(agg),
                contamination_section(agg), taxonomy_section(agg), synthetic_section(agg), runs_section(agg)]
    sections[0].notes.insert(0, f"Lakehouse: {where}")
    return sections


def render_html(sections: list[Section], title: str) -> str:
    """The page; plotly.js is inlined with the first figure, every later figure reuses it."""
    body, first = [], True
    for section in sections:
        body.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        body.extend(f'<p class="note">{html.escape(n)}</p>' for n in section.notes)
        for i, fig in enumerate(section.figures):
            body.append(fig.to_html(full_html=False, include_plotlyjs=first, div_id=f"{section.anchor}-{i}",
                                    config={"displaylogo": False, "responsive": True}))
            first = False
        body.append("</section>")
    toc = " · ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
h2{{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}} .note{{color:#555}}</style>
</head><body><h1>{html.escape(title)}</h1><nav>{toc}</nav>
{chr(10).join(body)}
</body></html>
"""
