"""``ecgssl report``: summarise pretraining runs (final metrics, training curves)."""

from __future__ import annotations

from pathlib import Path


def cmd_report(args) -> int:
    """Summarise pretraining runs: a table of their final metrics and their training curves."""
    import pandas as pd

    from ecgssl.eval.report import Report, markdown_table
    from ecgssl.plots import plot_training_curves

    report = Report("ecgssl pretraining runs")
    rows = []
    for run in args.runs:
        run = Path(run)
        csv = run / "metrics.csv"
        if not csv.exists():
            raise FileNotFoundError(f"{run} has no metrics.csv (is it a pretraining run dir?)")
        df = pd.read_csv(csv)
        last = {c: df[c].dropna().iloc[-1] for c in df.columns if df[c].notna().any()}
        rows.append({"run": str(run), **{k: (round(float(v), 5) if isinstance(v, float) else v)
                                         for k, v in last.items()}})
        report.add_figure(f"curves_{run.name}", plot_training_curves(csv, title=str(run)),
                          caption=str(run))
    table = pd.DataFrame(rows)
    report.add_text("Final logged values", markdown_table(
        list(table.columns), [[str(v) for v in r] for r in table.itertuples(index=False)]))
    report.write(args.out)
    print(table.to_string(index=False))
    print(f"wrote {Path(args.out) / 'report.md'}")
    return 0


def register(sub, fmt) -> None:
    p = sub.add_parser(
        "report", help="summarise pretraining runs (final metrics, training curves)",
        formatter_class=fmt,
        epilog="example:\n  ecgssl report runs/demo/jepa runs/demo/beat_ssl --out runs/summary")
    p.add_argument("runs", nargs="+", help="pretraining run directories")
    p.add_argument("--out", required=True, help="report directory")
    p.set_defaults(func=cmd_report)
