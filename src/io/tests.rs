//! Tests of the I/O layer: HDF5 round trip, h5py interoperability, atomicity, errors, plots.

use std::path::{Path, PathBuf};

use super::*;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Entries of `dir` (names), sorted.
fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Bitwise equality, so that NaN == NaN.
fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

fn same_attr(a: &AttrValue, b: &AttrValue) -> bool {
    match (a, b) {
        (AttrValue::F64(x), AttrValue::F64(y)) => same_f64(*x, *y),
        (AttrValue::F64s(x), AttrValue::F64s(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_f64(*p, *q))
        }
        _ => a == b,
    }
}

const N: usize = 10_000;

fn frame(k: usize) -> (f64, [f64; 3]) {
    let t = k as f64 * 0.01;
    (t, [t.sin(), t.cos(), t])
}

/// A definition file of several KB, with non-ASCII text.
fn definition_text() -> String {
    let mut s = String::from("# Lorenz — σ, ρ, β\nname = \"lorenz\"\n[equations]\n");
    for i in 0..300 {
        s.push_str(&format!("# comment line {i}: dx/dt = σ (y − x)\n"));
    }
    s
}

fn all_kinds_of_attrs() -> Vec<(&'static str, AttrValue)> {
    vec![
        ("system", AttrValue::Str("lorenz".into())),
        ("definition", AttrValue::Str(definition_text())),
        ("empty_string", AttrValue::Str(String::new())),
        ("unicode", AttrValue::Str("ρ = 28, β = 8/3 ✓".into())),
        ("rtol", AttrValue::F64(1e-10)),
        ("step", AttrValue::F64(f64::NAN)),
        ("infinite", AttrValue::F64(f64::NEG_INFINITY)),
        ("tiny", AttrValue::F64(f64::MIN_POSITIVE / 4.0)),
        ("offset", AttrValue::I64(i64::MIN)),
        ("seed", AttrValue::I64(-42)),
        ("rhs_evaluations", AttrValue::U64(u64::MAX)),
        (
            "parameter_values",
            AttrValue::F64s(vec![10.0, 28.0, 8.0 / 3.0]),
        ),
        ("no_values", AttrValue::F64s(vec![])),
        // 80 KB: more than fits in an object header (needs dense attribute storage).
        (
            "long_array",
            AttrValue::F64s((0..10_000).map(|i| (i as f64).sqrt()).collect()),
        ),
        ("with_nan", AttrValue::F64s(vec![1.0, f64::NAN, -0.0])),
        (
            "parameter_names",
            AttrValue::Strs(names(&["sigma", "rho", "beta"])),
        ),
        ("no_names", AttrValue::Strs(vec![])),
        ("mixed_names", AttrValue::Strs(names(&["", "σ", "a b"]))),
        ("converged", AttrValue::Bool(true)),
        ("stiff", AttrValue::Bool(false)),
    ]
}

fn write_known(path: &Path) -> usize {
    let mut w = TrajectoryWriter::create(path, 3, &names(&["x", "y", "z"])).unwrap();
    for k in 0..N {
        let (t, x) = frame(k);
        w.push(t, &x).unwrap();
    }
    for (name, v) in all_kinds_of_attrs() {
        w.set_attr(name, &v).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.h5");
    assert_eq!(write_known(&path), N);
    assert_eq!(
        dir_entries(dir.path()),
        ["known.h5"],
        "no temporary file left"
    );

    let tr = read_trajectory(&path).unwrap();
    assert_eq!(tr.dim, 3);
    assert_eq!(tr.len(), N);
    assert_eq!(tr.time.len(), N);
    assert_eq!(tr.state.len(), N * 3);
    assert_eq!(tr.variables, names(&["x", "y", "z"]));
    for k in 0..N {
        let (t, x) = frame(k);
        assert!(same_f64(tr.time[k], t), "time[{k}]");
        assert_eq!(tr.frame(k), &x[..], "state[{k}]");
    }

    for (name, v) in all_kinds_of_attrs() {
        let got = tr
            .attrs
            .get(name)
            .unwrap_or_else(|| panic!("attribute {name} missing"));
        assert!(
            same_attr(got, &v),
            "attribute {name}: wrote {v:?}, read {got:?}"
        );
    }
    assert_eq!(tr.attr_str("format"), Some(FORMAT_NAME));
    assert_eq!(
        tr.attrs.get("format_version"),
        Some(&AttrValue::I64(FORMAT_VERSION))
    );
    assert_eq!(
        tr.attrs.get("variables"),
        Some(&AttrValue::Strs(names(&["x", "y", "z"])))
    );
    // Exactly what was written, nothing else.
    assert_eq!(tr.attrs.len(), all_kinds_of_attrs().len() + 3);
}

#[test]
fn attributes_can_be_replaced_and_variables_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replace.h5");
    let mut w = TrajectoryWriter::create(&path, 2, &names(&["q", "p"])).unwrap();
    w.push(0.0, &[1.0, 2.0]).unwrap();
    w.set_attr("solver", &AttrValue::Str("rk4".into())).unwrap();
    w.set_attr("solver", &AttrValue::F64s(vec![1.0, 2.0]))
        .unwrap();
    // The CLI sets `variables` again as an ordinary attribute.
    w.set_attr("variables", &AttrValue::Strs(names(&["q", "p"])))
        .unwrap();
    assert!(w.set_attr("format", &AttrValue::I64(3)).is_err());
    w.set_time_units("s").unwrap();
    assert_eq!(w.finish().unwrap(), 1);
    let tr = read_trajectory(&path).unwrap();
    assert_eq!(tr.attrs["solver"], AttrValue::F64s(vec![1.0, 2.0]));
    assert_eq!(tr.variables, names(&["q", "p"]));
    assert_eq!(tr.attr_str("format"), Some(FORMAT_NAME));
}

#[test]
fn empty_trajectory_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.h5");
    let w = TrajectoryWriter::create(&path, 4, &names(&["a", "b", "c", "d"])).unwrap();
    assert_eq!(w.finish().unwrap(), 0);
    let tr = read_trajectory(&path).unwrap();
    assert_eq!((tr.len(), tr.dim, tr.state.len()), (0, 4, 0));
    assert!(tr.is_empty());
}

#[test]
fn wrong_frame_length_is_rejected_and_writer_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("len.h5");
    let mut w = TrajectoryWriter::create(&path, 3, &names(&["x", "y", "z"])).unwrap();
    let e = w.push(0.0, &[1.0, 2.0]).unwrap_err().to_string();
    assert!(e.contains("2 components, expected 3"), "{e}");
    assert!(e.contains("len.h5"), "{e}");
    w.push(0.0, &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(w.frames(), 1);
    assert_eq!(w.finish().unwrap(), 1);
    assert!(TrajectoryWriter::create(&path, 2, &names(&["x"])).is_err());
    assert!(TrajectoryWriter::create(&path, 0, &[]).is_err());
}

#[test]
fn h5py_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("interop.h5");
    write_known(&path);
    let script = r#"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    t, s = f["time"], f["state"]
    print("shapes", t.shape, s.shape)
    print("chunks", s.chunks, s.maxshape)
    print("dtype", s.dtype, t.dtype)
    sysname = f.attrs["system"]
    print("system", type(sysname).__name__, sysname)
    print("units", f["time"].attrs["units"])
    print("variables", ",".join(str(v) for v in s.attrs["variables"]))
    print("params", ",".join(repr(float(v)) for v in f.attrs["parameter_values"]))
    c = f.attrs["converged"]
    print("converged", isinstance(c, (bool, np.bool_)), bool(c))
    print("u64", f.attrs["rhs_evaluations"].dtype, int(f.attrs["rhs_evaluations"]))
    print("definition", len(f.attrs["definition"]), f.attrs["definition"].splitlines()[0])
    print("row", repr(float(t[1234])), ",".join(repr(float(v)) for v in s[1234]))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 must be installed (with h5py and numpy) to run this test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python3/h5py failed (is h5py installed?):\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no '{key}' line in:\n{stdout}"))
            .to_owned()
    };
    assert_eq!(line("shapes"), format!("({N},) ({N}, 3)"));
    assert_eq!(line("chunks"), "(4096, 3) (None, 3)");
    assert_eq!(line("dtype"), "float64 float64");
    assert_eq!(line("system"), "str lorenz");
    assert_eq!(line("units"), "dimensionless");
    assert_eq!(line("variables"), "x,y,z");
    assert_eq!(line("params"), format!("10.0,28.0,{:?}", 8.0 / 3.0));
    assert_eq!(line("converged"), "True True"); // numpy.bool_
    assert_eq!(line("u64"), format!("uint64 {}", u64::MAX));
    let def = definition_text();
    assert_eq!(
        line("definition"),
        format!("{} # Lorenz — σ, ρ, β", def.chars().count())
    );
    // Values: Python's repr of a float round-trips exactly.
    let row = line("row");
    let (t, x) = row.split_once(' ').unwrap();
    let (t0, x0) = frame(1234);
    assert_eq!(t.parse::<f64>().unwrap(), t0);
    let x: Vec<f64> = x.split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(x, x0);
}

#[test]
fn unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.h5");
    {
        let mut w = TrajectoryWriter::create(&path, 3, &names(&["x", "y", "z"])).unwrap();
        for k in 0..9_000 {
            let (t, x) = frame(k);
            w.push(t, &x).unwrap(); // two chunks reach the disk
        }
        w.set_attr("system", &AttrValue::Str("lorenz".into()))
            .unwrap();
        assert!(!path.exists(), "final path must not exist before finish");
        let entries = dir_entries(dir.path());
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(
            entries[0].starts_with(".run.h5.tmp-"),
            "temporary name: {entries:?}"
        );
    }
    assert!(!path.exists());
    assert!(dir_entries(dir.path()).is_empty(), "temporary file removed");

    // Same on a panic mid-run.
    let p2 = path.clone();
    let r = std::panic::catch_unwind(move || {
        let mut w = TrajectoryWriter::create(&p2, 1, &names(&["x"])).unwrap();
        w.push(0.0, &[1.0]).unwrap();
        panic!("integration failed");
    });
    assert!(r.is_err());
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn finish_replaces_an_existing_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.h5");
    std::fs::write(&path, b"old contents").unwrap();
    let mut w = TrajectoryWriter::create(&path, 1, &names(&["x"])).unwrap();
    w.push(0.5, &[2.0]).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
    w.finish().unwrap();
    let tr = read_trajectory(&path).unwrap();
    assert_eq!((tr.time.clone(), tr.state.clone()), (vec![0.5], vec![2.0]));
    assert_eq!(dir_entries(dir.path()), ["out.h5"]);
}

#[test]
fn unwritable_path_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/out.h5");
    let e = TrajectoryWriter::create(&path, 3, &names(&["x", "y", "z"])).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("No such file or directory"), "{msg}");

    // Parent is a regular file.
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let path = file.join("out.h5");
    let msg = TrajectoryWriter::create(&path, 1, &names(&["x"]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    // No file name at all.
    assert!(TrajectoryWriter::create(Path::new("/"), 1, &names(&["x"])).is_err());
}

#[test]
fn reading_something_else_fails_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.h5");
    let e = read_trajectory(&missing).unwrap_err().to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");

    let text = dir.path().join("notes.h5");
    std::fs::write(&text, "not hdf5 at all").unwrap();
    let e = read_trajectory(&text).unwrap_err();
    assert!(matches!(e, IoError::NotTrajectory { .. }), "{e:?}");
    assert!(e.to_string().contains(&text.display().to_string()), "{e}");

    // Valid HDF5, wrong content.
    let other = dir.path().join("other.h5");
    {
        let f = hdf5::File::create(&other).unwrap();
        f.new_dataset::<f64>().shape(5).create("time").unwrap();
    }
    let e = read_trajectory(&other).unwrap_err().to_string();
    assert!(
        e.contains(&other.display().to_string()) && e.contains("not a phaseflow trajectory"),
        "{e}"
    );
}

/// A Lorenz trajectory (RK4, dt = 0.005), the classic butterfly.
fn lorenz(n: usize) -> Trajectory {
    let f = |x: [f64; 3]| {
        [
            10.0 * (x[1] - x[0]),
            x[0] * (28.0 - x[2]) - x[1],
            x[0] * x[1] - 8.0 / 3.0 * x[2],
        ]
    };
    let h = 0.005;
    let mut x = [1.0, 1.0, 1.0];
    let (mut time, mut state) = (Vec::with_capacity(n), Vec::with_capacity(3 * n));
    for k in 0..n {
        time.push(k as f64 * h);
        state.extend_from_slice(&x);
        let k1 = f(x);
        let k2 = f(std::array::from_fn(|i| x[i] + 0.5 * h * k1[i]));
        let k3 = f(std::array::from_fn(|i| x[i] + 0.5 * h * k2[i]));
        let k4 = f(std::array::from_fn(|i| x[i] + h * k3[i]));
        x = std::array::from_fn(|i| x[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
    }
    let mut attrs = std::collections::BTreeMap::new();
    attrs.insert("system".into(), AttrValue::Str("lorenz".into()));
    Trajectory {
        time,
        state,
        dim: 3,
        members: 1,
        variables: names(&["x", "y", "z"]),
        attrs,
    }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert!(bytes.len() > 20_000, "{} bytes only", bytes.len());
}

/// Where to keep the PNGs for a look: `PHASEFLOW_PLOT_DIR`, else a temporary directory.
fn plot_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("PHASEFLOW_PLOT_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            (None, PathBuf::from(d))
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

#[test]
fn plots_2d_and_3d_pngs() {
    let (_keep, dir) = plot_dir();
    let tr = lorenz(20_000);
    let opts = PlotOptions::default();

    let p3 = dir.join("lorenz3d.png");
    plot_trajectory(&tr, &p3, &opts).unwrap();
    assert_png(&p3);

    let p2 = dir.join("lorenz_xz.png");
    let o2 = PlotOptions {
        axes: Some(vec![0, 2]),
        ..opts.clone()
    };
    plot_trajectory(&tr, &p2, &o2).unwrap();
    assert_png(&p2);

    let p1 = dir.join("lorenz_x_t.png");
    let o1 = PlotOptions {
        axes: Some(vec![0]),
        title: Some("Lorenz, x(t)".into()),
        width: 1400,
        height: 500,
    };
    plot_trajectory(&tr, &p1, &o1).unwrap();
    assert_png(&p1);

    // No temporary PNG left behind.
    let ours = [".lorenz3d.png", ".lorenz_xz.png", ".lorenz_x_t.png"];
    let entries = dir_entries(&dir);
    assert!(
        entries
            .iter()
            .all(|n| !ours.iter().any(|o| n.starts_with(o))),
        "{entries:?}"
    );
}

#[test]
fn plots_read_back_files_maps_and_huge_trajectories() {
    let (_keep, dir) = plot_dir();
    // From a file, D = 2, drawn as dots because it is a map.
    let h5 = dir.join("henon.h5");
    let mut w = TrajectoryWriter::create(&h5, 2, &names(&["x", "y"])).unwrap();
    let (mut x, mut y) = (0.1, 0.1);
    for k in 0..30_000 {
        w.push(k as f64, &[x, y]).unwrap();
        (x, y) = (1.0 - 1.4 * x * x + y, 0.3 * x);
    }
    w.set_attr("system", &AttrValue::Str("hénon".into()))
        .unwrap();
    w.set_attr("kind", &AttrValue::Str("map".into())).unwrap();
    w.finish().unwrap();
    let tr = read_trajectory(&h5).unwrap();
    let png = dir.join("henon.png");
    plot_trajectory(&tr, &png, &PlotOptions::default()).unwrap();
    assert_png(&png);

    // More frames than drawn, and a NaN hole: decimated, still a plot.
    let mut big = lorenz(450_000);
    big.state[3 * 1000] = f64::NAN;
    let png = dir.join("lorenz_big.png");
    let opts = PlotOptions {
        width: 800,
        height: 600,
        ..PlotOptions::default()
    };
    plot_trajectory(&big, &png, &opts).unwrap();
    assert_png(&png);
}

#[test]
fn plot_rejects_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let tr = lorenz(100);
    let png = dir.path().join("bad.png");
    for axes in [vec![], vec![0, 1, 2, 0], vec![0, 3]] {
        let opts = PlotOptions {
            axes: Some(axes.clone()),
            ..PlotOptions::default()
        };
        let e = plot_trajectory(&tr, &png, &opts).unwrap_err().to_string();
        assert!(e.contains("bad.png"), "{axes:?}: {e}");
    }
    let e = plot_trajectory(
        &tr,
        &dir.path().join("no/dir/x.png"),
        &PlotOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no/dir/x.png"), "{e}");
    assert!(dir_entries(dir.path()).is_empty());
    assert_eq!(super::plot::decimate(10, 3), vec![0, 4, 8, 9]);
    assert_eq!(super::plot::decimate(5, 10), vec![0, 1, 2, 3, 4]);
}

/// Throughput check: `cargo test --release -- --ignored --nocapture write_throughput`.
#[test]
#[ignore]
fn write_throughput() {
    let dir = tempfile::tempdir().unwrap();
    for (dim, n) in [(3usize, 5_000_000usize), (64, 200_000)] {
        let path = dir.path().join(format!("big{dim}.h5"));
        let vars: Vec<String> = (0..dim).map(|j| format!("x{j}")).collect();
        let start = std::time::Instant::now();
        let mut w = TrajectoryWriter::create(&path, dim, &vars).unwrap();
        let mut x = vec![0.0; dim];
        for k in 0..n {
            for (j, v) in x.iter_mut().enumerate() {
                *v = (k * dim + j) as f64;
            }
            w.push(k as f64, &x).unwrap();
        }
        w.finish().unwrap();
        let dt = start.elapsed().as_secs_f64();
        let start = std::time::Instant::now();
        let tr = read_trajectory(&path).unwrap();
        let rt = start.elapsed().as_secs_f64();
        assert_eq!(tr.len(), n);
        assert_eq!(tr.state[(n - 1) * dim + dim - 1], (n * dim - 1) as f64);
        let mb = (n * (dim + 1) * 8) as f64 / 1e6;
        println!(
            "D = {dim}: {n} frames ({mb:.0} MB) written in {dt:.2} s ({:.0} MB/s, {:.0} ns/frame), read in {rt:.2} s",
            mb / dt,
            dt * 1e9 / n as f64
        );
    }
}

#[test]
fn reads_a_file_written_by_h5py() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from_python.h5");
    let script = r#"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["time"] = np.linspace(0.0, 1.0, 5)
    s = f.create_dataset("state", data=np.arange(10.0).reshape(5, 2))
    s.attrs["variables"] = ["u", "v"]
    f.attrs["system"] = "oscillator"
    f.attrs["n"] = np.int64(-7)
    f.attrs["m"] = np.uint32(7)
    f.attrs["x"] = 0.25
    f.attrs["flag"] = True
    f.attrs["params"] = [1.5, 2.5]
    f.attrs["ints"] = np.array([1, 2, 3])
    f.attrs["names"] = ["a", "β"]
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 must be installed (with h5py and numpy) to run this test");
    assert!(
        out.status.success(),
        "python3/h5py failed (is h5py installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tr = read_trajectory(&path).unwrap();
    assert_eq!((tr.len(), tr.dim), (5, 2));
    assert_eq!(tr.time, [0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(tr.frame(4), [8.0, 9.0]);
    assert_eq!(tr.variables, names(&["u", "v"]));
    let a = &tr.attrs;
    assert_eq!(a["system"], AttrValue::Str("oscillator".into()));
    assert_eq!(a["n"], AttrValue::I64(-7));
    assert_eq!(a["m"], AttrValue::U64(7));
    assert_eq!(a["x"], AttrValue::F64(0.25));
    assert_eq!(a["flag"], AttrValue::Bool(true));
    assert_eq!(a["params"], AttrValue::F64s(vec![1.5, 2.5]));
    assert_eq!(a["ints"], AttrValue::F64s(vec![1.0, 2.0, 3.0]));
    assert_eq!(a["names"], AttrValue::Strs(names(&["a", "β"])));
}

#[test]
fn bytes_are_published_atomically_and_only_over_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leaderboard.csv");
    write_bytes_atomically(&path, b"first").unwrap();
    write_bytes_atomically(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(dir_entries(dir.path()), names(&["leaderboard.csv"]));
    // a directory at the destination is refused and stays as it was, nothing left behind
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    assert!(write_bytes_atomically(&sub, b"x").is_err());
    assert!(sub.is_dir());
    assert_eq!(dir_entries(dir.path()), names(&["leaderboard.csv", "sub"]));
}

/// Chunks of about 1 MiB whatever the shape: long along time for a narrow state, never longer
/// than the trajectory, and split across variables when one frame alone exceeds the target.
#[test]
fn chunk_shape_follows_the_data() {
    use super::chunk_shape;
    assert_eq!(chunk_shape(3, None), (4096, 3));
    assert_eq!(chunk_shape(3, Some(10)), (10, 3));
    assert_eq!(chunk_shape(3, Some(0)), (1, 3));
    assert_eq!(chunk_shape(4000, Some(10)), (10, 4000));
    assert_eq!(chunk_shape(4000, None), (32, 4000));
    assert_eq!(chunk_shape(1 << 20, None), (1, 1 << 17));
    for d in [1, 7, 1000, 100_000, 1 << 17, 3 << 17] {
        let (r, c) = chunk_shape(d, Some(1_000_000));
        assert!(r * c * 8 <= super::CHUNK_TARGET_BYTES, "{d}: ({r}, {c})");
        assert!(c <= d && r >= 1);
    }
}

/// Temporaries of writers that were killed (their process is gone) are removed by the next
/// writer of the same destination; a live process's temporary, another destination's, a name
/// that only resembles the scheme and a particle run's resumable `.NAME.partial` are kept.
#[cfg(unix)]
#[test]
fn stale_temporaries_of_dead_processes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5");
    // a pid that is certainly gone: a child that has exited and been reaped
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let dead = child.id();
    let me = std::process::id();
    let stale = [
        format!(".x.h5.partial-{dead}-0"),
        format!(".x.h5.tmp-{dead}-3"),
    ];
    let kept = [
        format!(".x.h5.partial-{me}-7"),
        format!(".y.h5.partial-{dead}-0"),
        format!(".x.h5.partial-{dead}-0x"),
        ".x.h5.partial".to_string(),
    ];
    for n in stale.iter().chain(&kept) {
        std::fs::write(dir.path().join(n), b"left").unwrap();
    }
    write_hdf5_atomically(&out, |f| {
        f.new_dataset::<f64>().shape(1).create("a").map(drop)
    })
    .unwrap();
    let mut left = dir_entries(dir.path());
    left.retain(|n| n.starts_with('.'));
    // the trajectory writer cleans its own scheme (.tmp) when it writes there
    assert!(left.contains(&stale[1]));
    let w = TrajectoryWriter::create(&out, 1, &names(&["x"])).unwrap();
    drop(w);
    let mut expected: Vec<String> = kept.to_vec();
    expected.sort();
    let mut left = dir_entries(dir.path());
    left.retain(|n| n.starts_with('.'));
    assert_eq!(left, expected);
}
