//! GSD output and input end to end: `simulate --gsd` / `-o NAME.gsd` against the H5MD file of
//! the same run (positions to f32 rounding, images, orientations, observables, parameters),
//! `phaseflow export` both ways, resume of a GSD-only run, GSD input to plot and epr, a GSD file
//! of another program, and damaged files. (`python/tests/test_gsd.py` reads the same files with
//! the `gsd` package.)

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use phaseflow::io::gsd::{GsdFile, GsdWriter};
use phaseflow::io::particle_file::{self, ParticleFormat};

/// The tests of this file run one at a time. HDF5 opens files without `O_CLOEXEC` and locks
/// them with `flock`, so a `phaseflow` child spawned by one test inherits the descriptor of a
/// file another test has open in this process — and its lock, for as long as the child runs:
/// the other test's next open of that file then fails with EAGAIN ("unable to lock file",
/// seen once in a full run).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(dir)
        .env(
            "PHASEFLOW_SYSTEMS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("systems"),
        )
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    assert_eq!(o.status.code(), Some(1), "an error, not a crash");
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// A 3-D ABP definition (the shipped 2-D one with dimension = 3).
fn abp3(dir: &Path) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/active/abp_mips.toml"),
    )
    .unwrap()
    .replace("dimension = 2", "dimension = 3");
    let p = dir.join("abp3.toml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// A chunk: type code, N, M, bytes.
type Chunk = (u8, u64, u32, Vec<u8>);

/// Every chunk of a GSD file: (frame, name) → (type code, N, M, bytes), the metadata's
/// run-time parameters (command, wall time) removed.
fn chunks(path: &Path) -> BTreeMap<(u64, String), Chunk> {
    let mut f = GsdFile::open(path).unwrap();
    let mut out = BTreeMap::new();
    let names = f.names().to_vec();
    for j in 0..f.frames() {
        for name in &names {
            if let Some(e) = f.find(j, name).copied() {
                let mut b = f.read_bytes(&e).unwrap();
                let mut n = e.n;
                if name == "phaseflow/metadata" {
                    let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                    let p = v["parameters"].as_object_mut().unwrap();
                    assert!(p.remove("command").is_some() && p.remove("wall_seconds").is_some());
                    b = serde_json::to_vec(&v).unwrap();
                    n = b.len() as u64;
                }
                out.insert((j, name.clone()), (e.kind as u8, n, e.m, b));
            }
        }
    }
    out
}

/// Two chunk maps are equal; the first difference is named (not the whole map printed).
fn assert_same_chunks(a: &Path, b: &Path) {
    let (ca, cb) = (chunks(a), chunks(b));
    assert_eq!(ca.keys().collect::<Vec<_>>(), cb.keys().collect::<Vec<_>>());
    for (k, v) in &ca {
        let w = &cb[k];
        if v != w {
            let show = |x: &Chunk| {
                format!(
                    "type {} {} × {}: {}",
                    x.0,
                    x.1,
                    x.2,
                    String::from_utf8_lossy(&x.3[..x.3.len().min(2000)])
                )
            };
            panic!("chunk {k:?} differs:\n{}\n{}", show(v), show(w));
        }
    }
}

/// The largest shift of a position stored as f32: rounding moves |x| ≤ L/2 by at most half an
/// ulp, (L/2)·2^-24 = L·2^-25; a value rounded onto the face L₃₂/2 (L₃₂ = f32(L), within L·2^-25
/// of L/2) goes one ulp (L·2^-24) below it. Together less than L·2^-23.
fn f32_tolerance(edge: f64) -> f64 {
    edge * 2f64.powi(-23)
}

#[test]
fn gsd_beside_h5md_holds_the_same_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let def3 = abp3(d);
    // (model, sets, replicas): 2-D ABP, 3-D ABP with two replicas, 2-D AOUP with pair forces
    let cases: [(&str, &[&str], &str); 3] = [
        ("abp_mips", &["N=100"], "1"),
        (&def3, &["N=120", "phi=0.3"], "2"),
        ("mips", &["N=64"], "2"),
    ];
    for (k, (model, sets, replicas)) in cases.iter().enumerate() {
        let h5 = d.join(format!("r{k}.h5"));
        let gsd = d.join(format!("r{k}.gsd"));
        let mut args = vec![
            "simulate",
            model,
            "--steps",
            "200",
            "--every",
            "40",
            "--replicas",
            replicas,
            "--seed",
            "3",
            "-o",
            h5.to_str().unwrap(),
            "--gsd",
            gsd.to_str().unwrap(),
            "--json",
        ];
        for s in *sets {
            args.extend_from_slice(&["--set", s]);
        }
        let json: serde_json::Value = serde_json::from_str(&ok(&run(&args, d))).unwrap();
        assert_eq!(json["gsd"], gsd.to_str().unwrap());
        assert_eq!(json["output"], h5.to_str().unwrap());
        assert_eq!(
            particle_file::particle_format(&gsd),
            Some(ParticleFormat::Gsd)
        );
        assert_eq!(
            particle_file::particle_format(&h5),
            Some(ParticleFormat::H5md)
        );
        let a = particle_file::read_particle_samples(&h5).unwrap();
        let b = particle_file::read_particle_samples(&gsd).unwrap();
        assert_eq!(
            (a.replicas, a.frames, a.n, a.dim, a.propulsion),
            (b.replicas, b.frames, b.n, b.dim, b.propulsion)
        );
        assert_eq!(b.frames, 6);
        assert_eq!(a.propulsion_name, b.propulsion_name);
        // the box edge, the times, the images, the parameters and the definition exactly
        assert_eq!(a.edges, b.edges);
        assert_eq!(a.time, b.time);
        assert_eq!(a.image, b.image);
        assert_eq!(a.parameters, b.parameters);
        assert_eq!(a.definition, b.definition);
        assert_eq!(a.definition_path, b.definition_path);
        // positions to f32 rounding
        let tol = f32_tolerance(a.edges[0]);
        let dx =
            a.x.iter()
                .zip(&b.x)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
        assert!(dx <= tol, "{model}: positions differ by {dx:e} > {tol:e}");
        assert!(b.x.iter().all(|v| v.abs() <= a.edges[0] / 2.0));
        // propulsion: AOUP g exactly (f64 log), ABP orientations through f32 quaternions: each
        // component rounded by 2^-24 relative, the rotation of (1, 0, 0) sums three products
        let dg =
            a.g.iter()
                .zip(&b.g)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
        if a.propulsion_name == "self_propulsion" {
            assert_eq!(dg, 0.0);
        } else {
            assert!(dg < 5e-7, "{model}: orientations differ by {dg:e}");
        }
        // frame 2 of replica 0 as plot reads it
        let fa = particle_file::read_particle_frame(&h5, 2).unwrap();
        let fb = particle_file::read_particle_frame(&gsd, 2).unwrap();
        assert_eq!(
            (fa.step, fa.time, fa.frames, &fa.system),
            (fb.step, fb.time, fb.frames, &fb.system)
        );
        // GSD → H5MD: the same file but for the f32 positions and orientations
        let back = d.join(format!("r{k}-back.h5"));
        let s: serde_json::Value = serde_json::from_str(&ok(&run(
            &[
                "export",
                gsd.to_str().unwrap(),
                back.to_str().unwrap(),
                "--json",
            ],
            d,
        )))
        .unwrap();
        assert_eq!(s["from"], "gsd");
        assert_eq!(s["dropped"], serde_json::json!([]));
        let c = particle_file::read_particle_samples(&back).unwrap();
        assert_eq!(c.x, b.x);
        assert_eq!(c.g, b.g);
        assert_eq!(
            (&c.time, &c.image, &c.parameters),
            (&b.time, &b.image, &b.parameters)
        );
        same_observables_and_parameters(&h5, &back);
        // H5MD → GSD again: the very bytes of --gsd
        let again = d.join(format!("r{k}-again.gsd"));
        ok(&run(
            &["export", h5.to_str().unwrap(), again.to_str().unwrap()],
            d,
        ));
        assert_eq!(std::fs::read(&gsd).unwrap(), std::fs::read(&again).unwrap());
    }
}

/// `/observables`, `/analysis` and `/parameters` of two H5MD files are equal (datasets bit for bit, every
/// attribute with its type).
fn same_observables_and_parameters(a: &Path, b: &Path) {
    let (fa, fb) = (hdf5::File::open(a).unwrap(), hdf5::File::open(b).unwrap());
    fn walk(g: &hdf5::Group, prefix: &str, out: &mut BTreeMap<String, Vec<u64>>) {
        for name in g.member_names().unwrap() {
            let full = format!("{prefix}/{name}");
            if let Ok(sub) = g.group(&name) {
                walk(&sub, &full, out);
            } else {
                let ds = g.dataset(&name).unwrap();
                let v: Vec<u64> = match ds.dtype().unwrap().to_descriptor().unwrap() {
                    hdf5::types::TypeDescriptor::Float(_) => ds
                        .read_raw::<f64>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect(),
                    _ => ds
                        .read_raw::<i64>()
                        .unwrap()
                        .iter()
                        .map(|v| *v as u64)
                        .collect(),
                };
                out.insert(full, v);
            }
        }
    }
    let (mut oa, mut ob) = (BTreeMap::new(), BTreeMap::new());
    for top in ["observables", "analysis"] {
        if let (Ok(ga), Ok(gb)) = (fa.group(top), fb.group(top)) {
            walk(&ga, top, &mut oa);
            walk(&gb, top, &mut ob);
        }
    }
    // the per-frame series and the frame averages (every case here has pair forces)
    for name in [
        "msd/value",
        "radial_distribution/value",
        "local_packing_fraction/density",
    ] {
        assert!(
            oa.keys().any(|k| k.ends_with(name)),
            "{name} in {:?}",
            oa.keys()
        );
    }
    assert_eq!(oa, ob);
    let (pa, pb) = (
        fa.group("parameters").unwrap(),
        fb.group("parameters").unwrap(),
    );
    let mut names = pa.attr_names().unwrap();
    names.sort();
    let mut nb = pb.attr_names().unwrap();
    nb.sort();
    assert_eq!(names, nb);
    for n in names {
        let (x, y) = (pa.attr(&n).unwrap(), pb.attr(&n).unwrap());
        assert_eq!(
            x.dtype().unwrap().to_descriptor().unwrap(),
            y.dtype().unwrap().to_descriptor().unwrap(),
            "{n}"
        );
        if let Ok(v) = x.read_scalar::<f64>() {
            assert_eq!(
                v.to_bits(),
                y.read_scalar::<f64>().unwrap().to_bits(),
                "{n}"
            );
        } else {
            let s = |a: &hdf5::Attribute| {
                a.read_scalar::<hdf5::types::VarLenUnicode>()
                    .unwrap()
                    .to_string()
            };
            assert_eq!(s(&x), s(&y), "{n}");
        }
    }
}

#[test]
fn gsd_only_runs_resume_to_the_uninterrupted_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = [
        "simulate",
        "mips",
        "--steps",
        "300",
        "--every",
        "30",
        "--set",
        "N=100",
        "--seed",
        "9",
        "--replicas",
        "2",
        "--checkpoint-interval",
        "0",
        "--quiet",
    ];
    let full = d.join("full.gsd");
    ok(&run(
        &[&base[..], &["-o", full.to_str().unwrap()]].concat(),
        d,
    ));
    // nothing but the GSD file is left
    let mut left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["full.gsd"]);
    let cut = d.join("cut.gsd");
    let args = [&base[..], &["-o", cut.to_str().unwrap()]].concat();
    let e = fails(&run(
        &[&args[..], &["--abort-after-frames", "4"]].concat(),
        d,
    ));
    assert!(
        e.contains("..cut.gsd.h5md.partial kept; continue with --resume"),
        "{e}"
    );
    assert!(!cut.exists(), "no GSD file before the run completes");
    ok(&run(&[&args[..], &["--resume"]].concat(), d));
    assert!(cut.exists());
    assert!(!d.join(".cut.gsd.h5md").exists() && !d.join("..cut.gsd.h5md.partial").exists());
    assert_same_chunks(&full, &cut);
    // the same run written beside an H5MD file gives the same chunks
    let h5 = d.join("side.h5");
    let side = d.join("side.gsd");
    ok(&run(
        &[
            &base[..],
            &["-o", h5.to_str().unwrap(), "--gsd", side.to_str().unwrap()],
        ]
        .concat(),
        d,
    ));
    assert_same_chunks(&full, &side);
}

#[test]
fn gsd_input_to_plot_and_epr() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let h5 = d.join("m.h5");
    let gsd = d.join("m.gsd");
    ok(&run(
        &[
            "simulate",
            "mips",
            "--steps",
            "200",
            "--every",
            "20",
            "--set",
            "N=64",
            "--seed",
            "2",
            "-o",
            h5.to_str().unwrap(),
            "--gsd",
            gsd.to_str().unwrap(),
            "--quiet",
        ],
        d,
    ));
    let png = d.join("snap.png");
    ok(&run(
        &[
            "plot",
            gsd.to_str().unwrap(),
            "-o",
            png.to_str().unwrap(),
            "--frame",
            "-2",
        ],
        d,
    ));
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    // the learning-free reference EPR of the GSD samples: the H5MD value to the effect of
    // rounding positions to f32 (relative 2^-24 of L/2 ≈ 1e-6 of a particle diameter)
    let epr = |p: &Path| -> f64 {
        let s = ok(&run(
            &["epr", "--data", p.to_str().unwrap(), "--json", "--quiet"],
            d,
        ));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v["epr_reference"].as_f64().unwrap()
    };
    let (a, b) = (epr(&h5), epr(&gsd));
    assert!(a > 1.0 && ((a - b) / a).abs() < 1e-5, "{a} vs {b}");
    // training data: the same configurations (to f32 rounding), split and model
    #[cfg(feature = "learn")]
    {
        use phaseflow::score::train::{load_dataset, TrainingConfig};
        let t = TrainingConfig::default();
        let (da, pa) = load_dataset(&h5, &t).unwrap();
        let (db, pb) = load_dataset(&gsd, &t).unwrap();
        assert_eq!(
            (da.n, da.dim, da.c, da.x.len()),
            (db.n, db.dim, db.c, db.x.len())
        );
        assert_eq!(
            (&da.train, &da.valid, da.eps, da.gamma),
            (&db.train, &db.valid, db.eps, db.gamma)
        );
        assert_eq!(
            (pa.definition, pa.parameters, pa.replicas, pa.frames),
            (pb.definition, pb.parameters, pb.replicas, pb.frames)
        );
        let tol = f32_tolerance(particle_file::read_particle_samples(&h5).unwrap().edges[0]);
        for (p, q) in da.x.iter().zip(&db.x) {
            assert!(p.iter().zip(q).all(|(u, v)| (u - v).abs() <= tol));
        }
        assert_eq!(da.g, db.g, "AOUP g is stored as f64");
    }
}

#[test]
fn a_gsd_file_of_another_program_is_read_as_one_replica() {
    let _serial = serial();
    // a minimal HOOMD file as gsd.hoomd writes one: no phaseflow metadata, 2 frames, the box,
    // N and the types in frame 0 only, frame 1 with position and step
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("other.gsd");
    let mut w = GsdWriter::create(&p, "gsd.hoomd 5.0.1", "hoomd", (1, 4)).unwrap();
    w.write("configuration/step", 1, 1, &[100u64]).unwrap();
    w.write("configuration/box", 6, 1, &[4f32, 4.0, 0.0, 0.0, 0.0, 0.0])
        .unwrap();
    w.write("particles/N", 1, 1, &[2u32]).unwrap();
    w.write(
        "particles/position",
        2,
        3,
        &[0.5f32, -1.0, 0.0, 1.5, 1.25, 0.0],
    )
    .unwrap();
    let h = std::f64::consts::FRAC_PI_4;
    // particle 0 at θ = π/2, particle 1 the identity
    let q = [h.cos() as f32, 0.0, 0.0, h.sin() as f32, 1.0, 0.0, 0.0, 0.0];
    w.write("particles/orientation", 2, 4, &q).unwrap();
    w.end_frame().unwrap();
    w.write("configuration/step", 1, 1, &[200u64]).unwrap();
    w.write(
        "particles/position",
        2,
        3,
        &[-0.5f32, 1.0, 0.0, 1.75, -1.5, 0.0],
    )
    .unwrap();
    w.end_frame().unwrap();
    w.finish().unwrap();
    let s = particle_file::read_particle_samples(&p).unwrap();
    assert_eq!(
        (s.replicas, s.frames, s.n, s.dim, s.propulsion),
        (1, 2, 2, 2, 2)
    );
    assert_eq!(s.edges, vec![4.0, 4.0]);
    assert_eq!(s.x, vec![0.5, -1.0, 1.5, 1.25, -0.5, 1.0, 1.75, -1.5]);
    assert_eq!(s.image, vec![0; 8]);
    // no time is recorded: the step
    assert_eq!(s.time, vec![100.0, 200.0]);
    // frame 1 takes the orientations of frame 0 (the schema's rule)
    for f in 0..2 {
        let g = &s.g[4 * f..4 * f + 4];
        assert!(g[0].abs() < 1e-7 && (g[1] - 1.0).abs() < 1e-7, "{g:?}");
        assert_eq!(&g[2..], &[1.0, 0.0]);
    }
    assert!(s.parameters.is_empty() && s.definition.is_empty());
    // to H5MD, saying what it lacks
    let out = dir.path().join("other.h5");
    let sum = particle_file::export(&p, &out).unwrap();
    assert_eq!(sum.from, ParticleFormat::Gsd);
    assert!(sum
        .dropped
        .iter()
        .any(|d| d.contains("not written by phaseflow")));
    let back = particle_file::read_particle_samples(&out).unwrap();
    assert_eq!(back.x, s.x);
    let f = hdf5::File::open(&out).unwrap();
    let from: hdf5::types::VarLenUnicode = f
        .group("parameters")
        .unwrap()
        .attr("converted_from")
        .unwrap()
        .read_scalar()
        .unwrap();
    assert!(from.as_str().starts_with("GSD file "), "{from}");
    // a non-cubic box is refused by name
    let q = dir.path().join("rect.gsd");
    let mut w = GsdWriter::create(&q, "x", "hoomd", (1, 4)).unwrap();
    w.write("configuration/box", 6, 1, &[4f32, 3.0, 0.0, 0.0, 0.0, 0.0])
        .unwrap();
    w.write("particles/N", 1, 1, &[1u32]).unwrap();
    w.write("particles/position", 1, 3, &[0f32, 0.0, 0.0])
        .unwrap();
    w.end_frame().unwrap();
    w.finish().unwrap();
    let e = particle_file::read_particle_samples(&q)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rect.gsd") && e.contains("cubic boxes only"),
        "{e}"
    );
    // another schema
    let r = dir.path().join("other-schema.gsd");
    let mut w = GsdWriter::create(&r, "x", "mdtraj", (1, 0)).unwrap();
    w.write("x", 1, 1, &[1u8]).unwrap();
    w.end_frame().unwrap();
    w.finish().unwrap();
    let e = particle_file::read_particle_frame(&r, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("schema 'mdtraj', not 'hoomd'"), "{e}");
}

#[test]
fn bad_inputs_and_outputs_are_named() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let h5 = d.join("a.h5");
    let gsd = d.join("a.gsd");
    ok(&run(
        &[
            "simulate",
            "abp_mips",
            "--steps",
            "20",
            "--every",
            "10",
            "--set",
            "N=64",
            "-o",
            h5.to_str().unwrap(),
            "--gsd",
            gsd.to_str().unwrap(),
            "--quiet",
        ],
        d,
    ));
    let bytes = std::fs::read(&gsd).unwrap();
    // truncated GSD files: plot, export and epr name the file and the fault
    for cut in [10, 200, 300, bytes.len() / 2, bytes.len() - 5] {
        let t = d.join("cut.gsd");
        std::fs::write(&t, &bytes[..cut]).unwrap();
        for args in [
            vec!["plot", "cut.gsd", "-o", "x.png"],
            vec!["export", "cut.gsd", "x.h5"],
            vec!["epr", "--data", "cut.gsd"],
        ] {
            let e = fails(&run(&args, d));
            assert!(
                e.contains("cut.gsd: GSD file:") && (e.contains("truncated")),
                "{args:?} at {cut}: {e}"
            );
        }
        assert!(!d.join("x.h5").exists() && !d.join("x.png").exists());
    }
    // export: the output's format by name, the other format, a regular file
    let e = fails(&run(&["export", "a.h5", "b.txt"], d));
    assert!(e.contains("b.txt") && e.contains("end it in .gsd"), "{e}");
    let e = fails(&run(&["export", "a.h5", "b.h5"], d));
    assert!(e.contains("already H5MD"), "{e}");
    let e = fails(&run(&["export", "a.gsd", "a.gsd"], d));
    assert!(e.contains("already GSD"), "{e}");
    std::fs::create_dir(d.join("dir.gsd")).unwrap();
    let e = fails(&run(&["export", "a.h5", "dir.gsd"], d));
    assert!(e.contains("not a regular file"), "{e}");
    let e = fails(&run(&["export", "missing.h5", "b.gsd"], d));
    assert!(
        e.contains("missing.h5") && e.contains("cannot be read"),
        "{e}"
    );
    std::fs::write(d.join("text.h5"), "hello").unwrap();
    let e = fails(&run(&["export", "text.h5", "b.gsd"], d));
    assert!(
        e.contains("neither a GSD file nor an H5MD particle file"),
        "{e}"
    );
    assert!(!d.join("b.gsd").exists());
    // simulate: GSD is for 2-D and 3-D particle models, one GSD name
    let e = fails(&run(
        &["simulate", "ring", "--steps", "10", "-o", "r.gsd"],
        d,
    ));
    assert!(e.contains("r.gsd") && e.contains("1-D"), "{e}");
    let e = fails(&run(
        &[
            "simulate", "trap", "--steps", "10", "-o", "t.gsd", "--gsd", "u.gsd",
        ],
        d,
    ));
    assert!(e.contains("is a GSD file already"), "{e}");
    let e = fails(&run(
        &[
            "simulate", "trap", "--steps", "10", "-o", "t.h5", "--gsd", "u.xyz",
        ],
        d,
    ));
    assert!(e.contains("NAME.gsd"), "{e}");
    let e = fails(&run(&["simulate", "lorenz", "-o", "l.gsd"], d));
    assert!(e.contains("GSD output is for particle models"), "{e}");
    let e = fails(&run(
        &["simulate", "lorenz", "-o", "l.h5", "--gsd", "l.gsd"],
        d,
    ));
    assert!(e.contains("--gsd applies to particle models"), "{e}");
    let e = fails(&run(
        &[
            "simulate", "trap", "--steps", "10", "-o", "t.h5", "--gsd", "dir.gsd",
        ],
        d,
    ));
    assert!(
        e.contains("dir.gsd") && e.contains("not a regular file"),
        "{e}"
    );
    for f in ["r.gsd", "t.gsd", "t.h5", "u.gsd", "l.gsd", "l.h5"] {
        assert!(!d.join(f).exists(), "{f}");
    }
}
