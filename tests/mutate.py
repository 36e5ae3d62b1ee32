"""`make mutate`: mutation testing (mutmut) of the modules whose bugs change numbers. Slow; not in CI.

    python tests/mutate.py [MODULE.py ...]             (default: every module in MODULES)
    python tests/mutate.py --recheck MODULE.py [...]   (only the recorded survivors, against today's tests)

Each module runs on its own, in a scratch copy of the working tree (build/mutate/: the repository's
files are never mutated in place), with only its tests selected. An interrupted run resumes: when the
scratch copy was made for the same module from the same sources (the module's package, its tests, and
what they import), mutmut goes on from the mutants it has already decided. Results go to
bench/results/mutation.json: per module killed/total and the surviving mutants, each with its diff and
the reason recorded in SURVIVOR_REASONS (equivalent, and why) or "unexplained". --recheck re-applies
each recorded survivor not explained as equivalent (its diff) to a scratch copy (build/mutate-recheck/)
and runs the module's tests on it in a fresh process: the ones that now fail count as killed, the rest
stay survivors. Much faster than a whole run after adding tests.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "build" / "mutate"
RECHECK_SCRATCH = ROOT / "build" / "mutate-recheck"
OUT = ROOT / "bench" / "results" / "mutation.json"

# module -> the tests that pin it down
MODULES = {
    "ruler_tasks/metrics.py": ["tests/reports/test_scoring.py", "tests/ruler_tasks/test_length_fit_properties.py",
                               "tests/ruler_tasks/test_registry.py", "tests/reports/test_ruler_arithmetic.py"],
    "ruler_tasks/length_fit.py": ["tests/ruler_tasks/test_length_fit.py", "tests/ruler_tasks/test_length_fit_properties.py"],
    "reports/scoring.py": ["tests/reports/test_scoring.py", "tests/reports/test_ci_coverage.py",
                           "tests/reports/test_report_properties.py"],
    "reports/aggregate.py": ["tests/reports/test_aggregate.py", "tests/reports/test_ci_coverage.py",
                             "tests/reports/test_report_properties.py", "tests/reports/test_ruler_arithmetic.py"],
    "evaluation/evaluator.py": ["tests/evaluation/test_evaluator.py"],
    "kernels/linear_attention/reference.py": ["tests/kernels/test_reference_definitions.py",
                                              "tests/kernels/test_full_sequence.py"],
    "kernels/sliding_window/reference.py": ["tests/kernels/test_reference_definitions.py",
                                            "tests/kernels/test_full_sequence.py", "tests/kernels/test_swa_definition.py"],
    "kernels/global_attention/reference.py": ["tests/kernels/test_reference_definitions.py",
                                              "tests/kernels/test_global_attention.py"],
    "kernels/dispatch.py": ["tests/kernels/test_dispatch.py", "tests/kernels/test_dispatch_routing.py",
                           "tests/kernels/test_full_sequence.py", "tests/kernels/test_carried.py",
                           "tests/kernels/test_global_attention.py", "tests/kernels/test_swa_definition.py"],
}

# Modules whose tests run JAX: XLA's thread pools do not survive a fork from a process that has run
# them, so their mutants run under mutmut's fork server with nothing imported before the fork.
FORK_UNSAFE = {m for m in MODULES if m.startswith("kernels/")}

# mutant name -> why it survives: each an equivalent mutant, and why.
SURVIVOR_REASONS: dict[str, str] = {
    "reports.scoring.x_bootstrap_means__mutmut_5": "equivalent: rng.integers(n) and rng.integers(0, n) draw the same stream",
    "reports.scoring.x_cell_rng__mutmut_5": "equivalent: Python's codec names are case-insensitive ('UTF-8' is 'utf-8')",
    "reports.scoring.x_score_run__mutmut_6": "equivalent: sample_scores returns Python floats, which np.asarray makes float64",
    "reports.scoring.x_score_run__mutmut_8": "equivalent: the same dtype=None as mutant 6",
    "reports.aggregate.x_delta__mutmut_46": "equivalent: both scores are rounded to 2 decimals, so their difference "
                                           "rounds to the same value at 2 or 3 decimals",
    "ruler_tasks.length_fit.x_count_pieces__mutmut_27": "equivalent: np.fromiter's count only preallocates",
    "ruler_tasks.length_fit.x_largest_fitting__mutmut_8": "equivalent: mid = (lo + hi + 2) // 2 still lies in (lo, hi], "
                                                         "so the bisection finds the same largest n",
    "ruler_tasks.length_fit.x_fit__mutmut_37": "equivalent: on a tie the kept prompt is as full as the other "
                                              "(fit promises the fullest prompt tokenized)",
    "ruler_tasks.length_fit.x_fit__mutmut_60": "equivalent in effect: the floor applies only when a prompt measures at most one "
                                              "token above its base; 1 or 2 there both leave the estimate nearly flat, "
                                              "and the next round re-measures",
    "evaluation.evaluator.xǁEvaluatorǁ__init____mutmut_12": "equivalent: the default on_record's return value is never used",
    "kernels.linear_attention.reference.x_rla_reference__mutmut_53": "equivalent: jnp.einsum takes upper-case subscripts as labels too; the same contraction",
    "kernels.linear_attention.reference.x_rla_reference__mutmut_64": "equivalent: jnp.einsum takes upper-case subscripts as labels too; the same contraction",
    "kernels.linear_attention.reference.x_rla_reference__mutmut_85": "equivalent: jnp.einsum takes upper-case subscripts as labels too; the same contraction",
    "kernels.linear_attention.reference.x_rla_reference__mutmut_100": "equivalent: jnp.einsum takes upper-case subscripts as labels too; the same contraction",
    "kernels.linear_attention.reference.x_rla_reference__mutmut_27": "equivalent: astype(None) is float32 with jax_enable_x64 off (the project's setting), as astype(float32)",
    "kernels.linear_attention.reference.x_rla_reference__mutmut_36": "equivalent: astype(None) is float32 with jax_enable_x64 off (the project's setting), as astype(float32)",
    "kernels.linear_attention.reference.x_rla_reference__mutmut_38": "equivalent: astype(None) is float32 with jax_enable_x64 off (the project's setting), as astype(float32)",
    "kernels.linear_attention.reference.x_rla_reference__mutmut_87": "equivalent: astype(None) is float32 with jax_enable_x64 off (the project's setting), as astype(float32)",
    "kernels.sliding_window.reference.x_swa_reference__mutmut_29": "equivalent: jnp.einsum takes upper-case subscripts as labels too; the same contraction",
    "kernels.sliding_window.reference.x_swa_reference__mutmut_62": "equivalent: jnp.einsum takes upper-case subscripts as labels too; the same contraction",
    "kernels.sliding_window.reference.x_swa_reference__mutmut_18": "equivalent: astype(None) is float32 with jax_enable_x64 off (the project's setting), as astype(float32)",
    "kernels.sliding_window.reference.x_swa_reference__mutmut_30": "equivalent: astype(None) is float32 with jax_enable_x64 off (the project's setting), as astype(float32)",
    "kernels.sliding_window.reference.x_swa_reference__mutmut_63": "equivalent: astype(None) is float32 with jax_enable_x64 off (the project's setting), as astype(float32)",
    "kernels.global_attention.reference.x_attention_reference__mutmut_19": "equivalent: jnp.einsum takes upper-case subscripts as labels too; the same contraction",
    "kernels.global_attention.reference.x_attention_reference__mutmut_40": "equivalent: jnp.einsum takes upper-case subscripts as labels too; the same contraction",
    "kernels.global_attention.reference.x_attention_reference__mutmut_41": "equivalent: astype(None) is float32 with jax_enable_x64 off (the project's setting), as astype(float32)",
    "kernels.sliding_window.reference.x_masked_softmax_rows__mutmut_27": "equivalent: a row with no unmasked entry is zeroed by the mask whatever its max is replaced with",
    "kernels.sliding_window.reference.x_masked_softmax_rows__mutmut_56": "equivalent: a row with an unmasked entry has denominator >= 1 (its max contributes exp(0)); only rows of exactly 1 differ, and p / 1 is p",
    "kernels.sliding_window.reference.x_masked_softmax_rows__mutmut_57": "equivalent: a row with no unmasked entry is all zeros, and 0 / 2 is 0 / 1",
    **{f"kernels.dispatch.x__swa_core__mutmut_{n}": "equivalent: _pallas_module takes the SWA module for every op "
                                                     "other than 'rla'" for n in (4, 5, 6)},
    "kernels.dispatch.x__global_uses_cudnn__mutmut_21": "equivalent: no head dim in (128, 129] is a multiple of 8",
    "kernels.dispatch.x__decline_reason__mutmut_29": "equivalent: no head dim in (128, 129] is a multiple of 8",
    **{name: "equivalent: each backend's RLA and SWA Pallas modules share one decline_reason, so the op only "
             "picks which module asks" for name in ("kernels.dispatch.x__resolve__mutmut_34",
                                                    "kernels.dispatch.x__decline_reason__mutmut_38")},
    **{name: "equivalent: no decline rule reads the window (cuDNN's, Triton's and Mosaic's are about dtype, head "
             "dim and left padding)" for name in ("kernels.dispatch.x__resolve__mutmut_39",
                                                  "kernels.dispatch.x__decline_reason__mutmut_34")},
    **{f"kernels.dispatch.x__resolve__mutmut_{n}": "equivalent: the assertion is unreachable (every AUTO list ends "
                                                    "with xla, which declines nothing), so its message is never seen"
       for n in (57, 58, 59)},
}

STATUS = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")
IMPORT = re.compile(r"^(?:from|import) (\w+)", re.MULTILINE)


def _listed() -> list[str]:
    """The working tree's tracked and unignored files (not .venv, build/ or runs/), relative to ROOT."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    return sorted(rel for rel in listed if rel and (ROOT / rel).is_file())


def _visible_sources(module: str) -> list[str]:
    """The files a module's run depends on: its selected test files and their directories' helpers,
    tests/conftest.py, pyproject.toml, and every file of the project packages the module's package and
    those tests import, followed transitively (by their import lines)."""
    listed = [rel for rel in _listed() if rel.endswith(".py")]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    test_dirs = {str(Path(t).parent) for t in MODULES[module]}
    files = {rel for rel in listed if str(Path(rel).parent) in test_dirs} | {"tests/conftest.py", "pyproject.toml"}
    wanted, seen = {module.split("/")[0]}, set()
    scan = set(files)
    while wanted - seen:
        seen |= wanted
        scan |= {rel for rel in listed if rel.split("/")[0] in wanted}
        imported = {m.group(1) for rel in scan for m in IMPORT.finditer((ROOT / rel).read_text(encoding="utf-8"))}
        wanted = seen | (imported & packages)
    return sorted(scan)


def _sources_digest(module: str) -> str:
    """A hash of the module, its selected tests and the contents of every file they can see."""
    digest = hashlib.sha256(json.dumps([module, MODULES[module]]).encode())
    for rel in _visible_sources(module):
        digest.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes())
    return digest.hexdigest()


def _copy_tree(dest: Path) -> None:
    """The working tree's tracked and unignored files into dest."""
    for rel in _listed():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)


def _configure(dest: Path, module: str, tests: list[str]) -> None:
    """Appends a [tool.mutmut] section to the scratch copy's pyproject.toml."""
    packages = sorted(p.parent.name for p in dest.glob("*/__init__.py") if p.parent.name != "tests")
    section = (
        "\n[tool.mutmut]\n"
        f"source_paths = {json.dumps(packages)}\n"
        f"only_mutate = {json.dumps([module])}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:xdist", "-p", "no:cacheprovider", "-q"]\n'
    )
    if module in FORK_UNSAFE:
        section += 'process_isolation = "forkserver"\nforkserver_warmup = "none"\n'
    with open(dest / "pyproject.toml", "a", encoding="utf-8") as f:
        f.write(section)


def _diff(mutant: str) -> list[str]:
    """The mutant's changed lines ("-" original, "+" mutated), from `mutmut show`."""
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=SCRATCH, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    return [line.rstrip() for line in shown if line[:1] in "-+" and line[:3] not in ("---", "+++")]


def mutate(module: str) -> dict:
    """Runs mutmut on one module -> {"killed", "total", "score", "statuses", "survivors"}."""
    stamp, digest = SCRATCH / ".sources-digest", _sources_digest(module)
    if not (stamp.is_file() and stamp.read_text(encoding="utf-8") == digest):
        shutil.rmtree(SCRATCH, ignore_errors=True)
        SCRATCH.mkdir(parents=True)
        _copy_tree(SCRATCH)
        _configure(SCRATCH, module, MODULES[module])
        stamp.write_text(digest, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", "1"], cwd=SCRATCH, check=True)
    listing = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=SCRATCH,
                             check=True, capture_output=True, text=True).stdout
    statuses = dict(m.groups() for m in map(STATUS.match, listing.splitlines()) if m)
    killed = sum(s in ("killed", "timeout", "segfault") for s in statuses.values())
    survivors = [
        {"mutant": name, "status": status, "reason": SURVIVOR_REASONS.get(name, "unexplained"), "diff": _diff(name)}
        for name, status in sorted(statuses.items())
        if status not in ("killed", "timeout", "segfault")
    ]
    return {"killed": killed, "total": len(statuses), "score": round(killed / max(len(statuses), 1), 3),
            "tests": MODULES[module], "survivors": survivors}


def _apply(source: str, diff: list[str]) -> str | None:
    """`source` with the diff's "-" lines replaced by its "+" lines, or None when they are not found once."""
    old = "\n".join(line[1:] for line in diff if line.startswith("-"))
    new = "\n".join(line[1:] for line in diff if line.startswith("+"))
    return source.replace(old, new) if old and source.count(old) == 1 else None


def recheck(module: str, entry: dict) -> dict:
    """The module's entry with each recorded survivor not explained as equivalent re-run against the
    module's current tests (a fresh pytest process per mutant); those the tests now fail count as killed."""
    shutil.rmtree(RECHECK_SCRATCH, ignore_errors=True)
    RECHECK_SCRATCH.mkdir(parents=True)
    _copy_tree(RECHECK_SCRATCH)
    path = RECHECK_SCRATCH / module
    original = path.read_text(encoding="utf-8")
    survivors = []
    for survivor in entry["survivors"]:
        reason = SURVIVOR_REASONS.get(survivor["mutant"], "unexplained")
        mutated = None if reason.startswith("equivalent") else _apply(original, survivor["diff"])
        if mutated is not None:
            path.write_text(mutated, encoding="utf-8")
            tests = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *MODULES[module]],
                                   cwd=RECHECK_SCRATCH, capture_output=True)
            path.write_text(original, encoding="utf-8")
            if tests.returncode != 0:
                continue
        survivors.append({**survivor, "reason": reason})
    killed = entry["total"] - len(survivors)
    return {**entry, "killed": killed, "score": round(killed / max(entry["total"], 1), 3), "tests": MODULES[module],
            "survivors": survivors}


def main(argv: list[str]) -> int:
    rechecking = argv[:1] == ["--recheck"]
    argv = argv[1:] if rechecking else argv
    modules = argv or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        print(f"error: unknown module(s) {unknown}; pick from {list(MODULES)}", file=sys.stderr)
        return 2
    from importlib.metadata import version

    earlier = json.loads(OUT.read_text(encoding="utf-8"))["modules"] if OUT.is_file() else {}
    if rechecking:
        missing = [m for m in modules if m not in earlier]
        if missing:
            print(f"error: no recorded run of {missing} to recheck; run make mutate MUTATE=\"{' '.join(missing)}\" first",
                  file=sys.stderr)
            return 2
        results = {m: {**recheck(m, earlier[m]), "rechecked": f"python tests/mutate.py --recheck {m}"} for m in modules}
    else:
        command = "nice -n 15 make mutate MUTATE=\"" + " ".join(modules) + "\""
        results = {module: {**mutate(module), "command": command} for module in modules}
    merged = {**earlier, **results}  # modules not rerun keep their last results
    report = {
        "tool": f"mutmut {version('mutmut')}",
        "modules": merged,
        "not_run": [m for m in MODULES if m not in merged],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(f".{OUT.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(OUT)
    for module, r in results.items():
        print(f"{module}: {r['killed']}/{r['total']} killed; survivors: {[s['mutant'] for s in r['survivors']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
