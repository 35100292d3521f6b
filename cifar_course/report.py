"""The course report: every run of every notebook in one table, and plots, as Markdown and HTML."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from matplotlib.figure import Figure  # drawn off-screen, without touching pyplot's backend

from cifar_utils import plots, regimes, results

from . import tables

COLUMNS = [("notebook", "notebook"), ("name", "model / run"), ("dataset", "dataset"),
           ("data_source", "data"), ("profile", "profile"), ("device", "device"),
           ("params", "parameters"), ("pretrained_from", "pretrained on"),
           ("flops", "FLOPs"), ("epochs", "epochs"), ("train_images", "train images"),
           ("train_seconds", "train s"), ("test_top1", "test top-1"), ("test_top5", "test top-5")]


def collect(folder: Path) -> tuple[list[dict], list[str]]:
    """Read every results JSON in `folder`: (one row per run, notes a reader must see)."""
    rows, notes, on_sample, transferred = [], [], [], []
    for record in _records(folder):
        if record["data_source"] == "sample":
            on_sample.append(record["notebook"])
        if record.get("data_note") and record["dataset"] == "cifar100" and record["data_source"] == "sample":
            notes.append(f"{record['notebook']}: the sample holds no CIFAR-100 images; this "
                         "cifar100 run trained on 10 CIFAR-10 classes.")
        if record.get("pretrained_from") == "course":
            transferred.append(record["notebook"])
        for run in record["runs"]:
            rows.append({**{k: record[k] for k in ("notebook", "dataset", "data_source",
                                                    "profile", "device")}, **run})
    if transferred:
        notes.append(f"{', '.join(transferred)}: ImageNet weights were missing, so they transferred the course's own "
                     "pretraining on the first half of the classes to the second half (their 'course' runs), beside "
                     "the same networks from random weights.")
    if on_sample:
        notes.insert(0, f"{', '.join(on_sample)} ran on the bundled CIFAR-10 sample, not the full "
                        "data set: their accuracies are not CIFAR results.")
    return rows, notes


def _records(folder: Path) -> list[dict]:
    return results.in_folder(folder)


def findings(record: dict) -> list[str]:
    """What a notebook found, in a few lines: the takeaways it printed, each arm against its control
    (over paired seeds), its best run and budget, and the team's reference of the same profile."""
    lines = list(record.get("takeaways", []))
    lines += [f"Against its control: {verdict}" for verdict in regimes.paired({r["name"]: r for r in record["runs"]})]
    runs = [r for r in record["runs"] if r.get("epochs") or record["notebook"].startswith("08")]
    widest = max((r.get("classes", 0) for r in runs), default=0)
    runs = [r for r in runs if r.get("classes", 0) == widest]  # 03's own task, not its transfer to half the classes
    if runs:
        best = max(runs, key=lambda r: r["test_top1"])
        lines.append(f"Best run: {best['name']}, {results.shown('test_top1', best['test_top1'])} test top-1 "
                     f"({best['epochs']} epochs on {results.shown('train_images', best['train_images'])} images).")
        reference = results.reference(record["notebook"], record["profile"], record["dataset"])
        if reference is None:
            lines.append(f"No reference of the {record['profile']} profile for it yet.")
        else:
            same = next((r for r in reference["runs"] if r["name"] == best["name"]), None)
            lines.append(f"Reference ({reference[results.MEASURED]['machine']}; {reference[results.MEASURED]['data']}; "
                         f"{reference[results.MEASURED]['date']}): " + (
                             f"{best['name']} {results.shown('test_top1', same['test_top1'])}." if same else
                             f"no run named {best['name']}."))
    return lines


def figures(rows: list[dict]) -> list[tuple[str, Figure]]:
    """The report's figures, drawn by the notebooks' own plot helpers: (title, figure)."""
    drawn = []
    trained = [r for r in rows if r.get("epochs")]
    if trained:
        fig = Figure(figsize=(15, 5.5), layout="constrained")
        axes = fig.subplots(1, 2)
        plots.accuracy_against_cost(trained, "params", group="notebook", ax=axes[0])
        plots.accuracy_against_cost(trained, "train_seconds", group="notebook", ax=axes[1])
        axes[0].get_legend().remove()  # the same marker for the same run in both: one legend names them
        drawn.append(("Accuracy against size and training time", fig))
    for nb in sorted({r["notebook"] for r in rows if r.get("history")}):
        fig = Figure(figsize=(8, 4), layout="constrained")
        ax = fig.subplots()
        for r in rows:
            if r["notebook"] == nb and r.get("history"):
                plots.learning_curves(r["history"], "top1", label=r["name"], ax=ax)
        ax.set_title(f"{nb}: accuracy per epoch (validation solid, training dashed)")
        drawn.append((f"Learning curves: {nb}", fig))
    return drawn


def data_said(folder: Path, rows: list[dict]) -> str:
    """The run's first line: what the runner said of the data before it began, or, for a folder
    it did not write, the data its notebooks recorded."""
    state = folder / "run.json"
    if state.is_file() and "data" in json.loads(state.read_text()):
        return json.loads(state.read_text())["data"]
    sources = sorted({f"{r['dataset']} from {r['data_source']}" for r in rows})
    return f"Data: {', '.join(sources) or 'no run recorded'}."


def write(folder: str | Path) -> tuple[Path, Path]:
    """Write folder/report.md and a self-contained folder/report.html: the data first, then what
    each notebook found, then every run in one table, then the figures."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No run folder at {folder}.")
    rows, notes = collect(folder)
    found = {record["notebook"]: findings(record) for record in _records(folder)}
    drawn = figures(rows)
    (folder / "report_files").mkdir(exist_ok=True)
    pictures = []
    for i, (title, fig) in enumerate(drawn):
        path = folder / "report_files" / f"figure_{i}.png"
        fig.savefig(path, dpi=100)
        pictures.append((title, path))
    header = [title for _, title in COLUMNS]
    table = [[results.shown(k, r.get(k)) for k, _ in COLUMNS] for r in rows]

    md = [f"# Course report: {folder.name}", "", data_said(folder, rows), ""]
    md += [f"- **Note:** {n}" for n in notes] + ([""] if notes else [])
    md += ["## What each notebook found", ""]
    for notebook, lines in found.items():
        md += [f"### {notebook}", "", *[f"- {line}" for line in lines], ""]
    md += ["## Every run", "", tables.markdown(header, table)]
    if not rows:
        md.append("\nNo notebook recorded a run in this folder yet.")
    for title, path in pictures:
        md += ["", f"## {title}", "", f"![{title}]({path.relative_to(folder).as_posix()})"]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    esc = html.escape
    parts = [f"<h1>Course report: {esc(folder.name)}</h1>", f"<p class='data'>{esc(data_said(folder, rows))}</p>"]
    parts += [f"<p class='note'><b>Note:</b> {esc(n)}</p>" for n in notes]
    parts.append("<h2>What each notebook found</h2>")
    for notebook, lines in found.items():
        parts.append(f"<h3>{esc(notebook)}</h3><ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>")
    parts.append("<h2>Every run</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
                 + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table)
                 + "</table>")
    for title, path in pictures:
        encoded = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{encoded}'>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}th{background:#eee}.note{background:#fff4ce;padding:6px}"
             ".data{font-weight:bold}img{max-width:100%}")
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
          "added is marked *within the spread*: that difference may be noise.", ""]
    table = []
    for r in rows:
        behind = "best" if r["behind_best"] == 0 else f"{100 * r['behind_best']:.1f} points" + (
            " (within the spread)" if r["within_spread"] else "")
        table.append([r["notebook"], r["name"], r["seeds"], f"{r['mean']:.1%} ± {r['std']:.1%}",
                      ", ".join(f"{v:.1%}" for v in r["values"]), behind])
    md.append(tables.markdown(["notebook", "run", "seeds", "test top-1", "per seed", "behind the best of its notebook"],
                              table))
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
