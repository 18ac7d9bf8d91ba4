"""GSD files written by `phaseflow simulate` read with the `gsd` package (gsd.hoomd, the reader of
HOOMD-blue's format), against the H5MD file of the same run read with h5py: every frame of 2-D and
3-D runs (positions to float32 rounding, images, box, N, steps, ABP orientations as unit vectors,
AOUP self-propulsion and the per-frame observables exactly); `phaseflow export` H5MD -> GSD gives
the very bytes of the direct output, and `-o NAME.gsd` the same chunks.

gsd must be installed (`scripts/deps.sh` installs it): without it these tests FAIL, they are never
skipped.
"""

import json
import pathlib
import subprocess

import h5py
import numpy as np
import pytest

try:
    import gsd.fl
    import gsd.hoomd
except ImportError as e:  # never a skip: the interoperability checks must run
    pytest.fail(f"the gsd package is needed by the GSD checks: run scripts/deps.sh ({e!r})", pytrace=False)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def simulate(phaseflow_bin, cwd, model, sets, *args):
    cmd = [phaseflow_bin, "simulate", model, "--quiet", *args]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd)


def abp3(tmp_path):
    """The shipped 2-D ABP file in 3-D."""
    text = (ROOT / "systems" / "active" / "abp_mips.toml").read_text().replace("dimension = 2", "dimension = 3")
    p = tmp_path / "abp3.toml"
    p.write_text(text)
    return str(p)


def h5_series(f, name):
    """The per-frame observable `name` of an H5MD file as [T, M] (found by name below /observables)."""
    found = []

    def visit(path, obj):
        if isinstance(obj, h5py.Group) and path.split("/")[-1] == name and "value" in obj:
            found.append(obj["value"][()])

    f["observables"].visititems(visit)
    assert len(found) == 1, f"observable {name}: {len(found)} found"
    v = found[0]
    return v.reshape(v.shape[0], -1)


def rotate_x(q):
    """(1, 0, 0) rotated by the quaternions q = (w, x, y, z) [N, 4] (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], axis=1)


# (model, --set, replicas): 2-D ABP, 3-D ABP with two replicas, 2-D AOUP (pair forces) with two
CASES = {
    "abp2d": ("abp_mips", {"N": 100}, 1),
    "abp3d": (None, {"N": 120, "phi": 0.3}, 2),
    "aoup2d": ("mips", {"N": 64}, 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gsd_hoomd_reads_every_frame_of_the_run(phaseflow_bin, tmp_path, case):
    model, sets, m = CASES[case]
    model = model or abp3(tmp_path)
    h5, g = tmp_path / "run.h5", tmp_path / "run.gsd"
    simulate(phaseflow_bin, tmp_path, model, sets, "--steps", "200", "--every", "40", "--replicas", str(m),
             "--seed", "5", "-o", str(h5), "--gsd", str(g))
    with h5py.File(h5, "r") as f, gsd.hoomd.open(str(g), "r") as traj:
        groups = ["all"] if m == 1 else [f"replica_{r}" for r in range(m)]
        first = f["particles"][groups[0]]
        frames, n, d = first["position/value"].shape
        assert frames == 6
        assert len(traj) == m * frames  # replica-major: GSD frame r*F + k
        edge = float(f["parameters"].attrs["L"])
        # f32 rounding of |x| <= L/2 moves it by at most half an ulp, L * 2^-25; a value rounded
        # onto the box face goes one ulp (L * 2^-24) below it: less than L * 2^-23 in all
        tol = edge * 2.0**-23
        series = {name: h5_series(f, name) for name in ("msd",)}
        abp = "orientation" in first
        for r, grp in enumerate(groups):
            p = f["particles"][grp]
            for k in range(frames):
                fr = traj[r * frames + k]
                fr.validate()
                assert fr.configuration.step == p["position/step"][k]
                assert fr.configuration.dimensions == d
                box = np.asarray(fr.configuration.box)
                assert box.dtype == np.float32
                np.testing.assert_array_equal(box[:d], np.float32(edge))
                assert box[2] == (np.float32(edge) if d == 3 else 0.0) and not box[3:].any()
                assert fr.particles.N == n
                assert fr.particles.types == ["active"]
                pos = fr.particles.position
                assert pos.dtype == np.float32 and pos.shape == (n, 3)
                dx = np.abs(pos[:, :d].astype(np.float64) - p["position/value"][k]).max()
                assert dx <= tol, (case, r, k, dx, tol)
                assert np.all(np.abs(pos[:, :d]) <= np.float32(edge) / 2)
                np.testing.assert_array_equal(fr.particles.image[:, :d], p["image/value"][k])
                if d == 2:
                    assert not pos[:, 2].any() and not fr.particles.image[:, 2].any()
                if abp:
                    # the orientation: (1, 0, 0) rotated by the quaternion, to f32 rounding of q
                    u = rotate_x(fr.particles.orientation)
                    du = np.abs(u[:, :d] - p["orientation/value"][k]).max()
                    assert du < 5e-7, (case, r, k, du)
                    if d == 2:
                        assert np.abs(u[:, 2]).max() < 1e-7
                else:
                    np.testing.assert_array_equal(
                        fr.log["particles/phaseflow/self_propulsion"], p["self_propulsion/value"][k])
                assert fr.log["phaseflow/time"][0] == p["position/time"][k]
                assert fr.log["phaseflow/replica"][0] == r
                for name, v in series.items():
                    assert fr.log[f"phaseflow/{name}"][0] == v[k, r]
    # read_log: the per-frame scalars as time series over the M*F frames
    log = gsd.hoomd.read_log(str(g), scalar_only=True)
    assert log["log/phaseflow/msd"].shape == (m * frames,)
    np.testing.assert_array_equal(log["log/phaseflow/replica"], np.repeat(np.arange(m), frames))
    # the parameters travel in the metadata chunk (JSON)
    with gsd.fl.open(str(g), "r") as fl:
        assert fl.schema == "hoomd"
        meta = json.loads(bytes(fl.read_chunk(0, "phaseflow/metadata")))
    assert meta["format"] == "phaseflow-gsd" and meta["replicas"] == m and meta["frames"] == frames
    assert meta["parameters"]["L"] == edge and meta["box_edges"] == [edge] * d


def test_export_equals_the_direct_output(phaseflow_bin, tmp_path):
    sets = {"N": 100}
    args = ["--steps", "120", "--every", "30", "--seed", "2"]
    h5, g = tmp_path / "run.h5", tmp_path / "run.gsd"
    simulate(phaseflow_bin, tmp_path, "abp_mips", sets, *args, "-o", str(h5), "--gsd", str(g))
    exported = tmp_path / "exported.gsd"
    subprocess.run([phaseflow_bin, "export", str(h5), str(exported)], check=True, capture_output=True)
    assert exported.read_bytes() == g.read_bytes()
    # GSD only: the same chunks (but the command line in the metadata)
    only = tmp_path / "only.gsd"
    simulate(phaseflow_bin, tmp_path, "abp_mips", sets, *args, "-o", str(only))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported.gsd", "only.gsd", "run.gsd", "run.h5"]
    with gsd.fl.open(str(g), "r") as a, gsd.fl.open(str(only), "r") as b:
        assert a.nframes == b.nframes == 5
        names = a.find_matching_chunk_names("")
        assert sorted(names) == sorted(b.find_matching_chunk_names(""))
        for k in range(a.nframes):
            for name in names:
                assert a.chunk_exists(k, name) == b.chunk_exists(k, name)
                if not a.chunk_exists(k, name):
                    continue
                x, y = a.read_chunk(k, name), b.read_chunk(k, name)
                if name == "phaseflow/metadata":
                    x, y = json.loads(bytes(x)), json.loads(bytes(y))
                    for j in (x, y):
                        del j["parameters"]["command"], j["parameters"]["wall_seconds"]
                    assert x == y
                else:
                    assert x.dtype == y.dtype and np.array_equal(x, y), name
    # and back to H5MD: the f32 positions, the f64 rest
    back = tmp_path / "back.h5"
    subprocess.run([phaseflow_bin, "export", str(g), str(back)], check=True, capture_output=True)
    with h5py.File(h5, "r") as f, h5py.File(back, "r") as b, gsd.hoomd.open(str(g), "r") as traj:
        pos = b["particles/all/position/value"][()]
        for k, fr in enumerate(traj):
            np.testing.assert_array_equal(pos[k], fr.particles.position[:, :2].astype(np.float64))
        np.testing.assert_array_equal(b["particles/all/image/value"][()], f["particles/all/image/value"][()])
        np.testing.assert_array_equal(h5_series(b, "msd"), h5_series(f, "msd"))
        assert dict(b["parameters"].attrs) == dict(f["parameters"].attrs)


def test_python_epr_reads_gsd(phaseflow_bin, tmp_path):
    """phaseflow.analysis.epr(data=...) takes the GSD file of a run: the learning-free reference EPR
    of the H5MD file's samples, to the effect of float32 positions (relative 1e-5)."""
    import phaseflow.analysis

    h5, g = tmp_path / "m.h5", tmp_path / "m.gsd"
    simulate(phaseflow_bin, tmp_path, "mips", {"N": 64}, "--steps", "200", "--every", "20", "--seed", "2",
             "-o", str(h5), "--gsd", str(g))
    a = phaseflow.analysis.epr(data=str(h5))["epr_reference"]
    b = phaseflow.analysis.epr(data=str(g))["epr_reference"]
    assert a > 1.0 and abs(a - b) / a < 1e-5, (a, b)
