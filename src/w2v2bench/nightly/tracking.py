"""A night's runs in MLflow (`mlflow_uri=`, `pip install 'w2v2bench[mlflow]'`): where many nights live besides the
SQLite history, which stays the nightly's own record.

Each run becomes one MLflow run in the experiment `w2v2bench` (or `mlflow_experiment=`): its series, model,
data and protocol as params; WER, CER, their 95 % intervals, RTFx, counts and the comparison with its baseline as
metrics; the verdict, alarms and measurement record as tags; the run folder's files as artifacts. It is tagged with
the history's run id (`w2v2bench.run_id`, the sha256 of its summary.json), so recording a night twice adds nothing.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from ..history import SplitKey

RUN_TAG = "w2v2bench.run_id"
MAX_PARAM = 500  # MLflow keeps up to 6000 characters; a long value is cut, its full form is in the tags/artifacts


class TrackingError(ValueError):
    """MLflow cannot be used as asked (not installed, a store it cannot open): one line."""


def client(uri: str):
    """An MLflow client of the tracking store `uri` (a file:, sqlite:, http(s): ... URI), or one line why not."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackingError(f"mlflow_uri={uri!r} needs MLflow: pip install 'w2v2bench[mlflow]'") from None
    return MlflowClient(tracking_uri=uri)


def _ms(stamp: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else None
    except ValueError:
        return None


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


DATABASES = ("sqlite", "postgresql", "mysql", "mssql")  # SQLAlchemy stores: MLflow puts their artifacts in ./mlruns


def _scheme(uri: str) -> str:
    """A URI's scheme without its driver: `sqlite+pysqlite:///x.db` -> sqlite."""
    return uri.split(":", 1)[0].split("+", 1)[0].lower()


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its runs' files. MLflow's default for a database store is `./mlruns` of
    whatever folder the command runs in: a SQLite store's go beside its database file instead (`mlruns/` there, the
    path read as SQLAlchemy reads it); another database needs an experiment made with its own location (one line);
    a file store or a server decides (None). An experiment that exists keeps the location it was made with."""
    if _scheme(uri) not in DATABASES:
        return None
    try:
        from sqlalchemy.engine import make_url

        url = make_url(uri)
        backend, database = url.get_backend_name(), url.database
    except Exception as err:  # noqa: BLE001  (SQLAlchemy's ArgumentError, or no SQLAlchemy at all)
        raise TrackingError(f"mlflow_uri={uri!r}: not a database URL SQLAlchemy reads ({err})") from None
    if backend != "sqlite" or database in (None, "", ":memory:"):
        raise TrackingError(
            f"mlflow_uri={uri!r}: a new experiment on this store would keep its files in ./mlruns of the current "
            "folder: create it with its artifact location first (mlflow experiments create -n <name> -l <uri>), "
            "or use a sqlite:///<file> store (files beside it) or an MLflow server"
        )
    return (Path(database).resolve().parent / "mlruns").as_uri()


def experiment_id(mlflow, uri: str, experiment: str) -> str:
    """The experiment's id, made (with `artifact_location`) if it is not there; one line if the store cannot be
    opened or written."""
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        return mlflow.create_experiment(experiment, artifact_location=artifact_location(uri))
    except TrackingError:
        raise
    except Exception as err:  # the store cannot be opened or written: MlflowException, OSError, SQLAlchemy's
        raise TrackingError(f"mlflow_uri={uri!r}: {type(err).__name__}: {err}") from None


def check(uri: str) -> None:
    """Before anything is recorded: MLflow is installed, and a SQLite store's URL can be read (its files go beside
    it). Another database store is opened at the export, where an experiment without a location is refused."""
    client(uri)
    if _scheme(uri) == "sqlite":
        artifact_location(uri)


def export(uri: str, judgements: list, experiment: str = "w2v2bench") -> list[str]:
    """Log each judged run (nightly.Judgement) to MLflow once; returns one line per run: logged or already there."""
    mlflow = client(uri)
    experiment = experiment_id(mlflow, uri, experiment)  # the name's id from here on
    lines = []
    for j in judgements:
        run = j.run
        there = mlflow.search_runs([experiment], filter_string=f"tags.`{RUN_TAG}` = '{run['run_id']}'")
        if there:
            lines.append(f"mlflow: {run['run_id']} already logged as {there[0].info.run_id}")
            continue
        lines.append(f"mlflow: {run['run_id']} logged as {_log(mlflow, experiment, j)}")
    return lines


def _log(mlflow, experiment_id: str, j) -> str:
    run, base, test = j.run, j.baseline, j.test
    measurement = run.get("measurement") or {}
    series = measurement.get("series") or {}
    tags = {
        RUN_TAG: run["run_id"],
        "w2v2bench.series": run.get("series") or "",
        "w2v2bench.label": str(SplitKey(run)),
        "w2v2bench.verdict": j.verdict,
        "w2v2bench.noise": j.noise,
        "w2v2bench.alarms": "\n".join(j.alarms),
        "w2v2bench.reasons": "\n".join(j.reasons + j.failures),
        "w2v2bench.measurement": json.dumps(measurement, sort_keys=True)[:5000],
    }
    created = mlflow.create_run(
        experiment_id, start_time=_ms(run.get("started")), tags=tags, run_name=f"{SplitKey(run)} {run['finished'][:16]}"
    )
    run_id = created.info.run_id
    params = {
        "model": run["model"],
        "checkpoint": run.get("checkpoint"),
        "weights": run.get("weights"),
        "data": run["data"],
        "partition": run.get("partition"),
        "split": run.get("split"),
        "normalizer": run.get("normalizer"),
        "precision": run.get("precision"),
        "decoder": run.get("decoder"),
        "backend": run.get("backend"),
        "batch_size": run.get("batch_size"),
        "device": run.get("device"),
        "git_hash": run.get("git_hash"),
        "series.data": series.get("data"),
        "series.protocol": series.get("protocol"),
        "interval": run.get("interval"),
        **{f"version.{k}": v for k, v in (run.get("versions") or {}).items()},
    }
    metrics = {
        "wer": run.get("wer"),
        "cer": run.get("cer"),
        "wer_ci95_low": run.get("wer_ci95_low"),
        "wer_ci95_high": run.get("wer_ci95_high"),
        "cer_ci95_low": run.get("cer_ci95_low"),
        "cer_ci95_high": run.get("cer_ci95_high"),
        "rtfx": run.get("rtfx"),
        "model_rtfx": run.get("model_rtfx"),
        "n_utterances": run.get("n_utterances"),
        "n_failed": run.get("n_failed"),
        "ref_words": run.get("ref_words"),
        "wer_delta": j.delta("wer") if base is not None else None,
        "rtfx_delta": j.delta("rtfx") if base is not None else None,
        "n_changed": j.n_changed,
        "delta_p_value": None if test is None else test.p_value,
        "delta_ci95_low": None if test is None else test.delta_low,
        "delta_ci95_high": None if test is None else test.delta_high,
    }
    from mlflow.entities import Metric, Param

    when = _ms(run.get("finished")) or 0
    mlflow.log_batch(
        run_id,
        metrics=[Metric(k, float(v), when, 0) for k, v in metrics.items() if _finite(v)],
        params=[Param(k, _param(v)) for k, v in params.items() if v is not None],
    )
    folder = Path(run["run_dir"])
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and not path.is_symlink():  # the run's own files; never a link out of it
            mlflow.log_artifact(run_id, str(path))
    mlflow.set_terminated(run_id, status="FINISHED" if j.verdict == "pass" else "FAILED", end_time=when or None)
    return run_id
