"""What the grader writes: ``grades.csv``, one feedback page per student, and the class summary figure."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import numpy as np

from .._files import write_bytes, write_text
from .cases import POINTS, TASK_TITLES, TASKS

COLUMNS = ("student", *TASKS, "total", "max", "status")


def write_csv(path: Path, rows: list[dict]) -> None:
    """``grades.csv``: one row per submission, sorted by student."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["student"]):
        writer.writerow(row)
    write_text(path, buf.getvalue())


def feedback_html(row: dict, detail: dict, isolation: list[str]) -> str:
    """A student's feedback page: the score, each task's cases with their hints, how the notebook ran."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Feedback: {e(row['student'])}</title>",
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}"
        ".ok{color:#137333}.bad{color:#b3261e}.todo{color:#8a6d00}li{margin:.2rem 0}"
        "code{background:#f3f3f3;padding:0 .2rem}table{border-collapse:collapse}td,th{padding:.2rem .6rem;"
        "border-bottom:1px solid #ddd;text-align:left}</style></head><body>",
        f"<h1>Project 06 — feedback for {e(row['student'])}</h1>",
        f"<p><strong>Score: {row['total']:g} / {row['max']:g} points</strong> · status: <code>{e(row['status'])}"
        f"</code> · graded in {detail.get('seconds', 0):.0f} s, at most {detail.get('peak_mb', 0):,} MB of memory</p>",
        "<p>Each task was tested on hidden cases (other images, models and heatmaps than the check cells of the "
        "notebook show). A task earns its points when every hidden case passes; the hint after a ✘ is the same "
        "one the notebook's check cells give for that mistake.</p>",
    ]
    for task in TASKS:
        t = detail.get("tasks", {}).get(task, {})
        earned = row.get(task, 0)
        parts.append(f"<h2>{e(TASK_TITLES[task])} (<code>{task}</code>): {earned:g} / {POINTS[task]:g}</h2>")
        if t.get("summary"):
            parts.append(f"<p class='{t.get('css', 'bad')}'>{e(t['summary'])}</p>")
        if t.get("cases"):
            parts.append("<ul>")
            for name, ok, hint in t["cases"]:
                mark = "<span class='ok'>✔</span>" if ok else "<span class='bad'>✘</span>"
                parts.append(f"<li>{mark} {e(name)}" + (f": {e(hint)}" if hint else "") + "</li>")
            parts.append("</ul>")
    cells = [c for c in detail.get("cells", []) if c.get("status") != "ok"]
    parts.append("<h2>How your notebook ran</h2>")
    if detail.get("notes"):
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in detail["notes"]) + "</ul>")
    if cells:
        parts.append("<table><tr><th>code cell</th><th>what happened</th></tr>")
        for c in cells:
            parts.append(f"<tr><td>{c['cell'] + 1}</td><td>{e(c['status'])}: {e(c.get('message', ''))}</td></tr>")
        parts.append("</table>")
    elif not detail.get("notes"):
        parts.append("<p>Every code cell ran without an error.</p>")
    parts.append("<h2>How it was graded</h2><pre>" + e("\n".join(isolation)) + "</pre></body></html>")
    return "\n".join(parts)


def summary_png(path: Path, rows: list[dict]) -> None:
    """The class at a glance: the distribution of totals and the share of the class that failed each task."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    total_max = sum(POINTS.values())
    totals = np.array([r["total"] for r in rows], float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=120, gridspec_kw={"width_ratios": [1, 1.3]})
    bins = np.arange(-0.5, total_max + 1.5, 1.0)
    a.hist(totals, bins=bins, color="#3b6ea8", edgecolor="white")
    a.set_xticks(range(total_max + 1))
    a.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    a.set_xlabel("points")
    a.set_ylabel("students")
    a.set_title(f"Scores of {len(rows)} submissions (max {total_max})")
    failed = [np.mean([r.get(t, 0) < POINTS[t] for r in rows]) if rows else 0.0 for t in TASKS]
    bars = b.barh(range(len(TASKS))[::-1], failed, color="#c0504d")
    b.set_yticks(range(len(TASKS))[::-1], [f"{TASK_TITLES[t].split(' — ')[1]}\n({t})" for t in TASKS], fontsize=9)
    b.set_xlim(0, 1)
    b.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    b.set_xlabel("share of the class that did not earn the task's points")
    b.set_title("Which tasks the class missed")
    for bar, share in zip(bars, failed):
        b.text(min(share + 0.02, 0.9), bar.get_y() + bar.get_height() / 2, f"{share:.0%}", va="center", fontsize=9)
    statuses = [r["status"].split(":")[0] for r in rows]
    other = {s: statuses.count(s) for s in sorted(set(statuses)) if s != "ok"}
    if other:
        fig.text(0.01, 0.01, "not ok: " + ", ".join(f"{n} {s}" for s, n in other.items()), fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes(path, buf.getvalue())
