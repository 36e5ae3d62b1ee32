"""Length-generalization reports from run directories (reads files only; never imports JAX).

Entry point: `python -m runners.report RUN [RUN ...] --out DIR` (reports.build.build_report in code).
Modules: runs (read a run directory), scoring (cell scores + bootstrap CIs), aggregate (per-length
average, wAvg, effective length, comparison), depths (NIAH depth grid), tables, plots, document,
render (Markdown / self-contained HTML), results (a run's own summary.csv, summary_table.csv and
results.json). See reports/README.md for the formats.
"""
