"""Length-generalization reports from run directories (reads files only; never imports JAX).

Entry point: `python -m reports.build RUN [RUN ...] --out DIR` (reports.build.build_report in code).
Modules: runs (read a run directory), scoring (cell scores + bootstrap CIs), aggregate (per-length
average, wAvg, effective length, comparison), depths (NIAH depth grid), tables, plots, document,
render (Markdown / self-contained HTML). See reports/README.md for the formats.
"""
