"""The `driftwatch` command line: train, promote, roll back, inspect, and run the services."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from driftwatch.redact import redact
from model_registry.errors import RegistryError
from model_registry.settings import RegistrySettings
from model_registry.versions import VersionInfo


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def _actor() -> str:
    try:
        return f"{getpass.getuser()} via cli"
    except Exception:  # getuser fails without a passwd entry (containers)
        return "cli"


def _quiet_libraries() -> None:
    """MLflow and friends are chatty; the CLI prints its own sentences."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic", "urllib3", "git", "skops"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _registry_settings() -> RegistrySettings:
    try:
        return RegistrySettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]).upper()
        raise CommandError(f"setting DRIFTWATCH_{field} is invalid: {first['msg']}") from None


# ------------------------------------------------------------------ commands
def cmd_train(args: argparse.Namespace) -> int:
    from model_registry.faults import FaultSpec
    from model_registry.training import train_and_register

    fault = None
    if args.fault:
        try:
            fault = FaultSpec.parse(args.fault)
        except ValueError as exc:
            raise CommandError(f"--fault: {exc}") from None
    settings = _registry_settings()
    register = args.register or args.promote
    result = train_and_register(settings, model=args.model, fault=fault, seed=args.seed,
                                register=register, promote=args.promote, actor=_actor())
    m = result.metrics
    print(f"trained {args.model}: test_accuracy={m['test_accuracy']:.4f} f1_macro={m['f1_macro']:.4f} "
          f"roc_auc_ovr={m['roc_auc_ovr']:.4f} overfit_gap={m['overfit_gap']:+.4f} (run {result.run_id})")
    if result.version is not None:
        suffix = f" with fault {fault.describe()} (for drills)" if fault else ""
        print(f"registered {settings.model_name} v{result.version} with reference data{suffix}")
    return _gate_verdict(result.version, result.gate, result.promoted)


def _gate_verdict(version: str | None, gate: Any, promoted: bool) -> int:
    """Print the quality gate's verdict; exit status 3 when it refused."""
    if gate is None:
        return 0
    print(f"{'promoted' if promoted else 'not promoted'} v{version}: {gate.reason}")
    return 0 if promoted else 3


def _names(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",")] if text else None


def cmd_register(args: argparse.Namespace) -> int:
    from model_registry.register import read_table, register

    settings = _registry_settings()
    strings = _names(args.string_columns) or []
    train = read_table(args.train, string_columns=strings)
    if args.target not in train.columns:
        raise CommandError(f"--target {args.target!r} is not a column of {args.train} "
                           f"(columns: {', '.join(map(str, train.columns[:20]))})")
    x_train, y_train = train.drop(columns=[args.target]), train[args.target]
    x_holdout = y_holdout = None
    if args.holdout:
        holdout = read_table(args.holdout, string_columns=strings)
        if args.target not in holdout.columns:
            raise CommandError(f"--target {args.target!r} is not a column of {args.holdout}")
        x_holdout, y_holdout = holdout.drop(columns=[args.target]), holdout[args.target]
    elif args.promote:
        raise CommandError("--promote needs --holdout FILE: the quality gate scores the candidate and production "
                           "on the same holdout")
    result = register(args.model, x_train, y_train, x_holdout=x_holdout, y_holdout=y_holdout,
                      name=args.name, task=args.task, class_names=_names(args.class_names), promote=args.promote,
                      gate_metric=args.gate_metric, settings=settings, actor=_actor())
    name = args.name or settings.model_name
    shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()) if k.startswith("test_") or
                     k in ("f1_macro", "roc_auc_ovr"))
    print(f"registered {name} v{result.version} ({result.task}) with reference data (run {result.run_id})"
          + (f": {shown}" if shown else ""))
    return _gate_verdict(result.version, result.gate, result.promoted)


def cmd_promote(args: argparse.Namespace) -> int:
    from model_registry.client import ModelRegistry

    settings = _registry_settings()
    result = ModelRegistry(settings).promote(args.version, actor=_actor(), reason=args.reason or "manual",
                                             force=args.force)
    target = settings.model_alias if settings.registry_mode == "alias" else "Production"
    if not result.changed:
        print(f"v{result.version} is already {target}; nothing changed")
    else:
        replaced = f", replacing v{result.previous}" if result.previous else ""
        print(f"promoted {settings.model_name} v{result.version} to {target}{replaced}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from model_registry.client import ModelRegistry

    settings = _registry_settings()
    result = ModelRegistry(settings).rollback(to=args.to, reason=args.reason, actor=_actor())
    print(f"rolled back {settings.model_name}: now serving v{result.to_version}, "
          f"v{result.from_version} quarantined ({args.reason})")
    return 0


def _versions_rows(versions: Sequence[VersionInfo], mode: str) -> list[list[str]]:
    from model_registry.gate import DEFAULT_GATE_METRIC

    rows = [["VERSION", "ALIAS" if mode == "alias" else "STAGE", "MODEL", "TASK", "METRIC", "CREATED",
             "QUARANTINED", "WHO/WHY"]]
    for v in versions:
        place = ",".join(v.aliases) if mode == "alias" else v.stage
        task = v.task or ("regression" if "test_rmse" in v.metrics else "classification")
        metric = DEFAULT_GATE_METRIC["regression" if task == "regression" else "classification"]
        score = v.metrics.get(metric)
        model = v.tags.get("driftwatch.model", "-") + (f" [fault {v.fault}]" if v.fault else "")
        if v.quarantined:
            quarantined = v.tags.get("driftwatch.quarantined_at", "yes")
            who = (f"{v.tags.get('driftwatch.quarantined_by', '?')}: {v.quarantine_reason or ''}"
                   + (f" (alert {v.tags['driftwatch.quarantine_alert']})"
                      if v.tags.get("driftwatch.quarantine_alert") else ""))
        else:
            quarantined = "-"
            who = (f"{v.tags.get('driftwatch.promoted_by')}: promoted"
                   + (f", replaced v{v.previous_version}" if v.previous_version else "")
                   if v.tags.get("driftwatch.promoted_by") else "-")
        rows.append([v.version, place or "-", model, task, "-" if score is None else f"{metric}={score:.4g}",
                     v.created_at.strftime("%Y-%m-%d %H:%M:%S"), quarantined, who])
    return rows


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def cmd_versions(args: argparse.Namespace) -> int:
    from model_registry.client import ModelRegistry

    settings = _registry_settings()
    registry = ModelRegistry(settings)
    if not registry.model_exists():
        raise CommandError(f"model {settings.model_name!r} is not registered yet; "
                           "register one with `driftwatch register` (`driftwatch train --promote` for the Iris demo)")
    print(format_table(_versions_rows(registry.list_versions(), settings.registry_mode)))
    return 0


def _service(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        importlib.import_module(f"{module}.__main__").main()
        return 0

    return run


def cmd_feedback(args: argparse.Namespace) -> int:
    from pathlib import Path

    import httpx

    from quality.client import FeedbackFileError, frame_to_items, read_feedback_file, send_feedback

    token = os.environ.get("DRIFTWATCH_QUALITY_TOKEN")
    token_file = os.environ.get("DRIFTWATCH_QUALITY_TOKEN_FILE")
    if not token and token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise CommandError(f"DRIFTWATCH_QUALITY_TOKEN_FILE {token_file} cannot be read: {exc.strerror}") from None
    url = args.url or os.environ.get("DRIFTWATCH_QUALITY_URL", "http://127.0.0.1:9103")
    try:
        items = frame_to_items(read_feedback_file(Path(args.file)))
        summary = send_feedback(url, items, token=token, batch=args.batch)
    except FeedbackFileError as exc:
        raise CommandError(str(exc)) from None
    except httpx.HTTPError as exc:
        raise CommandError(f"the quality service at {url} cannot be reached ({type(exc).__name__}); is it running "
                           "(`driftwatch quality`, or `driftwatch up`)? Set DRIFTWATCH_QUALITY_URL or --url") from None
    print(f"{summary.sent} labels sent: {summary.joined} joined with their prediction, {summary.pending} waiting "
          f"for a prediction id not seen yet, {summary.duplicate} duplicates (the first label wins)")
    if summary.unknown_ids:
        print("first unknown ids: " + ", ".join(summary.unknown_ids[:5]))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from driftwatch.stack import run_up

    try:
        return run_up(with_mlflow_server=args.mlflow_server, backend=args.backend, replicas=args.replicas)
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None


def cmd_down(args: argparse.Namespace) -> int:
    from driftwatch.stack import run_down

    return run_down()


def cmd_demo(args: argparse.Namespace) -> int:
    from driftwatch.demo import run_demo

    return run_demo(keep_running=args.keep_running, backend=args.backend)


# ------------------------------------------------------------------ parser
def _replica_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of replicas") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("the number of replicas must be between 1 and 64")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftwatch",
        description="Watch a model in production and undo a bad release automatically.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="fit a model, log it to MLflow, optionally register and promote it")
    p.add_argument("--model", choices=["logreg", "svm"], default="logreg")
    p.add_argument("--register", action="store_true", help="register a new version with its reference data")
    p.add_argument("--promote", action="store_true", help="register, then promote if the quality gate passes")
    p.add_argument("--fault", metavar="SPEC", help="register a faulty version for drills: errors=0.5, latency=0.25 "
                                                          "or flip=0.3 (a share of answers silently wrong)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("register", help="register a model you trained, with its reference data and holdout metrics",
                       description="Register your own model: MODEL is an MLflow model URI (runs:/..., models:/...), "
                                   "a local MLflow model folder, or a joblib/pickle file of a fitted estimator.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--train", required=True, metavar="FILE", help="training data, CSV or Parquet (features + target)")
    p.add_argument("--target", required=True, metavar="COLUMN", help="the target column of --train and --holdout")
    p.add_argument("--holdout", metavar="FILE", help="holdout data (CSV or Parquet): metrics and the quality gate")
    p.add_argument("--name", metavar="NAME", help="registered model name (default: DRIFTWATCH_MODEL_NAME)")
    p.add_argument("--task", choices=["classification", "regression"], help="override the detected task kind")
    p.add_argument("--class-names", metavar="A,B,...", help="display names of the classes, in classes_ order")
    p.add_argument("--string-columns", metavar="A,B,...", help="CSV columns to keep as text even if they look numeric")
    p.add_argument("--gate-metric", metavar="METRIC",
                   help="quality gate metric (default: test_accuracy for classifiers, test_rmse for regressors)")
    p.add_argument("--promote", action="store_true", help="promote if the quality gate passes (needs --holdout)")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("promote", help="make VERSION production, recording the version it replaces")
    p.add_argument("version")
    p.add_argument("--reason", default="")
    p.add_argument("--force", action="store_true",
                   help="promote anyway: a quarantined version (lifting the quarantine), one without reference data, "
                        "or one whose inputs or task differ from production's")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="go back to the recorded previous version (or --to VERSION)")
    p.add_argument("--to", metavar="VERSION")
    p.add_argument("--reason", default="manual rollback")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("versions", help="table of versions: alias/stage, metrics, created, quarantined")
    p.set_defaults(func=cmd_versions)

    for name, module, text in (("serve", "serving", "the prediction service"),
                               ("drift-exporter", "drift_exporter", "the drift exporter"),
                               ("rollback-webhook", "rollback_webhook", "the rollback webhook"),
                               ("quality", "quality", "the quality service (feedback, live quality)")):
        p = sub.add_parser(name, help=f"run {text} in the foreground")
        p.set_defaults(func=_service(module))

    p = sub.add_parser("feedback", help="send true outcomes (CSV or Parquet: prediction_id, actual[, timestamp]) "
                                        "to the quality service")
    p.add_argument("file")
    p.add_argument("--url", help="the quality service (default $DRIFTWATCH_QUALITY_URL or http://127.0.0.1:9103)")
    p.add_argument("--batch", type=int, default=10_000, help="labels per request (default 10000)")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("up", help="run the whole stack on this machine as processes (Ctrl-C stops it)")
    p.add_argument("--mlflow-server", action="store_true", help="also run an MLflow tracking server on :5000")
    p.add_argument("--backend", choices=["sqlite", "postgres"], default=None,
                   help="registry backend: the embedded SQLite file (default), or `mlflow server` on a local "
                        "PostgreSQL with S3 artifacts (setting DRIFTWATCH_BACKEND)")
    p.add_argument("--replicas", type=_replica_count, metavar="N",
                   help="N serving processes behind nginx on the serving port (default: one, no balancer)")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("down", help="stop a stack started by `driftwatch up`")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("demo", help="a release goes bad and is undone, end to end, with a timeline")
    p.add_argument("--keep-running", action="store_true", help="leave the stack running afterwards")
    p.add_argument("--backend", choices=["sqlite", "postgres"], default=None,
                   help="registry backend for the scenario (default: the embedded SQLite file)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in {"serve", "drift-exporter", "rollback-webhook", "quality"}:
        _quiet_libraries()
    try:
        code: int = args.func(args)
        return code
    except CommandError as exc:
        print(f"driftwatch: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except RegistryError as exc:
        print(f"driftwatch: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
