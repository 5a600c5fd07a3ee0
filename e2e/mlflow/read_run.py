"""Reads a run back through MLflow's own Python client, as a user of MLflow would: prints it as JSON on stdout and
downloads its artifacts into OUT_DIR.

Run with the mlflow venv's python (the tests' venv has no mlflow): read_run.py TRACKING_URI RUN_ID OUT_DIR
"""
import json
import sys

import mlflow
from mlflow import MlflowClient

uri, run_id, out = sys.argv[1:4]
mlflow.set_tracking_uri(uri)
run = mlflow.get_run(run_id)
client = MlflowClient()
artifacts = sorted(a.path for a in client.list_artifacts(run_id))
for path in artifacts:
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=out)
print(json.dumps({
    "status": run.info.status,
    "run_name": run.info.run_name,
    "experiment_id": run.info.experiment_id,
    "experiment_name": client.get_experiment(run.info.experiment_id).name,
    "start_time": run.info.start_time,
    "end_time": run.info.end_time,
    "params": run.data.params,
    "metrics": run.data.metrics,
    "tags": run.data.tags,
    "artifacts": artifacts,
}))
