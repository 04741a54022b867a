"""Run every benchmark: ``python -m benchmarks`` (full, as issue 8 asks) or ``--quick`` (a smoke run).

Exits 1 when a target is missed. Writes the figures to ``benchmarks/results/<mode>.json`` and
renders ``docs/benchmarks.md`` from every stored mode.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import BenchResult, load, machine, timed
from benchmarks.report import render

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = (
    "emulator",
    "trigger-scale",
    "request-economy",
    "import-cost",
    "results",
    "real-triggerer",
    "distributed-triggerers",
    "rate-budget",
    "quick-deferrals",
)
QUICK = {
    "triggers": 200,
    "seconds": 20.0,
    "warmup": 5.0,
    "probe": 3.0,
    "import_runs": 5,
    "economy_t": 6.0,
    "real_tasks": 50,
    "real_seconds": 20.0,
    "real_frozen_seconds": 15.0,
    "dist_split": 500,
    "dist_steps": [1000],
    "dist_seconds": 20.0,
    "budget_pipelines": 100,
    "budget_per_process": 30,
    "quick_tasks": 8,
}
FULL = {
    "triggers": 1000,
    "seconds": 120.0,
    "warmup": 10.0,
    "probe": 5.0,
    "import_runs": 20,
    "economy_t": 8.0,
    "real_tasks": 200,
    "real_seconds": 120.0,
    "real_frozen_seconds": 60.0,
    "dist_split": 1000,
    "dist_steps": [2000, 3000, 5000],
    "dist_seconds": 30.0,
    "budget_pipelines": 500,
    "budget_per_process": 100,
    "quick_tasks": 20,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 triggers x 20 s, 5 import samples")
    parser.add_argument("--triggers", type=int, help="concurrent triggers (full: 1000, quick: 200)")
    parser.add_argument("--seconds", type=float, help="measured window of the trigger run (full: 120)")
    parser.add_argument("--import-runs", type=int, help="fresh interpreters per module (full: 20)")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.getLogger("airflow").setLevel(logging.ERROR)
    logging.getLogger("airflow_provider_dune").setLevel(logging.ERROR)
    logging.getLogger("benchmarks").setLevel(logging.ERROR)
    settings: dict[str, Any] = dict(QUICK if args.quick else FULL)
    if args.triggers:
        settings["triggers"] = args.triggers
    if args.seconds:
        settings["seconds"] = args.seconds
    if args.import_runs:
        settings["import_runs"] = args.import_runs
    mode = "quick" if args.quick else "full"
    if (args.triggers or args.seconds or args.import_runs) and settings != (QUICK if args.quick else FULL):
        mode += "-custom"
    chosen = [name.strip() for name in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmarks: {sorted(unknown)}; choose from {BENCHMARKS}", file=sys.stderr)
        return 2
    command = ("python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))).strip()
    base = "python -m benchmarks" + (" --quick" if args.quick else "")

    def only(name: str, extra: str = "") -> str:
        return f"{base} --only {name}{extra}"

    scale_extra = f" --triggers {settings['triggers']} --seconds {settings['seconds']:g}"
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"{started:%Y-%m-%d %H:%M} UTC, load {load()}, settings {settings}", flush=True)
    results: list[BenchResult] = []

    def step(name: str, produce: Any) -> None:
        print(f"-- {name} (load {load()})", flush=True)
        produced = produce()
        for result in produced if isinstance(produced, list) else [produced]:
            results.append(result)
            show(result)

    if "trigger-scale" in chosen:
        from benchmarks import trigger_scale

        def scale() -> list[BenchResult]:
            out: list[BenchResult] = []
            box = BenchResult("trigger-scale")
            with timed(box):
                out = trigger_scale.run(
                    triggers=settings["triggers"],
                    seconds=settings["seconds"],
                    warmup=settings["warmup"],
                    probe_seconds=settings["probe"],
                    command=only("trigger-scale", scale_extra),
                    emulator_command=only("trigger-scale", scale_extra),
                )
            for result in out:
                result.load_before, result.load_after, result.seconds = (
                    box.load_before,
                    box.load_after,
                    box.seconds,
                )
            return out  # the emulator probe runs with it, so its figure is always reported

        step("trigger-scale", scale)
    elif "emulator" in chosen:
        from benchmarks import trigger_scale

        def emulator_only() -> BenchResult:
            box = BenchResult("emulator")
            with timed(box):
                result = trigger_scale.run_emulator_only(settings["probe"], only("emulator"))
            result.load_before, result.load_after, result.seconds = (
                box.load_before,
                box.load_after,
                box.seconds,
            )
            return result

        step("emulator", emulator_only)
    for name, module_name, kwargs in (
        (
            "request-economy",
            "request_economy",
            {"execution_seconds": settings["economy_t"], "pipelines": 3, "command": only("request-economy")},
        ),
        (
            "import-cost",
            "import_cost",
            {
                "runs": settings["import_runs"],
                "command": only("import-cost", f" --import-runs {settings['import_runs']}"),
            },
        ),
        ("results", "results", {"command": only("results")}),
        (
            "real-triggerer",
            "real_triggerer",
            {
                "tasks": settings["real_tasks"],
                "seconds": settings["real_seconds"],
                "frozen_seconds": settings["real_frozen_seconds"],
                "warmup": settings["warmup"],
                "command": only("real-triggerer"),
            },
        ),
        (
            "rate-budget",
            "rate_budget",
            {
                "pipelines": settings["budget_pipelines"],
                "per_process": settings["budget_per_process"],
                "command": only("rate-budget"),
            },
        ),
        (
            "quick-deferrals",
            "quick_deferrals",
            {"tasks": settings["quick_tasks"], "command": only("quick-deferrals")},
        ),
        (
            "distributed-triggerers",
            "distributed_triggerers",
            {
                "split": settings["dist_split"],
                "steps": settings["dist_steps"],
                "seconds": settings["dist_seconds"],
                "warmup": settings["warmup"],
                "command": only("distributed-triggerers"),
            },
        ),
    ):
        if name not in chosen:
            continue
        module = __import__(f"benchmarks.{module_name}", fromlist=["run"])

        def produce(module: Any = module, kwargs: dict[str, Any] = kwargs, name: str = name) -> BenchResult:
            box = BenchResult(name)
            with timed(box):
                result: BenchResult = module.run(**kwargs)
            result.load_before, result.load_after, result.seconds = (
                box.load_before,
                box.load_after,
                box.seconds,
            )
            return result

        step(name, produce)

    missed = [f for r in results for f in r.figures if f.passed is False]
    run_record = {
        "mode": mode,
        "date": f"{started:%Y-%m-%d %H:%M} UTC",
        "command": command,
        "settings": settings,
        "machine": machine(),
        # Each result keeps its own date: `--only` merges a partial run into the stored one.
        "results": {r.name: {**r.to_dict(), "date": f"{started:%Y-%m-%d %H:%M} UTC"} for r in results},
    }
    if not args.no_write:
        store = Path(__file__).resolve().parent / "results" / f"{mode}.json"
        store.parent.mkdir(exist_ok=True)
        if store.exists() and args.only:
            previous = json.loads(store.read_text())
            previous["results"].update(run_record["results"])
            previous.update({k: v for k, v in run_record.items() if k != "results"})
            run_record = previous
        store.write_text(json.dumps(run_record, indent=1, default=str) + "\n")
        runs = [json.loads(path.read_text()) for path in sorted(store.parent.glob("*.json"))]
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "benchmarks.md").write_text(render(runs))
        print(f"wrote {store.relative_to(ROOT)} and docs/benchmarks.md")
    print(f"{len(missed)} target(s) missed" + "".join(f"\n  MISSED {f.benchmark}: {f.name}" for f in missed))
    return 1 if missed else 0


def show(result: BenchResult) -> None:
    if result.skipped:
        print(f"   {result.name}: SKIPPED {result.skipped}")
    for f in result.figures:
        verdict = {True: "PASS", False: "MISS", None: "info"}[f.passed]
        ratio = f" ({f.ratio}x of {f.baseline_value})" if f.ratio is not None else ""
        print(f"   [{verdict}] {f.name}: {f.value} {f.unit}{ratio}; target {f.target}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
