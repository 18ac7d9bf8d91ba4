"""phaseflow's particle observables against freud (freud-analysis 3.x), an independent
implementation: the radial distribution g(r) and the largest-cluster fraction, on the frames of
2-D and 3-D runs of `phaseflow.particles.simulate` (its arrays are the H5MD file's datasets, bit
for bit: test_particles.py).

freud must be installed (`scripts/deps.sh` installs it): without it these tests FAIL, they are
never skipped.

What phaseflow computes (src/particles/observables.rs, src/particles/run.rs), per replica and
frame, with the particle diameter σ (ABP: `sigma`; AOUP soft disks: 2R):
- g(r): ordered pairs i ≠ j at minimum-image distance r < r_max = min(5σ, L/2), counted on 100
  equal bins of width Δr = r_max/100, divided by N ρ v_b (ρ = N/V, v_b the shell volume of bin
  b); `radial_distribution` is the mean of that over all frames and replicas, at the bin centres.
  The box does not change, so the mean is the pooled count C_b over F frames (all replicas) over
  F N ρ v_b — which is freud's `RDF(normalization_mode="exact")` accumulated with `reset=False`:
  `bin_counts / (N_points · (N_query/V) · frames · v_b)` with N_points = N_query = N (not N − 1:
  that is freud's "finite_size" mode).
- the largest-cluster fraction: a particle is dense when its local packing fraction — the
  particles (itself included) within 2.5σ, times v_d(σ/2)/v_d(2.5σ) = 0.2^d — is at least 0.65,
  i.e. when that count is at least ⌈0.65/0.2^d⌉ (5 disks, 11 spheres: 0.65/0.2^d = 4.0625,
  10.15625 is far from an integer, so the rounding of the product cannot matter); dense
  particles closer than 1.2σ are connected; the fraction is the largest connected set's size
  over N (all particles). freud: `AABBQuery` neighbour counts for the dense mask and
  `cluster.Cluster` on the dense particles.

freud works in float32 (positions, distances, bin indices), phaseflow in float64. A pair whose
float64 distance lies within `delta` (below) of a cut-off or bin edge may fall on the other side
in freud; nothing else can differ. So:
- cut-offs (2.5σ, 1.2σ): freud's neighbour query runs out to the cut-off + `delta`, and the
  cut-off is applied to the float64 distances of the bonds it found (phaseflow's decision);
  freud's plain query at the cut-off is checked to differ from that only on pairs within `delta`
  of it. The neighbour counts must equal float64 brute force, and the largest-cluster fractions
  must be equal exactly (integer counts over N), in every frame;
- g(r): freud's integer bin counts equal phaseflow's pooled counts (recovered from g as
  g·F·N·ρ·v_b: integers to 1e-6) in every bin, except that a bin may differ by at most the number
  of pairs within `delta` of its two edges (counted from float64 distances); freud's g equals
  phaseflow's to float32 rounding (`G_RTOL`) plus the weight of those pairs. Measured: the counts
  agree in every bin of the 2-D ABP run (10^6 pairs); 5 bins differ by 12 pairs in all in the
  AOUP run, 21 bins by 40 pairs (of 2.8·10^6) in 3-D; elsewhere g agrees to 8e-6 relative.
"""

import math
import pathlib

import numpy as np
import pytest

try:
    import freud
except ImportError as e:  # never a skip: the check must run
    pytest.fail(f"freud-analysis is needed by the observable checks: run scripts/deps.sh ({e!r})",
                pytrace=False)
if int(freud.__version__.split(".")[0]) != 3:
    pytest.fail(f"freud-analysis {freud.__version__} installed; these checks use freud 3's API "
                "(run scripts/deps.sh)", pytrace=False)

from phaseflow import particles

ROOT = pathlib.Path(__file__).resolve().parents[2]

BINS = 100  # g(r) bins (src/particles/run.rs)
RDF_RANGE = 5.0  # r_max = min(5σ, L/2)
PROBE = 2.5  # local packing probe radius, in σ (observables::LOCAL_RADIUS)
DENSE = 0.65  # local packing fraction of a dense particle (observables::DENSE_THRESHOLD)
CONTACT = 1.2  # cluster contact distance, in σ

# freud's g(r) is float32 throughout: bin edges k·Δr (relative error 2^-24), shell volumes from
# their squares or cubes — the difference r_{b+1}^d − r_b^d loses up to a factor r/Δr ≤ 100 in
# relative precision — and the prefactor 1/(N·ρ·frames) from three float32 operations. Together
# at most about 100·4·2^-24 + 8·2^-24 ≈ 2.4e-5 relative; 1e-4 leaves a factor 4.
G_RTOL = 1e-4

ABP3 = (ROOT / "systems" / "active" / "abp_mips.toml").read_text().replace("dimension = 2",
                                                                          "dimension = 3")

# name: (model, --set, steps, every, replicas, seed, burn-in). Small N (seconds), dense enough
# that the dense set breaks into several clusters of different sizes (asserted below).
RUNS = {
    # ABP–WCA disks at the catalogue's MIPS point (φ = 0.6, Pe = 150), clustering from t = 0:
    # r_max = 5σ < L/2 = 11.4
    "abp_2d": ("abp_mips", {"N": 400}, 2000, 100, 2, 1, 0.0),
    # ABP–WCA spheres, denser and more active (3-D dense clusters need φ_local ≥ 0.65, above
    # random close packing): L/2 = 3.7 < 5σ, so r_max = L/2. The initial condition of such a
    # dense 3-D system is a lattice, whose spacing is a multiple of Δr = L/200 (every neighbour
    # pair exactly on a bin edge, where even float64 rounding decides the bin): a burn-in of
    # 500 steps leaves it
    "abp_3d": (ABP3, {"N": 500, "phi": 0.65, "Pe": 300.0, "dt": 2e-5}, 2000, 100, 1, 2, 0.01),
    # soft AOUP disks (σ = 2R = 2) of the paper's MIPS model, denser and faster than the
    # catalogue's (φ = 0.65, v0 = 0.1): overlapping at t = 0 (all dense), then phase separating
    # (largest cluster 0.07 … 0.6); r_max = 5σ = 10 < L/2
    "mips_2d": ("mips", {"N": 400, "phi": 0.65, "v0": 0.1}, 1000, 50, 2, 3, 0.0),
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def run(request):
    model, sets, steps, every, replicas, seed, burn_in = RUNS[request.param]
    out = particles.simulate(model, set=sets, steps=steps, every=every, replicas=replicas, seed=seed,
                             burn_in=burn_in)
    assert out.box.min() == out.box.max(), "cubic boxes only"
    return out


def diameter(run):
    """σ as phaseflow takes it (ParticleModel::diameter): the WCA `sigma` of ABPs, 2R of the
    soft AOUP disks."""
    return run.parameters["sigma"] if "sigma" in run.parameters else 2.0 * run.parameters["R"]


def freud_box(run):
    L = float(run.box[0])
    return freud.box.Box.square(L) if run.dimension == 2 else freud.box.Box.cube(L)


def points3(p):
    """(N, 3) points for freud (2-D: z = 0, as freud requires)."""
    return np.column_stack([p, np.zeros(len(p))]) if p.shape[1] == 2 else np.ascontiguousarray(p)


def distances(p, L):
    """(N, N) float64 minimum-image distances (the diagonal is 0), as phaseflow computes them."""
    dx = p[:, None, :] - p[None, :, :]
    dx -= L * np.round(dx / L)
    return np.sqrt((dx * dx).sum(-1))


def delta(run):
    """A bound on |float32 distance − float64 distance| in freud: each coordinate (|x| ≤ L/2) is
    rounded to float32 (error ≤ 2^-24·L/2), differences and the periodic wrap by L add a few more
    such roundings; per component at most about 4·2^-24·L, in the norm √d times that. Four times
    this bound."""
    return 16.0 * 2.0**-24 * float(run.box[0]) * math.sqrt(run.dimension)


def neighbours(box, pts, p, L, c, eps):
    """freud's neighbour list of `pts` (the particle itself included) with phaseflow's decision
    r < c in float64: freud's float32 query out to c + eps (a superset), filtered by the float64
    minimum-image distance of each bond. Also checks freud's own query at c against it: they may
    differ only on pairs within eps of c (float32 rounding, `delta`)."""
    aq = freud.locality.AABBQuery(box, pts)
    nl = aq.query(pts, {"r_max": c + eps, "exclude_ii": False}).toNeighborList()
    i, j = np.asarray(nl.query_point_indices), np.asarray(nl.point_indices)
    dx = p[i] - p[j]
    dx -= L * np.round(dx / L)
    r = np.sqrt((dx * dx).sum(-1))
    plain = aq.query(pts, {"r_max": c, "exclude_ii": False}).toNeighborList()
    n = len(p)
    theirs = np.asarray(plain.query_point_indices) * n + np.asarray(plain.point_indices)
    in_plain = np.isin(i * n + j, theirs)
    assert in_plain.sum() == len(theirs)  # the plain query's bonds are among the candidates
    flipped = in_plain != (r < c)
    assert np.all(np.abs(r[flipped] - c) < eps), (
        f"freud's float32 query at {c} disagrees with float64 beyond {eps}: {r[flipped]}")
    nl.filter(r < c)
    return nl


def shell_volumes(d, edges):
    unit = math.pi if d == 2 else 4.0 * math.pi / 3.0
    return unit * np.diff(edges**d)


def freud_r_max(r_max, L):
    """freud refuses r_max ≥ L/2 (in float32: "The AABBQuery r_max is too large for this box"),
    phaseflow takes r_max = L/2 in small boxes: then freud gets the largest float32 below L/2,
    which moves its bin edges by less than 2^-22·r_max, far inside the float32 window `delta`."""
    half = np.float32(0.5 * np.float32(L))
    return r_max if np.float32(r_max) < half else float(np.nextafter(half, np.float32(0)))


def test_rdf_equals_freud(run):
    M, F, N, d = run.position.shape
    L = float(run.box[0])
    r_max = min(RDF_RANGE * diameter(run), 0.5 * L)
    edges = np.linspace(0.0, r_max, BINS + 1)
    dr = r_max / BINS
    g = run.observables["radial_distribution"]["value"]
    r = run.observables["radial_distribution"]["r"]
    # phaseflow's bins: centres (b + 1/2)·Δr (float64)
    assert r.shape == (BINS,) and g.shape == (BINS,)
    np.testing.assert_allclose(r, (np.arange(BINS) + 0.5) * dr, rtol=1e-14, atol=0)

    rdf = freud.density.RDF(bins=BINS, r_max=freud_r_max(r_max, L), normalization_mode="exact")
    box = freud_box(run)
    eps = delta(run)
    ambiguous = np.zeros(BINS, dtype=np.int64)  # pairs within eps of a bin's edges
    for m in range(M):
        for f in range(F):
            p = run.position[m, f]
            rdf.compute((box, points3(p)), reset=False)
            rr = distances(p, L)[~np.eye(N, dtype=bool)]
            k = np.rint(rr / dr).astype(np.int64)  # nearest edge
            near = (np.abs(rr - k * dr) < eps) & (k >= 1) & (k <= BINS)
            # a pair at edge k may be counted in bin k − 1 or k (edge BINS: bin BINS − 1 or none)
            np.add.at(ambiguous, k[near] - 1, 1)
            np.add.at(ambiguous, k[near & (k < BINS)], 1)
    # same bins (freud's are float32)
    np.testing.assert_allclose(rdf.bin_centers, r, rtol=2.0**-21, atol=0)
    np.testing.assert_allclose(rdf.bin_edges, edges, rtol=2.0**-21, atol=0)

    # phaseflow's pooled counts: g = C/(F·M·N·ρ·v_b) with integer C (float64: 1e-6 is ~1e4 times
    # the rounding of counts up to ~1e6)
    norm = (F * M) * N * (N / L**d) * shell_volumes(d, edges)
    pooled = g * norm
    counts = np.rint(pooled).astype(np.int64)
    assert np.max(np.abs(pooled - counts)) < 1e-6, "phaseflow's g(r) is not pooled counts / (F N ρ v)"
    theirs = rdf.bin_counts.astype(np.int64)
    diff = np.abs(theirs - counts)
    assert np.all(diff <= ambiguous), (
        f"bin counts differ beyond float32 edge ambiguity: bins {np.nonzero(diff > ambiguous)[0]}, "
        f"phaseflow {counts[diff > ambiguous]}, freud {theirs[diff > ambiguous]}")
    # not vacuous: many pairs, and the float32 allowance is a small share of them
    assert counts.sum() > 1e5 and ambiguous.sum() < 1e-2 * counts.sum(), (
        counts.sum(), ambiguous.sum(), diff.sum())
    # freud's normalisation is phaseflow's (N, not N − 1; pooled over frames and replicas): equal
    # to float32 rounding, plus the weight of the ambiguous pairs
    assert np.all(np.abs(rdf.rdf - g) <= G_RTOL * g + ambiguous / norm), np.max(np.abs(rdf.rdf - g) / g)
    # the structure is real (a contact peak), not an ideal gas
    assert g.max() > 1.5, g.max()


def test_largest_cluster_fraction_equals_freud(run):
    M, F, N, d = run.position.shape
    L = float(run.box[0])
    sigma = diameter(run)
    box = freud_box(run)
    eps = delta(run)
    lcf = run.observables["largest_cluster_fraction"]
    assert lcf.shape == (F, M)
    min_count = math.ceil(DENSE / 0.2**d)  # 5 (2-D), 11 (3-D): the dense particles' probe count
    several, largest_seen, fractions = 0, 0, set()
    for m in range(M):
        for f in range(F):
            p = run.position[m, f]
            pts = points3(p)
            # local packing: neighbours within 2.5σ, the particle itself included; freud's count
            # equals the brute-force float64 count (phaseflow's cell list must not miss a pair)
            counts = np.asarray(neighbours(box, pts, p, L, PROBE * sigma, eps).neighbor_counts)
            assert np.array_equal(counts, (distances(p, L) < PROBE * sigma).sum(1))
            dense = counts >= min_count
            if not dense.any():  # freud refuses an empty system; phaseflow gives 0
                largest = 0
            else:
                q = p[dense]
                cl = freud.cluster.Cluster()
                cl.compute((box, pts[dense]),
                           neighbors=neighbours(box, pts[dense], q, L, CONTACT * sigma, eps))
                sizes = np.bincount(cl.cluster_idx)
                largest = int(sizes.max())
                several += int((sizes >= 3).sum() >= 2)
            largest_seen = max(largest_seen, largest)
            fractions.add(largest)
            # exact: both are (integer count)/N in float64
            assert lcf[f, m] == largest / N, (f"replica {m} frame {f}: phaseflow {lcf[f, m]} "
                                              f"= {lcf[f, m] * N:.6g}/N, freud {largest}/N")
    # non-trivial: frames where the dense set splits into several clusters, a largest cluster of
    # more than a few particles, and fractions that change from frame to frame
    assert several >= 3 and largest_seen >= 0.05 * N and len(fractions) >= 5, (
        several, largest_seen, sorted(fractions))
