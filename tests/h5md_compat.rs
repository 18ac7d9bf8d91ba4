//! Particle files of the earlier H5MD layout still load: `tests/fixtures/h5md_old_layout.h5` was
//! written by `phaseflow simulate` before the layout MDAnalysis reads (time-independent
//! `box/edges` [d], own `step`/`time` per element, the frame averages as groups of
//! `/observables`; `phaseflow simulate abp-mips --set N=16 --set Pe=20 --steps 200 --every 100
//! --replicas 2 --seed 5`, its datasets copied unchanged into contiguous storage to keep it small).
//! The same command run now gives the same numbers in the new layout (the layout changed, not
//! the dynamics), so every reader must return, bit for bit, the same from both files. Also: a
//! partial file of the earlier layout is not resumed, and a box that changes between frames is
//! refused by the readers that assume a fixed box.

use phaseflow::io::h5md::{read_averages, read_particle_frame, read_particle_samples};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn phaseflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/h5md_old_layout.h5")
}

/// The fixture's command, now, with extra arguments.
fn simulate(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "simulate",
        "abp-mips",
        "--set",
        "N=16",
        "--set",
        "Pe=20",
        "--steps",
        "200",
        "--every",
        "100",
        "--replicas",
        "2",
        "--seed",
        "5",
        "--quiet",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    phaseflow(&args)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn files_of_the_earlier_layout_read_as_the_new_ones() {
    let old = fixture();
    let f = hdf5::File::open(&old).unwrap();
    // it is the earlier layout
    assert!(f.dataset("particles/replica_0/box/edges").is_ok());
    assert!(f.dataset("observables/radial_distribution/r").is_ok());
    assert!(f.group("analysis").is_err());
    drop(f);
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.h5");
    let o = simulate(&new, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = hdf5::File::open(&new).unwrap();
    assert!(f.group("particles/replica_0/box/edges").is_ok());
    drop(f);

    // the whole file (positions, images, orientations, times, box, parameters)
    let (a, b) = (
        read_particle_samples(&old).unwrap(),
        read_particle_samples(&new).unwrap(),
    );
    assert_eq!(
        (a.replicas, a.frames, a.n, a.dim, a.propulsion),
        (2, 3, 16, 2, 2)
    );
    assert_eq!(
        (a.replicas, a.frames, a.n, a.dim, a.propulsion),
        (b.replicas, b.frames, b.n, b.dim, b.propulsion)
    );
    assert_eq!(a.propulsion_name, b.propulsion_name);
    assert_eq!(bits(&a.x), bits(&b.x));
    assert_eq!(a.image, b.image);
    assert_eq!(bits(&a.g), bits(&b.g));
    assert_eq!(bits(&a.time), bits(&b.time));
    assert_eq!(bits(&a.edges), bits(&b.edges));
    assert_eq!(a.edges.len(), 2);
    assert_eq!(a.edges[0], a.parameters["L"]);
    let timing = |p: &std::collections::BTreeMap<String, f64>| {
        let mut p = p.clone();
        p.remove("wall_seconds");
        p
    };
    assert_eq!(timing(&a.parameters), timing(&b.parameters));
    assert_eq!(a.definition, b.definition);

    // single frames (the plot's and the EPR's reader)
    for k in [0, 1, -1] {
        let (p, q) = (
            read_particle_frame(&old, k).unwrap(),
            read_particle_frame(&new, k).unwrap(),
        );
        assert_eq!(bits(&p.x), bits(&q.x), "frame {k}");
        assert_eq!(bits(&p.edges), bits(&q.edges), "frame {k}");
        assert_eq!(
            (p.step, p.frames, p.n, p.dim),
            (q.step, q.frames, q.n, q.dim)
        );
        assert_eq!(p.time.to_bits(), q.time.to_bits());
        assert_eq!(p.system, "abp-mips");
    }
    assert_eq!(read_particle_frame(&old, -1).unwrap().step, 200);

    // the averages over frames and replicas: /observables then, /analysis now
    let (ha, hb) = (read_averages(&old).unwrap(), read_averages(&new).unwrap());
    let names: Vec<(&str, Vec<&str>)> = ha
        .iter()
        .map(|(k, v)| (k.as_str(), v.keys().map(|s| s.as_str()).collect()))
        .collect();
    assert_eq!(
        names,
        [
            ("local_packing_fraction", vec!["bin_edges", "density"]),
            ("radial_distribution", vec!["r", "value"]),
        ]
    );
    for (name, data) in &ha {
        for (k, v) in data {
            assert_eq!(bits(v), bits(&hb[name][k]), "{name}/{k}");
        }
    }
    assert_eq!(ha["radial_distribution"]["r"].len(), 100);
    assert_eq!(ha["local_packing_fraction"]["bin_edges"].len(), 61);

    // the command line reads it
    let png = dir.path().join("old.png");
    let o = phaseflow(&[
        "plot",
        old.to_str().unwrap(),
        "--frame",
        "-1",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}

#[test]
fn a_partial_file_of_the_earlier_layout_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cut.h5");
    let o = simulate(&out, &["--abort-after-frames", "1"]);
    assert!(!o.status.success());
    let partial = dir.path().join(".cut.h5.partial");
    // the box as the earlier versions wrote it
    {
        let f = hdf5::File::open_rw(&partial).unwrap();
        for g in ["replica_0", "replica_1"] {
            let bx = f.group(&format!("particles/{g}/box")).unwrap();
            bx.unlink("edges").unwrap();
            bx.new_dataset_builder()
                .with_data(&[4.0, 4.0])
                .create("edges")
                .unwrap();
        }
    }
    let o = simulate(&out, &["--resume"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("earlier version") && err.contains("without --resume"),
        "{err}"
    );
    assert!(err.contains(".cut.h5.partial"), "names the file: {err}");
    assert!(!out.exists());
    // starting afresh works
    let o = simulate(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists());
}

#[test]
fn a_box_that_changes_is_refused_by_the_fixed_box_readers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.h5");
    let o = simulate(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    {
        let f = hdf5::File::open_rw(&out).unwrap();
        let v = f.dataset("particles/replica_0/box/edges/value").unwrap();
        v.write_slice(&[5.0, 5.0], (2, ..)).unwrap();
    }
    let e = read_particle_samples(&out).unwrap_err().to_string();
    assert!(e.contains("the box changes at frame 2"), "{e}");
    assert!(e.contains("run.h5"), "names the file: {e}");
    // one frame has one box: its own
    assert_eq!(read_particle_frame(&out, 2).unwrap().edges, vec![5.0, 5.0]);
    assert_ne!(read_particle_frame(&out, 1).unwrap().edges, vec![5.0, 5.0]);
}
