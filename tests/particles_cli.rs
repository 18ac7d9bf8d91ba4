//! `phaseflow simulate` on particle models, end to end: the H5MD 1.1 layout, bit-identical
//! output for 1 and 2 threads, checkpoint/resume equal to an uninterrupted run, the paper's
//! files load, and motility-induced phase separation of ABPs at Pe = 150 but not at Pe = 10.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(dead_code)]
mod common;
use common::h5md_datasets as datasets;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_phaseflow"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn simulate(extra: &[&str], out: &Path) -> Output {
    let mut args = vec!["simulate"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", out.to_str().unwrap(), "--quiet"]);
    run(&args)
}

#[test]
fn h5md_layout() {
    let dir = tmp();
    let out = dir.path().join("trap.h5");
    let o = simulate(
        &["trap", "--steps", "200", "--every", "50", "--seed", "4"],
        &out,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f = hdf5::File::open(&out).unwrap();
    let h5md = f.group("h5md").unwrap();
    let version: Vec<i64> = h5md.attr("version").unwrap().read_raw().unwrap();
    assert_eq!(version, vec![1, 1]);
    assert!(h5md.group("author").unwrap().attr("name").is_ok());
    let creator = h5md.group("creator").unwrap();
    let name: hdf5::types::VarLenUnicode = creator.attr("name").unwrap().read_scalar().unwrap();
    assert_eq!(name.as_str(), "phaseflow");
    let all = f.group("particles/all").unwrap();
    let bx = all.group("box").unwrap();
    assert_eq!(
        bx.attr("dimension").unwrap().read_scalar::<i64>().unwrap(),
        2
    );
    let boundary: Vec<hdf5::types::VarLenUnicode> =
        bx.attr("boundary").unwrap().read_raw().unwrap();
    assert!(boundary.iter().all(|b| b.as_str() == "periodic"));
    // the box edges as a time-dependent element, one row per frame (fixed box)
    let edges_value = bx.dataset("edges/value").unwrap();
    assert_eq!(edges_value.shape(), vec![5, 2]);
    let rows: Vec<f64> = edges_value.read_raw().unwrap();
    let edges = rows[..2].to_vec();
    assert!(rows.chunks(2).all(|r| r == edges));
    // trap: N = 64, phi = 0.1, R = 1: L = sqrt(64 pi / 0.1)
    assert!((edges[0] - (64.0 * std::f64::consts::PI / 0.1).sqrt()).abs() < 1e-9);
    assert_eq!(edges[0], edges[1]);
    for el in ["position", "image", "self_propulsion"] {
        let v = all.dataset(&format!("{el}/value")).unwrap();
        assert_eq!(v.shape(), vec![5, 64, 2], "{el}");
    }
    // step and time of image, self_propulsion and box/edges are those of position (hard links,
    // H5MD 1.1): one object, four names
    for el in ["position", "image", "self_propulsion", "box/edges"] {
        for d in ["step", "time"] {
            let info = all
                .dataset(&format!("{el}/{d}"))
                .unwrap()
                .loc_info()
                .unwrap();
            let of_position = all.dataset(&format!("position/{d}")).unwrap();
            assert_eq!(
                info.token,
                of_position.loc_info().unwrap().token,
                "{el}/{d}"
            );
            assert_eq!(info.num_links, 4, "{el}/{d}");
        }
        let steps: Vec<i64> = all
            .dataset(&format!("{el}/step"))
            .unwrap()
            .read_raw()
            .unwrap();
        assert_eq!(steps, vec![0, 50, 100, 150, 200]);
        let time: Vec<f64> = all
            .dataset(&format!("{el}/time"))
            .unwrap()
            .read_raw()
            .unwrap();
        assert!((time[4] - 0.2).abs() < 1e-12);
    }
    let msd = f.dataset("observables/msd/value").unwrap();
    assert_eq!(msd.shape(), vec![5, 1]);
    assert!(f
        .dataset("observables/largest_cluster_fraction/value")
        .is_ok());
    // units (H5MD units module): reduced, named where MDAnalysis does not translate them
    let unit = |ds: &str| -> Option<String> {
        let a = f.dataset(ds).unwrap().attr("unit").ok()?;
        Some(
            a.read_scalar::<hdf5::types::VarLenAscii>()
                .unwrap()
                .to_string(),
        )
    };
    let units = h5md.group("modules/units").unwrap();
    let system: hdf5::types::VarLenUnicode = units.attr("system").unwrap().read_scalar().unwrap();
    assert_eq!(system.as_str(), "reduced");
    assert_eq!(
        unit("particles/all/box/edges/value").as_deref(),
        Some("sigma")
    );
    assert_eq!(unit("observables/msd/value").as_deref(), Some("sigma+2"));
    assert_eq!(unit("observables/msd/time").as_deref(), Some("tau"));
    assert_eq!(
        unit("analysis/radial_distribution/r").as_deref(),
        Some("sigma")
    );
    assert_eq!(unit("particles/all/position/value"), None);
    assert_eq!(unit("particles/all/position/time"), None);
    // the averages over frames are results without a time axis: /analysis, not /observables
    assert!(f.dataset("analysis/radial_distribution/value").is_ok());
    assert!(f.dataset("analysis/local_packing_fraction/density").is_ok());
    for name in f.group("observables").unwrap().member_names().unwrap() {
        for d in ["step", "time", "value"] {
            assert!(
                f.dataset(&format!("observables/{name}/{d}")).is_ok(),
                "observables/{name} is not a time-dependent H5MD element"
            );
        }
    }
    let p = f.group("parameters").unwrap();
    assert_eq!(p.attr("seed").unwrap().read_scalar::<u64>().unwrap(), 4);
    assert_eq!(p.attr("v0").unwrap().read_scalar::<f64>().unwrap(), 0.5);
    assert!(
        f.group("checkpoint").is_err(),
        "a finished file has no checkpoint"
    );
    // positions are wrapped into the box, unwrapped = position + image * L
    let x: Vec<f64> = all.dataset("position/value").unwrap().read_raw().unwrap();
    assert!(x.iter().all(|v| v.abs() <= 0.5 * edges[0]));
    // replicas: one group each
    let out2 = dir.path().join("rep.h5");
    let o = simulate(
        &["trap", "--steps", "20", "--every", "10", "--replicas", "3"],
        &out2,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f = hdf5::File::open(&out2).unwrap();
    for r in 0..3 {
        assert!(f.group(&format!("particles/replica_{r}")).is_ok());
    }
    let a: Vec<f64> = f
        .dataset("particles/replica_0/position/value")
        .unwrap()
        .read_raw()
        .unwrap();
    let b: Vec<f64> = f
        .dataset("particles/replica_1/position/value")
        .unwrap()
        .read_raw()
        .unwrap();
    assert_ne!(a, b, "replicas are independent");
}

#[test]
fn same_seed_gives_identical_output_for_one_and_two_threads() {
    let dir = tmp();
    for (sys, steps) in [("mips", "30"), ("abp-mips", "30")] {
        let a = dir.path().join(format!("{sys}1.h5"));
        let b = dir.path().join(format!("{sys}2.h5"));
        let common = [
            sys, "--steps", steps, "--every", "10", "--seed", "9", "--set", "N=3000",
        ];
        let o = simulate(&[&common[..], &["--threads", "1"]].concat(), &a);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = simulate(&[&common[..], &["--threads", "2"]].concat(), &b);
        assert!(o.status.success(), "{}", stderr(&o));
        let (da, db) = (datasets(&a), datasets(&b));
        assert!(da.len() >= 10);
        assert_eq!(da, db, "{sys}: output differs between 1 and 2 threads");
        // a different seed differs
        let c = dir.path().join(format!("{sys}3.h5"));
        let mut other = common.to_vec();
        other[6] = "10";
        let o = simulate(&other, &c);
        assert!(o.status.success());
        assert_ne!(datasets(&c), da);
    }
}

#[test]
fn interrupted_run_resumes_to_the_same_file() {
    let dir = tmp();
    let full = dir.path().join("full.h5");
    // many particles, so the neighbour lists of the two runs are rebuilt at different steps and
    // in different storage orders
    let args = [
        "abp-mips",
        "--steps",
        "600",
        "--every",
        "60",
        "--seed",
        "2",
        "--replicas",
        "2",
        "--set",
        "N=1500",
    ];
    let o = simulate(&args, &full);
    assert!(o.status.success(), "{}", stderr(&o));
    let cut = dir.path().join("cut.h5");
    let o = simulate(&[&args[..], &["--abort-after-frames", "4"]].concat(), &cut);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    assert!(!cut.exists(), "no output before the run completes");
    let partial: PathBuf = dir.path().join(".cut.h5.partial");
    assert!(partial.exists());
    let o = simulate(&[&args[..], &["--resume"]].concat(), &cut);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(cut.exists() && !partial.exists());
    // time series, particle data and the frame-averaged g(r) and density histogram (their
    // running sums are in the checkpoint) are identical
    assert_eq!(datasets(&full), datasets(&cut));
    // nothing to resume any more
    let o = simulate(&[&args[..], &["--resume"]].concat(), &cut);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nothing to resume"), "{}", stderr(&o));
}

#[test]
fn paper_systems_load_and_bad_input_is_named() {
    let dir = tmp();
    for sys in ["ring", "trap", "mips", "abp-mips"] {
        let out = dir.path().join(format!("{sys}.h5"));
        let o = simulate(
            &[sys, "--steps", "2", "--every", "1", "--set", "N=64"],
            &out,
        );
        // ring has N = 2 with a fixed particle; N = 64 works for all
        assert!(o.status.success(), "{sys}: {}", stderr(&o));
    }
    let out = dir.path().join("x.h5");
    let o = simulate(&["trap", "--steps", "2", "--set", "vv=1"], &out);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown parameter 'vv'"),
        "{}",
        stderr(&o)
    );
    let o = simulate(&["trap", "--steps", "2", "--set", "phi=1.5"], &out);
    assert!(
        stderr(&o).contains("phi must be in (0, 1)"),
        "{}",
        stderr(&o)
    );
    let o = simulate(&["trap", "--dt-out", "1", "--t-end", "1"], &out);
    assert!(stderr(&o).contains("--dt-out"), "{}", stderr(&o));
    let o = simulate(&["lorenz", "--steps", "2"], &out);
    assert!(stderr(&o).contains("particle models"), "{}", stderr(&o));
    // a snapshot plot of the last frame
    let h5 = dir.path().join("trap.h5");
    let png = dir.path().join("snap.png");
    let o = run(&[
        "plot",
        h5.to_str().unwrap(),
        "--frame",
        "-1",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}

/// Active Brownian disks at φ = 0.6 separate into a dense cluster and a gas at Pe = 150, and stay
/// homogeneous at Pe = 10 (order parameter: fraction of particles in the largest cluster of
/// particles whose local packing fraction exceeds 0.65).
#[test]
fn abp_mips_phase_separates_at_high_peclet_only() {
    let dir = tmp();
    let mut fractions = Vec::new();
    for pe in ["150", "10"] {
        let out = dir.path().join(format!("pe{pe}.h5"));
        let o = run(&[
            "simulate",
            "abp-mips",
            "--set",
            "N=1000",
            "--set",
            &format!("Pe={pe}"),
            "--t-end",
            "4.5",
            "--every",
            "9000",
            "--seed",
            "1",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        fractions.push(v["largest_cluster_fraction"].as_f64().unwrap());
    }
    assert!(
        fractions[0] > 0.5,
        "Pe = 150: largest cluster fraction {}",
        fractions[0]
    );
    assert!(
        fractions[1] < 0.2,
        "Pe = 10: largest cluster fraction {}",
        fractions[1]
    );
}
