#!/usr/bin/env python3
"""Example adapter: any Python forecaster in `phaseflow forecast bench --external NAME=COMMAND`.

    phaseflow forecast bench --systems lorenz --models naive \
        --external mine="python3 scripts/forecast_adapter_example.py" -o out/

The benchmark runs COMMAND once per (system, test trajectory) in a scratch directory with the
environment variable PHASEFLOW_REQUEST pointing at request.json (protocol 1):

    {"protocol": 1, "model": ..., "system": ..., "test_case": k, "horizon": H, "dim": D,
     "dt": ..., "points_per_period": ..., "lyapunov_max": ... or null, "variables": [...],
     "seed": ..., "train": "train.npy", "context": "context.npy",
     "output": "forecast.npy", "output_json": "forecast.json"}

train.npy is the training series [T, D] and context.npy the steps just before the forecast
window [C, D] (float64). Write the forecast [H, D] to `output` (.npy) — or, without NumPy, to
`output_json` as {"forecast": [[...], ...]} — and exit 0. Anything on stderr is shown when the
program fails.

The model below is deliberately trivial (it repeats the last context value, i.e. phaseflow's
`naive`), so the test suite can check the protocol end to end. Replace `forecast()` with your
model, e.g. with darts:

    from darts import TimeSeries
    from darts.models import NBEATSModel
    model = NBEATSModel(input_chunk_length=100, output_chunk_length=10, random_state=seed)
    model.fit(TimeSeries.from_values(train))
    return model.predict(horizon, series=TimeSeries.from_values(context)).values()
"""
import json
import os
import sys


def forecast(train, context, horizon, seed):
    """The model: train [T][D] and context [C][D] as nested lists (or arrays), returns [H][D]."""
    last = list(context[-1])
    return [last for _ in range(horizon)]


def main() -> int:
    req_path = os.environ.get("PHASEFLOW_REQUEST")
    if not req_path:
        print("PHASEFLOW_REQUEST is not set: run me through `phaseflow forecast bench --external`",
              file=sys.stderr)
        return 2
    with open(req_path) as f:
        req = json.load(f)
    if req.get("protocol") != 1:
        print(f"unsupported protocol {req.get('protocol')}", file=sys.stderr)
        return 2
    base = os.path.dirname(os.path.abspath(req_path))
    try:
        import numpy as np
    except ImportError:  # no NumPy: this adapter cannot read .npy; say so clearly
        print("this adapter needs numpy to read train.npy/context.npy", file=sys.stderr)
        return 2
    train = np.load(os.path.join(base, req["train"]))
    context = np.load(os.path.join(base, req["context"]))
    pred = np.asarray(forecast(train, context, int(req["horizon"]), req.get("seed", 0)),
                      dtype=np.float64)
    if pred.shape != (int(req["horizon"]), int(req["dim"])):
        print(f"forecast has shape {pred.shape}, expected ({req['horizon']}, {req['dim']})",
              file=sys.stderr)
        return 1
    np.save(os.path.join(base, req["output"]), pred)
    return 0


if __name__ == "__main__":
    sys.exit(main())
