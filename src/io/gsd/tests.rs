//! Tests of the GSD file layer: the bytes of a hand-checked file, round trips, corrupt and
//! truncated files, the quaternion convention.

use super::*;

/// The tiny file of [`tiny_file_bytes`]: frame 0 holds `a` (u8 [7]) and `b` (f32 [1.5, −2]),
/// frame 1 only `b` (f32 [0.25, 8]).
fn write_tiny(path: &Path) {
    let mut w = GsdWriter::create(path, "test app", "hoomd", (1, 4)).unwrap();
    w.write("a", 1, 1, &[7u8]).unwrap();
    w.write("b", 2, 1, &[1.5f32, -2.0]).unwrap();
    w.end_frame().unwrap();
    w.write("b", 2, 1, &[0.25f32, 8.0]).unwrap();
    w.end_frame().unwrap();
    assert_eq!(w.finish().unwrap(), 2);
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

#[test]
fn tiny_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gsd");
    write_tiny(&p);
    let b = std::fs::read(&p).unwrap();
    // header 256 | a: 1 byte at 256 | b: 8 bytes at 257 | b: 8 bytes at 265 | names at 273
    // ("a\0b\0" + zeros to 64 bytes) | index at 337: 128 entries × 32 bytes → 4433 bytes
    assert_eq!(b.len(), 256 + 1 + 8 + 8 + 64 + 128 * 32);
    assert_eq!(u64_at(&b, 0), 0x65DF65DF65DF65DF);
    assert_eq!(u64_at(&b, 8), 337, "index location");
    assert_eq!(u64_at(&b, 16), 128, "index entries allocated");
    assert_eq!(u64_at(&b, 24), 273, "name list location");
    assert_eq!(u64_at(&b, 32), 1, "name list blocks of 64 bytes");
    assert_eq!(&b[40..44], &[4, 0, 1, 0], "schema version 1.4");
    assert_eq!(&b[44..48], &[0, 0, 2, 0], "file version 2.0");
    assert_eq!(&b[48..57], b"test app\0");
    assert_eq!(&b[112..118], b"hoomd\0");
    assert!(b[118..256].iter().all(|&c| c == 0));
    assert_eq!(b[256], 7);
    assert_eq!(&b[257..261], &1.5f32.to_le_bytes());
    assert_eq!(&b[261..265], &(-2.0f32).to_le_bytes());
    assert_eq!(&b[265..269], &0.25f32.to_le_bytes());
    assert_eq!(&b[273..278], b"a\0b\0\0");
    assert!(b[278..337].iter().all(|&c| c == 0));
    // entries: frame, N, location, M, id, type, flags
    let entry = |k: usize| {
        let e = &b[337 + 32 * k..337 + 32 * (k + 1)];
        (
            u64_at(e, 0),
            u64_at(e, 8),
            u64_at(e, 16),
            u32::from_le_bytes(e[24..28].try_into().unwrap()),
            u16::from_le_bytes(e[28..30].try_into().unwrap()),
            e[30],
            e[31],
        )
    };
    assert_eq!(entry(0), (0, 1, 256, 1, 0, 1, 0));
    assert_eq!(entry(1), (0, 2, 257, 1, 1, 9, 0));
    assert_eq!(entry(2), (1, 2, 265, 1, 1, 9, 0));
    assert!(
        b[337 + 96..].iter().all(|&c| c == 0),
        "unused entries are zero"
    );
}

#[test]
fn round_trip_and_frame_zero_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gsd");
    write_tiny(&p);
    assert!(is_gsd(&p));
    let mut f = GsdFile::open(&p).unwrap();
    assert_eq!(f.frames(), 2);
    assert_eq!(f.header.version, (2, 0));
    assert_eq!(f.header.schema, "hoomd");
    assert_eq!(f.header.schema_version, (1, 4));
    assert_eq!(f.header.application, "test app");
    assert_eq!(f.names(), &["a".to_string(), "b".to_string()]);
    assert!(f.find(1, "a").is_none());
    let a = *f.find_or_first(1, "a").unwrap();
    assert_eq!(a.frame, 0);
    assert_eq!(f.read::<u8>(&a).unwrap(), vec![7]);
    let b1 = *f.find(1, "b").unwrap();
    assert_eq!(f.read::<f32>(&b1).unwrap(), vec![0.25, 8.0]);
    assert_eq!(f.read_f64(&b1).unwrap(), vec![0.25, 8.0]);
    // a wrong type is named
    let e = f.read::<f64>(&b1).unwrap_err().to_string();
    assert!(
        e.contains("chunk b of frame 1: float32 where float64"),
        "{e}"
    );
    // a wrong shape is named
    let e = f.read_shaped(1, "b", 3, 1).unwrap_err().to_string();
    assert!(e.contains("2 × 1 where 3 × 1"), "{e}");
}

#[test]
fn every_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("types.gsd");
    let mut w = GsdWriter::create(&p, "t", "s", (1, 0)).unwrap();
    w.write("u8", 1, 2, &[1u8, 255]).unwrap();
    w.write("u16", 1, 1, &[65535u16]).unwrap();
    w.write("u32", 1, 1, &[u32::MAX]).unwrap();
    w.write("u64", 1, 1, &[u64::MAX]).unwrap();
    w.write("i8", 1, 1, &[-128i8]).unwrap();
    w.write("i16", 1, 1, &[-32768i16]).unwrap();
    w.write("i32", 3, 1, &[i32::MIN, 0, i32::MAX]).unwrap();
    w.write("i64", 1, 1, &[i64::MIN]).unwrap();
    w.write("f32", 1, 1, &[f32::MIN_POSITIVE]).unwrap();
    w.write("f64", 1, 3, &[f64::MAX, -0.0, 1e-310]).unwrap();
    w.end_frame().unwrap();
    w.finish().unwrap();
    let mut f = GsdFile::open(&p).unwrap();
    macro_rules! check {
        ($name:expr, $t:ty, $v:expr) => {
            let e = *f.find(0, $name).unwrap();
            assert_eq!(f.read::<$t>(&e).unwrap(), $v);
        };
    }
    check!("u8", u8, vec![1, 255]);
    check!("u16", u16, vec![65535]);
    check!("u32", u32, vec![u32::MAX]);
    check!("u64", u64, vec![u64::MAX]);
    check!("i8", i8, vec![-128]);
    check!("i16", i16, vec![-32768]);
    check!("i32", i32, vec![i32::MIN, 0, i32::MAX]);
    check!("i64", i64, vec![i64::MIN]);
    check!("f32", f32, vec![f32::MIN_POSITIVE]);
    let e = *f.find(0, "f64").unwrap();
    let v = f.read::<f64>(&e).unwrap();
    assert_eq!(
        v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        [f64::MAX, -0.0, 1e-310].map(f64::to_bits)
    );
}

#[test]
fn writer_refuses_bad_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.gsd");
    let mut w = GsdWriter::create(&p, "t", "s", (1, 0)).unwrap();
    assert!(w.write("x", 2, 1, &[1.0f32]).is_err(), "N·M ≠ data length");
    assert!(w.write("x", 0, 0, &[0u8; 0]).is_err(), "M = 0");
    assert!(w.write("", 1, 1, &[1u8]).is_err(), "empty name");
    assert!(w.write("a\0b", 1, 1, &[1u8]).is_err(), "NUL in a name");
    assert!(w.end_frame().is_err(), "an empty frame");
    w.write("x", 1, 1, &[1u8]).unwrap();
    assert!(
        w.write("x", 1, 1, &[2u8]).is_err(),
        "a name twice in a frame"
    );
    // a frame begun and not ended
    assert!(w.finish().is_err());
}

/// Opening `bytes` (written to a file) fails with a message holding `what`; reading every
/// chunk of a file that opens never panics.
fn open_bytes(dir: &Path, bytes: &[u8]) -> Result<GsdFile> {
    let p = dir.join("x.gsd");
    std::fs::write(&p, bytes).unwrap();
    let mut f = GsdFile::open(&p)?;
    for e in f.index.clone() {
        f.read_bytes(&e)?;
    }
    Ok(f)
}

fn fails_with(dir: &Path, bytes: &[u8], what: &str) {
    let e = open_bytes(dir, bytes).unwrap_err().to_string();
    assert!(
        e.contains("x.gsd") && e.contains(what),
        "expected '{what}' in: {e}"
    );
}

#[test]
fn corrupt_and_truncated_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gsd");
    write_tiny(&p);
    let good = std::fs::read(&p).unwrap();
    let d = dir.path();
    fails_with(d, b"", "no GSD magic number");
    fails_with(d, b"\x89HDF\r\n\x1a\n and more", "no GSD magic number");
    fails_with(
        d,
        &good[..100],
        "shorter than the 256-byte header (truncated)",
    );
    // cut inside the index, the name list, the data
    for cut in [good.len() - 1, 400, 300, 270, 256] {
        fails_with(d, &good[..cut], "lies outside the file");
    }
    let with = |o: usize, v: &[u8]| {
        let mut b = good.clone();
        b[o..o + v.len()].copy_from_slice(v);
        b
    };
    // file version 3.0
    fails_with(
        d,
        &with(44, &[0, 0, 3, 0]),
        "file-layer version 3.0 is not supported",
    );
    // an index or name list beyond the end, sizes that overflow
    fails_with(d, &with(8, &u64::MAX.to_le_bytes()), "index");
    fails_with(
        d,
        &with(16, &(u64::MAX / 2).to_le_bytes()),
        "lies outside the file",
    );
    fails_with(d, &with(32, &(1u64 << 40).to_le_bytes()), "name list");
    fails_with(d, &with(16, &0u64.to_le_bytes()), "allocates no index");
    // entry 1 (at 337 + 32): N huge (no allocation: the size is checked against the file)
    fails_with(
        d,
        &with(337 + 32 + 8, &(1u64 << 60).to_le_bytes()),
        "index entry 1: chunk b of frame 0",
    );
    fails_with(
        d,
        &with(337 + 32 + 8, &u64::MAX.to_le_bytes()),
        "lies outside the file",
    );
    fails_with(d, &with(337 + 32 + 30, &[12]), "unknown type code 12");
    fails_with(d, &with(337 + 32 + 31, &[1]), "flags 1");
    fails_with(
        d,
        &with(337 + 32 + 28, &[9, 0]),
        "name id 9 but the name list holds 2 names",
    );
    // frames out of order; a chunk twice in a frame
    fails_with(
        d,
        &with(337 + 64, &0u64.to_le_bytes()),
        "appears twice in frame 0",
    );
    fails_with(
        d,
        &with(337 + 32, &5u64.to_le_bytes()),
        "frame 1 after frame 5",
    );
    fails_with(
        d,
        &with(337 + 64, &500u64.to_le_bytes()),
        "beyond the 128 index entries",
    );
    // a name list without its final NUL
    let mut b = good.clone();
    let last = 273 + 63;
    b[last] = b'x';
    fails_with(d, &b, "does not end in a NUL byte");
    // a directory is not a file
    let e = GsdFile::open(d).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn random_damage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gsd");
    write_tiny(&p);
    let good = std::fs::read(&p).unwrap();
    let mut s = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..2000 {
        let mut b = good.clone();
        // damage the header, the name list or the index (the data bytes are free-form)
        for _ in 0..1 + next() % 3 {
            let region = match next() % 3 {
                0 => 0..256,
                1 => 273..337,
                _ => 337..337 + 96,
            };
            let k = region.start + (next() as usize) % region.len();
            b[k] = next() as u8;
        }
        if (next() % 4) == 0 {
            b.truncate((next() as usize) % b.len());
        }
        match open_bytes(dir.path(), &b) {
            Ok(_) => opened += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        refused > 500 && opened > 100,
        "{opened} opened, {refused} refused"
    );
}

#[test]
fn version_1_name_slots_are_read() {
    // GSD 1.x stores each name in a 64-byte slot: rewrite the tiny file's name list that way
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gsd");
    write_tiny(&p);
    let mut b = std::fs::read(&p).unwrap();
    b[44..48].copy_from_slice(&[0, 0, 1, 0]);
    let at = b.len() as u64;
    let mut names = vec![0u8; 3 * 64];
    names[0] = b'a';
    names[64] = b'b';
    b.extend_from_slice(&names);
    b[24..32].copy_from_slice(&at.to_le_bytes());
    b[32..40].copy_from_slice(&3u64.to_le_bytes());
    let mut f = open_bytes(dir.path(), &b).unwrap();
    assert_eq!(f.header.version, (1, 0));
    assert_eq!(f.names(), &["a".to_string(), "b".to_string()]);
    let e = *f.find(1, "b").unwrap();
    assert_eq!(f.read::<f32>(&e).unwrap(), vec![0.25, 8.0]);
}

#[test]
fn quaternions_rotate_x_onto_the_orientation() {
    // 2-D: q = (cos θ/2, 0, 0, sin θ/2) for θ in (−π, π], and back to (cos θ, sin θ)
    for k in 0..63 {
        let th = -3.1 + 0.1 * k as f64;
        let q = quaternion_from_unit([th.cos(), th.sin(), 0.0]);
        let want = [(th / 2.0).cos(), 0.0, 0.0, (th / 2.0).sin()];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "θ = {th}: {q:?} vs {want:?}");
        }
        let u = unit_from_quaternion(q);
        assert!((u[0] - th.cos()).abs() < 1e-15 && (u[1] - th.sin()).abs() < 1e-15 && u[2] == 0.0);
    }
    // 3-D: random unit vectors come back (to rounding), and q is a unit quaternion
    let mut s = 12345u64;
    let mut uni = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    for _ in 0..10_000 {
        let v = [uni(), uni(), uni()];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        let u = v.map(|c| c / n);
        let q = quaternion_from_unit(u);
        let qn: f64 = q.iter().map(|c| c * c).sum();
        assert!((qn - 1.0).abs() < 1e-14);
        let back = unit_from_quaternion(q);
        for (a, b) in back.iter().zip(u) {
            assert!((a - b).abs() < 1e-13, "{u:?} → {back:?}");
        }
    }
    // antiparallel to x: the rotation by π about z
    assert_eq!(quaternion_from_unit([-1.0, 0.0, 0.0]), [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(unit_from_quaternion([0.0, 0.0, 0.0, 1.0]), [-1.0, 0.0, 0.0]);
    // nearly antiparallel still comes back
    let u = [-1.0 + 1e-12, (2e-12f64).sqrt(), 0.0];
    let back = unit_from_quaternion(quaternion_from_unit(u));
    assert!(
        (back[0] - u[0]).abs() < 1e-12 && (back[1] - u[1]).abs() < 1e-9,
        "{back:?}"
    );
    // the identity gives (1, 0, 0); f32 rounding of q still gives a unit vector to 1e-7
    assert_eq!(unit_from_quaternion([1.0, 0.0, 0.0, 0.0]), [1.0, 0.0, 0.0]);
    let q32 = quaternion_from_unit([0.6, 0.0, 0.8]).map(|c| c as f32 as f64);
    let u = unit_from_quaternion(q32);
    assert!(
        (u[0] - 0.6).abs() < 3e-7 && (u[2] - 0.8).abs() < 3e-7 && u[1].abs() < 1e-7,
        "{u:?}"
    );
}
