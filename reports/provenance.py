"""What a run records about how it was made: the report's provenance block and its haystack note.

Read from RUN/run.json (written by runners.eval_ruler) and RUN/data/manifest.json (runners.prepare);
every field is optional, and what a run does not record shows as "-". Samples per cell come from the
predictions themselves. Reads files only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import read_json
from evaluation.run_dir import RunDir
from reports.runs import Run

DEFAULT_HAYSTACK = "default:devils_dictionary"
RULER_HAYSTACK_FILE = "PaulGrahamEssays.json"


@dataclass(frozen=True)
class Provenance:
    """One run's provenance; None where the run does not record a field.

    haystack: the manifest's id of the essay haystack ("default:devils_dictionary", or the user's
    path with "#<content fingerprint>"). task_versions: task -> version, for the tasks in the run.
    """

    checkpoint: str | None = None
    fingerprint: str | None = None
    seed: int | None = None
    samples: str | None = None
    haystack: str | None = None
    tokenizer: str | None = None
    chat_template: str | None = None
    task_versions: dict[str, str] = field(default_factory=dict)
    ruler_revision: str | None = None
    git_revision: str | None = None

    @property
    def haystack_text(self) -> str:
        """The haystack in words, saying whether it is RULER's own (Paul Graham's essays)."""
        if self.haystack is None:
            return "unknown (the run has no data/manifest.json)"
        if self.haystack == DEFAULT_HAYSTACK:
            return "The Devil's Dictionary (the shipped default, not RULER's Paul Graham essays)"
        path, _, fp = self.haystack.partition("#")
        name = Path(path).name
        kind = "RULER's Paul Graham essays" if name == RULER_HAYSTACK_FILE else "the user's corpus"
        return f"{name} ({kind}{', sha256 ' + fp if fp else ''})"

    @property
    def is_rulers_haystack(self) -> bool:
        return self.haystack is not None and Path(self.haystack.partition("#")[0]).name == RULER_HAYSTACK_FILE


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _manifest(run_dir: Path) -> dict:
    path = run_dir / "data" / "manifest.json"
    if not path.is_file():
        return {}
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise UserError(f"{path}: expected a JSON object; regenerate it with make prepare")
    return manifest


def _samples(run: Run) -> str:
    counts = sorted({len(preds) for preds in run.cells.values()})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def read_provenance(run: Run) -> Provenance:
    """The provenance `run` records (run.json, data/manifest.json) and its samples per cell."""
    info = RunDir(run.path).info()
    manifest = _manifest(run.path)
    checkpoint = info.get("checkpoint") if isinstance(info.get("checkpoint"), dict) else {}
    identity = info.get("identity") if isinstance(info.get("identity"), dict) else {}
    versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
    tasks = manifest.get("tasks") if isinstance(manifest.get("tasks"), dict) else {}
    task_versions = {
        task: str(entry["version"])
        for task, entry in sorted(tasks.items())
        if task in run.tasks and isinstance(entry, dict) and entry.get("version") is not None
    }
    seed = identity.get("seed", manifest.get("seed"))
    return Provenance(
        checkpoint=_text(checkpoint.get("name")),
        fingerprint=_text(checkpoint.get("fingerprint")) or _text(identity.get("checkpoint")),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        samples=_samples(run),
        haystack=_text(manifest.get("haystack")),
        tokenizer=_text(manifest.get("tokenizer")),
        chat_template=_text(manifest.get("chat_template")),
        task_versions=task_versions,
        ruler_revision=_text(manifest.get("ruler_revision")) or _text(info.get("ruler_revision")),
        git_revision=_text(versions.get("git")),
    )
