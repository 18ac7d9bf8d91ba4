"""MDAnalysis (the most used H5MD reader) opens particle files written by `phaseflow simulate`:
every frame of a 3-D ABP run, its positions, box and time equal to the file's datasets read with
h5py; the per-frame observables come along in `ts.data`; and the README's MDAnalysis snippet
runs as written.

Runs are in reduced units, which MDAnalysis does not convert: the file is read with
`convert_units=False`. MDAnalysis holds positions and box lengths in float32: they equal the
file's float64 values rounded to the nearest float32 (HDF5 converts with round-to-nearest, as
numpy's astype does), so they are compared exactly after that rounding; times are float64 and
compared exactly."""

import pathlib
import re
import shlex
import shutil
import subprocess
import textwrap

import h5py
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# a 3-D ABP–WCA system, small enough for a second
ABP3 = """name = "abp3"
kind = "particles"
model = "abp"
dimension = 3
dt = 1e-4
[parameters]
N = 64
phi = 0.3
Pe = 20.0
"""


@pytest.fixture(scope="module")
def mda():
    try:
        import MDAnalysis
    except ImportError as e:
        pytest.fail(f"MDAnalysis is not installed ({e}): run scripts/deps.sh", pytrace=False)
    return MDAnalysis


def simulate(phaseflow_bin, tmp_path, *args):
    definition = tmp_path / "abp3.toml"
    definition.write_text(ABP3)
    out = tmp_path / "abp3.h5"
    cmd = [phaseflow_bin, "simulate", str(definition), "-o", str(out), "--quiet", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp_path)
    return out


@pytest.mark.parametrize("replicas", [1, 2])
def test_mdanalysis_reads_every_frame(mda, phaseflow_bin, tmp_path, replicas):
    path = simulate(phaseflow_bin, tmp_path, "--steps", "400", "--every", "100", "--seed", "3",
                    "--replicas", str(replicas))
    with h5py.File(path, "r") as f:
        # MDAnalysis reads the first particle group
        g = f["particles/all" if replicas == 1 else "particles/replica_0"]
        x = g["position/value"][()]
        edges = g["box/edges/value"][()]
        time = g["position/time"][()]
        step = g["position/step"][()]
        observables = {k: f[f"observables/{k}/value"][()] for k in f["observables"]}
    frames, n, d = x.shape
    assert (frames, n, d) == (5, 64, 3)
    assert set(observables) == {"msd", "orientation_autocorrelation", "largest_cluster_fraction"}

    u = mda.Universe(str(path), topology_format="MINIMAL", format="H5MD", n_atoms=n,
                     convert_units=False, to_guess=())
    assert u.atoms.n_atoms == n and u.trajectory.n_frames == frames
    assert u.trajectory.units == {"time": None, "length": None, "velocity": None, "force": None}
    seen = []
    for ts in u.trajectory:
        k = ts.frame
        seen.append(k)
        assert ts.positions.dtype == np.float32
        assert np.array_equal(ts.positions, x[k].astype(np.float32)), k
        assert np.array_equal(ts.dimensions[:3], edges[k].astype(np.float32)), k
        assert np.array_equal(ts.dimensions[3:], [90.0, 90.0, 90.0])
        assert ts.time == time[k]
        assert ts.data["step"] == step[k]
        for name, value in observables.items():
            assert np.array_equal(ts.data[name], value[k]), (name, k)
            assert ts.data[name].shape == (replicas,)
    assert seen == list(range(frames))
    # random access, as analyses use it
    assert np.array_equal(u.trajectory[2].positions, x[2].astype(np.float32))
    # the time axis is step·dt (dt = 1e-4)
    assert np.array_equal(time, step * 1e-4)


def readme_blocks():
    """The shell and Python blocks of the README's MDAnalysis example (the ```sh block before
    the ```python block that imports MDAnalysis)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)
    for i, (lang, code) in enumerate(blocks):
        if lang == "python" and "import MDAnalysis" in code:
            assert i > 0 and blocks[i - 1][0] == "sh", "the MDAnalysis snippet follows its sh block"
            return textwrap.dedent(blocks[i - 1][1]), textwrap.dedent(code)
    pytest.fail("README.md has no ```python block importing MDAnalysis")


def test_readme_snippet_runs_as_written(mda, phaseflow_bin, tmp_path, monkeypatch, capsys):
    shell, python = readme_blocks()
    # the shell block runs in a copy of the repository's layout, with `phaseflow` the binary
    (tmp_path / "systems" / "active").mkdir(parents=True)
    shutil.copy(ROOT / "systems/active/abp_mips.toml", tmp_path / "systems/active/abp_mips.toml")
    for line in shell.splitlines():
        line = line.split("  #")[0].strip()
        if not line:
            continue
        if line.startswith("phaseflow "):
            line = shlex.quote(phaseflow_bin) + line[len("phaseflow"):]
        subprocess.run(["bash", "-c", line], check=True, cwd=tmp_path, capture_output=True)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(python, "README.md", "exec"), namespace)
    u = namespace["u"]
    h5 = next(tmp_path.glob("*.h5"))
    with h5py.File(h5, "r") as f:
        x = f["particles/all/position/value"][()]
    assert u.trajectory.n_frames == x.shape[0] >= 2
    assert np.array_equal(u.trajectory[-1].positions, x[-1].astype(np.float32))
    printed = capsys.readouterr().out
    assert printed.count("\n") >= x.shape[0], printed
