"""The course report: every run of every notebook in one table, and plots, as Markdown and HTML."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from matplotlib.figure import Figure  # drawn off-screen, without touching pyplot's backend

from .. import plots, results

COLUMNS = [("notebook", "notebook"), ("name", "model / run"), ("dataset", "dataset"),
           ("data_source", "data"), ("profile", "profile"), ("device", "device"),
           ("params", "parameters"), ("pretrained_from", "pretrained on"),
           ("flops", "FLOPs"), ("epochs", "epochs"), ("train_images", "train images"),
           ("train_seconds", "train s"), ("test_top1", "test top-1"), ("test_top5", "test top-5")]


def collect(folder: Path) -> tuple[list[dict], list[str]]:
    """Read every results JSON in `folder`: (one row per run, notes a reader must see)."""
    rows, notes, on_sample = [], [], []
    for path in sorted(folder.glob("[0-9][0-9]_*.json")):
        record = results.read(path)
        if record["data_source"] == "sample":
            on_sample.append(record["notebook"])
        if record.get("data_note") and record["dataset"] == "cifar100" and record["data_source"] == "sample":
            notes.append(f"{record['notebook']}: the sample holds no CIFAR-100 images; this "
                         "cifar100 run trained on 10 CIFAR-10 classes.")
        if record.get("pretrained_from") == "course":
            notes.append(f"{record['notebook']}: ImageNet weights were missing, so it transferred the course's "
                         "own pretraining on the first half of the classes to the second half (its "
                         "'course' runs), beside the same networks from random weights.")
        for run in record["runs"]:
            rows.append({**{k: record[k] for k in ("notebook", "dataset", "data_source",
                                                    "profile", "device")}, **run})
    if on_sample:
        notes.insert(0, f"{', '.join(on_sample)} ran on the bundled CIFAR-10 sample, not the full "
                        "data set: their accuracies are not CIFAR results.")
    return rows, notes


def _cell(key: str, value) -> str:
    if value is None:
        return "–"
    if key in ("test_top1", "test_top5"):
        return f"{value:.1%}"
    if key == "pretrained_from":
        return {"imagenet": "ImageNet", "course": "half the classes"}.get(value, str(value))
    if key in ("params", "train_images"):
        return f"{value:,}"
    if key == "flops":
        return f"{value / 1e6:,.1f} M"
    if key == "train_seconds":
        return f"{value:,.1f}"
    return str(value)


def _plots(rows: list[dict], folder: Path) -> list[tuple[str, Path]]:
    """Draw the report's figures into folder/report_files; return (title, path) pairs."""
    out = folder / "report_files"
    out.mkdir(exist_ok=True)
    figures = []
    trained = [r for r in rows if r.get("epochs")]
    if trained:
        fig = Figure(figsize=(12, 4.5))
        axes = fig.subplots(1, 2)
        plots.accuracy_against_cost(trained, "params", group="notebook", ax=axes[0])
        plots.accuracy_against_cost(trained, "train_seconds", group="notebook", ax=axes[1])
        axes[1].get_legend().remove()  # the first plot's legend names the notebooks for both
        fig.tight_layout()
        figures.append(("Accuracy against size and training time", out / "accuracy.png"))
        fig.savefig(figures[-1][1], dpi=110)
    notebooks = sorted({r["notebook"] for r in rows if r.get("history")})
    for nb in notebooks:
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        for r in rows:
            if r["notebook"] == nb and r.get("history"):
                ax.plot([h["epoch"] for h in r["history"]], [h["val_top1"] for h in r["history"]],
                        marker="o", label=r["name"])
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation top-1")
        ax.set_title(nb)
        plots.legend_beside(ax)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        figures.append((f"Learning curves: {nb}", out / f"curves_{nb}.png"))
        fig.savefig(figures[-1][1], dpi=110)
    return figures


def write(folder: str | Path) -> tuple[Path, Path]:
    """Write folder/report.md and a self-contained folder/report.html from its results JSON."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No run folder at {folder}.")
    rows, notes = collect(folder)
    figures = _plots(rows, folder)
    header = [title for _, title in COLUMNS]
    table = [[_cell(k, r.get(k)) for k, _ in COLUMNS] for r in rows]

    md = [f"# Course report: {folder.name}", ""]
    md += [f"- **Note:** {n}" for n in notes] + ([""] if notes else [])
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in table]
    if not rows:
        md.append("\nNo notebook recorded a run in this folder yet.")
    for title, path in figures:
        md += ["", f"## {title}", "", f"![{title}]({path.relative_to(folder).as_posix()})"]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    esc = html.escape
    parts = [f"<h1>Course report: {esc(folder.name)}</h1>"]
    parts += [f"<p class='note'><b>Note:</b> {esc(n)}</p>" for n in notes]
    parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
                 + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                           for row in table) + "</table>")
    for title, path in figures:
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' "
                     f"src='data:image/png;base64,{data}'>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}th{background:#eee}.note{background:#fff4ce;padding:6px}"
             "img{max-width:100%}")
    html_path = folder / "report.html"
    html_path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Course "
                         f"report</title><style>{style}</style></head><body>"
                         + "\n".join(parts) + "</body></html>\n")
    return md_path, html_path


def across_seeds(folders: list[Path]) -> list[dict]:
    """Per notebook and run name: test top-1 of each seed, their mean and standard deviation,
    and how far the run is from the best of its notebook, against the spread of both."""
    by_run: dict[tuple[str, str], list[float]] = {}
    for folder in folders:
        for row in collect(folder)[0]:
            by_run.setdefault((row["notebook"], row["name"]), []).append(row["test_top1"])
    rows = []
    for (nb, name), values in by_run.items():
        mean, std = results.mean_std(values)
        rows.append({"notebook": nb, "name": name, "seeds": len(values), "mean": mean, "std": std,
                     "values": values})
    best = {row["notebook"]: row for row in sorted(rows, key=lambda r: r["mean"])}  # highest mean wins
    for row in rows:
        top = best[row["notebook"]]
        row["behind_best"] = top["mean"] - row["mean"]
        row["within_spread"] = row is not top and results.within_spread(
            (row["mean"], row["std"]), (top["mean"], top["std"]))
    return rows


def write_seeds(out: Path, folders: list[Path]) -> Path:
    """out/report.md: every run's test top-1 as mean ± std over the seeds' folders."""
    rows = across_seeds(folders)
    md = [f"# Course report: {out.name}, {len(folders)} seeds", "",
          "Test top-1 per run over the seeds (each seed's own report is in its folder). A run whose "
          "distance to the best of its notebook is smaller than the two runs' standard deviations "
          "added is marked *within the spread*: that difference may be noise.", "",
          "| notebook | run | seeds | test top-1 | per seed | behind the best of its notebook |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        behind = "best" if r["behind_best"] == 0 else f"{100 * r['behind_best']:.1f} points" + (
            " (within the spread)" if r["within_spread"] else "")
        md.append(f"| {r['notebook']} | {r['name']} | {r['seeds']} | {r['mean']:.1%} ± {r['std']:.1%} | "
                  f"{', '.join(f'{v:.1%}' for v in r['values'])} | {behind} |")
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
