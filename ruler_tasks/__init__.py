"""ruler_tasks: RULER's 13 tasks, generated offline to an exact token budget.

RULER_REVISION is the NVIDIA/RULER commit whose prompt strings, chat templates, task construction and
metrics this package reproduces (see NOTICE and `ruler_tasks.templates`).
"""

RULER_REVISION = "c3f5e3b4f87f97e048793bb510a3a6b19a46bf3a"
