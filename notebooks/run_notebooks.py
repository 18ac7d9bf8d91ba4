#!/usr/bin/env python3
"""Executes every notebook in notebooks/ against freshly simulated phaseflow output.

Usage: python3 notebooks/run_notebooks.py --phaseflow target/release/phaseflow

Each notebook reads the HDF5 file named by $PHASEFLOW_H5; a failing cell fails the run.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phaseflow", required=True, help="path to the phaseflow binary")
    args = ap.parse_args()
    exe = str(pathlib.Path(args.phaseflow).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        h5 = os.path.join(tmp, "lorenz.h5")
        subprocess.run([exe, "simulate", str(HERE.parent / "systems" / "lorenz.toml"), "--points", "4000",
                        "--pts-per-period", "200", "--burn-in", "10", "-q", "-o", h5], check=True)
        os.environ["PHASEFLOW_H5"] = h5
        os.environ["PHASEFLOW_BIN"] = exe  # notebooks that run the command line themselves
        gallery = os.path.join(tmp, "gallery")
        os.makedirs(gallery)
        listing = json.loads(subprocess.run([exe, "list", "--json"], check=True, capture_output=True,
                                            text=True, cwd=HERE.parent).stdout)
        for row in listing:
            if row.get("kind") != "flow":
                continue
            subprocess.run([exe, "simulate", row["file"], "--points", "2000", "--pts-per-period", "100",
                            "--burn-in", str(20 * row["period"]), "-q", "-o", os.path.join(gallery, row["name"] + ".h5")],
                           check=True, cwd=HERE.parent)
        os.environ["PHASEFLOW_GALLERY"] = gallery
        inv = os.path.join(tmp, "invariants.csv")
        subprocess.run([exe, "catalogue", "invariants", "--systems", "lorenz,rossler,chen,halvorsen,maps/henon",
                        "--correlation-points", "5000", "-o", inv], check=True, capture_output=True, cwd=HERE.parent)
        os.environ["PHASEFLOW_INVARIANTS"] = inv
        os.environ["PHASEFLOW_FIG"] = os.path.join(tmp, "fig.png")
        bench = os.path.join(tmp, "forecast-bench")
        subprocess.run([exe, "forecast", "bench", "--systems", "lorenz,rossler,chen,halvorsen,delay/mackey_glass",
                        "--test-ics", "2", "-q", "-o", bench], check=True, capture_output=True, cwd=HERE.parent)
        os.environ["PHASEFLOW_FORECAST_DIR"] = bench
        notebooks = sorted(HERE.glob("*.ipynb"))
        for nb_path in notebooks:
            nb = nbformat.read(nb_path, as_version=4)
            NotebookClient(nb, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(HERE)}}).execute()
            print(f"notebook ok: {nb_path.name}")
        if not notebooks:
            print("no notebooks found", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
