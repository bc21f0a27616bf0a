"""Command line: `python -m dfd_utils run|data|score|leaderboard|bench|race|train-ddpm …` (also installed as `dfd`)."""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dfd_utils", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute the notebooks with papermill under a profile")
    run.add_argument("--profile", default="default", choices=("smoke", "default", "full"))
    run.add_argument("--only", default="", help="comma-separated notebook number prefixes, e.g. 00,03")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a parameter (value parsed as YAML); repeatable")
    run.add_argument("--cell-timeout", type=int, default=None,
                     help="seconds one cell may run (default: the profile's, runner.CELL_TIMEOUTS)")
    data = commands.add_parser("data", help="find CIFAKE by the resolution order and print where it is")
    data.add_argument("--source", default=None, help="CIFAKE folder or zip to check instead")
    score = commands.add_parser("score", help="score image files, folders or zips with saved detectors → CSV")
    score.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or zips (REAL/ + FAKE/ = labelled)")
    score.add_argument("--detector", default="all", help="comma-separated detector names, or all (default)")
    score.add_argument("--profile", default="default", choices=("smoke", "default", "full"),
                       help="whose saved detectors to use (results/<profile>/)")
    score.add_argument("--out", default="scores.csv", help="the CSV to write (skipped files go beside it)")
    board = commands.add_parser("leaderboard", help="print the leaderboard from the records (or write it into README.md)")
    board.add_argument("--profile", default="default", choices=("smoke", "default", "full"))
    board.add_argument("--write-readme", action="store_true", help="replace the README's generated results section")
    pages = commands.add_parser("html", help="render a profile's executed reports to HTML with an index page")
    pages.add_argument("--profile", default="default", choices=("smoke", "default", "full"))
    pages.add_argument("--out", default=None, help="folder (default: build/html/<profile>/)")
    bench = commands.add_parser("bench", help="print speed/memory figures (and the CPU they were measured on)")
    bench.add_argument("what", choices=("data", "dire", "training", "score", "zoo"))
    bench.add_argument("--profile", default=None, choices=("smoke", "default", "full"),
                       help="score: whose saved detectors (default: default); zoo: whose notebook 02 (default: full)")
    bench.add_argument("--source", default=None, help="CIFAKE folder or zip (default: resolution order)")
    bench.add_argument("--diffusion", default="ddpm_cifake_real", help="dire: the kept diffusion model (or hub)")
    race = commands.add_parser("race", help="rerun a model-selection race of notebook 04 and save its table")
    race.add_argument("what", choices=("v4-designs", "v4-recipes"))
    race.add_argument("--profile", default="default", choices=("smoke", "default", "full"),
                      help="the table goes to results/<profile>/races/")
    race.add_argument("--source", default=None, help="CIFAKE folder or zip (default: resolution order)")
    race.add_argument("--seconds", type=float, default=200, help="v4-designs: training time per design")
    race.add_argument("--per-class", type=int, default=15000, help="v4-recipes: training images per class")
    race.add_argument("--epochs", type=int, default=11, help="v4-recipes: epochs per recipe")
    ddpm = commands.add_parser("train-ddpm", help="train an offline DIRE diffusion model on CIFAKE REAL train images "
                               "(checkpointed: rerunning resumes it until --minutes are spent)")
    ddpm.add_argument("--name", default="ddpm_cifake_real", help="kept as dfd_utils/checkpoints/NAME/; a known name "
                      "(ddpm_cifake_real, ddpm_cifake_real_6m) brings its recipe, which the options below override")
    ddpm.add_argument("--minutes", type=float, help="training time budget over every session")
    ddpm.add_argument("--channels", type=int, nargs="+", help="UNet block widths")
    ddpm.add_argument("--layers-per-block", type=int)
    ddpm.add_argument("--batch-size", type=int)
    ddpm.add_argument("--lr", type=float)
    ddpm.add_argument("--warmup-steps", type=int)
    ddpm.add_argument("--ema-decay", type=float, help="the kept weights are this moving average (0: the last weights)")
    ddpm.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="auto: bf16 where native")
    ddpm.add_argument("--held-out", type=int, default=512, help="REAL training images kept out for the denoising loss")
    ddpm.add_argument("--source", default=None, help="CIFAKE folder or zip (default: resolution order)")
    ddpm.add_argument("--out", default=None, help="folder to keep the model in (default: dfd_utils/checkpoints/NAME)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        from .runner import ParameterError, parse_value, run_notebooks

        overrides = {name: parse_value(value) for name, value in args.param}
        only = [part.strip() for part in args.only.split(",") if part.strip()]
        try:
            ok = run_notebooks(args.profile, only, overrides, args.cell_timeout)
        except ParameterError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0 if ok else 1
    if args.command == "data":
        from .data import DataError, resolve_cifake

        try:
            print(f"CIFAKE: {resolve_cifake(args.source)}")
        except DataError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    if args.command == "score":
        from .detectors import DetectorError
        from .scoring import ScoreError, run

        try:
            run(args.paths, args.detector, args.profile, args.out)
        except (ScoreError, DetectorError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    if args.command == "leaderboard":
        from . import report

        if args.write_readme:
            print(f"updated {report.write_readme(args.profile)}")
        else:
            print(report.summary(args.profile))
        return 0
    if args.command == "html":
        from . import report

        print(f"wrote {report.build_html(args.profile, args.out)}")
        return 0
    if args.command == "bench":
        from . import bench as benchmarks

        if args.what == "data":
            benchmarks.bench_data(args.source)
        elif args.what == "dire":
            benchmarks.bench_dire(model=args.diffusion)
        elif args.what == "zoo":
            benchmarks.bench_zoo(args.profile or "full", source=args.source)
        elif args.what == "score":
            benchmarks.bench_score(profile=args.profile or "default")
        else:
            benchmarks.bench_training()
        return 0
    if args.command == "race":
        from .methods import detector_cnn
        from .runs import save_race

        used = {"v4-designs": ("seconds",), "v4-recipes": ("per_class", "epochs")}[args.what]
        settings = {name: getattr(args, name) for name in used + ("source",)}  # what this race ran with, nothing else
        table = (detector_cnn.race_designs(**settings) if args.what == "v4-designs" else detector_cnn.race_recipes(**settings))
        print(f"saved → {save_race(table, args.what, args.profile, settings)}")
        return 0
    if args.command == "train-ddpm":
        from . import data
        from .methods import dire
        from .paths import checkpoints_dir

        recipe = dict(dire.RECIPES.get(args.name, dire.RECIPES["ddpm_cifake_real"]))
        recipe.update({name: getattr(args, name) for name in recipe if getattr(args, name) is not None})
        images, held_out = dire.held_out_real(data.load_cifake("train", args.source), args.held_out)
        state = checkpoints_dir("train-ddpm") / f"{args.name}.pt"
        print(f"training {args.name}: {recipe}; state kept in {state} (rerun to resume)")
        unet, record = dire.train_ddpm(images, held_out, checkpoint=state, **recipe)
        folder = dire.save_diffusion(unet, record, args.out or dire.CHECKPOINTS / args.name)
        print(f"trained {record['steps']:,} steps in {record['train_seconds'] / 60:.1f} of {recipe['minutes']:g} min "
              f"({record['seconds_per_step']:.2f} s/step, {record['precision']}), held-out denoising loss "
              f"{record['val_loss']:.4f} → {folder}")
        return 0
    return 2
