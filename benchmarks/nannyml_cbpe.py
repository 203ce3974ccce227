"""NannyML's side of bench_quality.py's CBPE comparison. Runs inside benchmarks/.venv-nannyml (made by
`make bench-nannyml`), never in the project's virtualenv: NannyML 0.13 pins botocore (through s3fs ->
aiobotocore) below what boto3 in our own dependencies needs.

    export --out DIR            write NannyML's shipped data sets with drift as CSV files, one folder each
                                (reference.csv, analysis.csv with the true labels, meta.json)
    estimate DIR --chunk-size N run NannyML's CBPE (accuracy) on DIR's files; write DIR/nannyml.json
                                (per analysis chunk: first and last row, estimated accuracy; seconds)

bench_quality.py reads the same files for its own estimate, so both are measured on the same rows.
Only numpy, pandas and nannyml are imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML sends usage telemetry otherwise

import nannyml as nml
import pandas as pd


def export(out: Path) -> None:
    reference, analysis, targets = nml.load_us_census_ma_employment_data()
    analysis = analysis.merge(targets, on="id")
    for frame in (reference, analysis):
        frame.rename(columns={"prediction": "y_pred", "predicted_probability": "y_pred_proba"}, inplace=True)
    sets = [("us-census-employment-MA (binary, real drift)", "census", reference, analysis, "employed",
             "classification_binary", {"1": "y_pred_proba"})]
    mc_reference, mc_analysis, mc_targets = nml.load_synthetic_multiclass_classification_dataset()
    mc_analysis = mc_analysis.merge(mc_targets, on="id")
    columns = sorted(c for c in mc_reference.columns if c.startswith("y_pred_proba_"))
    sets.append(("synthetic credit-card multiclass (NannyML, drift)", "multiclass", mc_reference, mc_analysis,
                 "y_true", "classification_multiclass", {c.removeprefix("y_pred_proba_"): c for c in columns}))
    for title, folder, ref, ana, y_true, problem, proba in sets:
        target = out / folder
        target.mkdir(parents=True, exist_ok=True)
        ref.to_csv(target / "reference.csv", index=False)
        ana.to_csv(target / "analysis.csv", index=False)
        (target / "meta.json").write_text(json.dumps({"title": title, "y_true": y_true, "problem": problem,
                                                      "proba": proba}))


def estimate(folder: Path, chunk_size: int) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    reference = pd.read_csv(folder / "reference.csv")
    analysis = pd.read_csv(folder / "analysis.csv")
    binary = meta["problem"] == "classification_binary"
    proba = next(iter(meta["proba"].values())) if binary else meta["proba"]
    estimator = nml.CBPE(problem_type=meta["problem"], y_pred_proba=proba, y_pred="y_pred", y_true=meta["y_true"],
                         metrics=["accuracy"], chunk_size=chunk_size)
    started = time.perf_counter()
    estimator.fit(reference)
    results = estimator.estimate(analysis).filter(period="analysis").to_df()
    seconds = time.perf_counter() - started
    chunks = [{"start": int(results[("chunk", "start_index")].iloc[i]),
               "end": int(results[("chunk", "end_index")].iloc[i]),
               "accuracy": float(results[("accuracy", "value")].iloc[i])} for i in range(len(results))]
    (folder / "nannyml.json").write_text(json.dumps({"version": nml.__version__, "seconds": seconds,
                                                     "chunks": chunks}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("export").add_argument("--out", type=Path, required=True)
    run = commands.add_parser("estimate")
    run.add_argument("folder", type=Path)
    run.add_argument("--chunk-size", type=int, default=5000)
    args = parser.parse_args()
    if args.command == "export":
        export(args.out)
    else:
        estimate(args.folder, args.chunk_size)


if __name__ == "__main__":
    main()
