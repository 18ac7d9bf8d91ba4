use phaseflow::particles::rng::CounterRng;
fn main() {
    let rng = CounterRng::new(5, 1);
    let t = std::time::Instant::now();
    let mut s = 0.0;
    let n = 20_000_000u32;
    for i in 0..n {
        let z = rng.normals(7, i, 0);
        s += z[0] + z[1] + z[2];
    }
    println!(
        "normals: {:.2} ns/call ({s})",
        t.elapsed().as_secs_f64() / n as f64 * 1e9
    );
    let t = std::time::Instant::now();
    let mut s2 = 0u32;
    for i in 0..n {
        let b = rng.bits(7, i, 0);
        s2 ^= b[0] ^ b[1] ^ b[2];
    }
    println!(
        "bits: {:.2} ns/call ({s2})",
        t.elapsed().as_secs_f64() / n as f64 * 1e9
    );
}
