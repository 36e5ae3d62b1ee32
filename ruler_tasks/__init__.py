"""ruler_tasks."""
