//! Issue 21 (reliability under bad input and faults), the flow outputs (ODE/SDE/DDE/map
//! trajectories), through the command line: exit code, the message (printed once), and that
//! nothing is destroyed or left behind.

use std::path::Path;
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

/// Succeeds (exit status 0).
fn succeeds(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Fails with exit status 1 and one `error:` line containing every needle once.
fn fails_once(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.matches("error:").count(), 1, "{e}");
    for n in needles {
        assert_eq!(e.matches(n).count(), 1, "'{n}' in: {e}");
    }
}

/// Entries of `dir` whose names start with a dot (phaseflow's temporaries and partial files).
fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// `/state`'s chunk shape.
fn state_chunks(path: &Path) -> Vec<usize> {
    let f = hdf5::File::open(path).unwrap();
    f.dataset("state").unwrap().chunk().unwrap()
}

/// Item 15: `/state` was chunked in (4096, D) blocks whatever the length, so 10 points of a
/// 1000-variable Lorenz-96 made a 33 MB file for 80 KB of data. Chunks now follow the shape
/// (about 1 MiB, never longer than the trajectory); a long narrow trajectory keeps long chunks.
#[test]
fn chunks_follow_the_shape_of_the_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.h5");
    succeeds(&phaseflow(&[
        "simulate",
        "lorenz96",
        "--set",
        "dimension=1000",
        "--points",
        "10",
        "-q",
        "-o",
        wide.to_str().unwrap(),
    ]));
    let data = 10 * 1000 * 8;
    let size = std::fs::metadata(&wide).unwrap().len() as usize;
    // the rest is the attributes (1000 variable names twice, the definition, …)
    assert!(size < 4 * data, "{size} bytes for {data} bytes of data");
    assert_eq!(state_chunks(&wide), [10, 1000]);
    let narrow = dir.path().join("narrow.h5");
    succeeds(&phaseflow(&[
        "simulate",
        "lorenz",
        "--points",
        "10000",
        "-q",
        "-o",
        narrow.to_str().unwrap(),
    ]));
    assert_eq!(state_chunks(&narrow), [4096, 3]);
    let f = hdf5::File::open(&narrow).unwrap();
    assert_eq!(f.dataset("state").unwrap().shape(), [10000, 3]);
    assert!(hidden_entries(dir.path()).is_empty());
}
