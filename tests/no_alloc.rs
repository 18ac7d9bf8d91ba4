//! The allocation contract of [`phaseflow::dynamics::System`]: `rhs` (and the Jacobian, batch
//! and delayed forms) of every implementation does not allocate once warmed up — compiled
//! flows, maps and delay equations, the reference interpreter, particle drifts (AOUP with pair
//! forces, ABP) — and steady-state stepping of the DDE solver and of the variational
//! (Lyapunov) system does not allocate: the allocation count of a run is independent of its
//! length once the buffers have their working size.
//!
//! One allocator counts for the whole test binary, so there is one test, which runs the checks
//! one after another: with several, the harness allocates while starting the next test thread
//! during a measurement.

use phaseflow::integrate::dde::{integrate_dde, DelaySystem, History};
use phaseflow::integrate::Method;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f`.
fn count(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    ALLOCS.load(Ordering::Relaxed) - before
}

/// `rhs` of `sys` at `x`, once to warm up and then 5 windows of 50 calls: the fewest
/// allocations in a window (0 when `rhs` does not allocate; the minimum discounts what the test
/// harness's other threads allocate meanwhile, e.g. while starting the other tests).
fn rhs_allocs<S: phaseflow::dynamics::System + ?Sized>(sys: &S, x: &[f64]) -> usize {
    let mut out = vec![0.0; sys.dim()];
    sys.rhs(0.0, x, &mut out);
    (0..5)
        .map(|_| {
            count(|| {
                for k in 0..50 {
                    sys.rhs(0.01 * k as f64, x, &mut out);
                }
            })
        })
        .min()
        .unwrap()
}

fn load(name: &str) -> phaseflow::systems::CompiledSystem {
    phaseflow::systems::CompiledSystem::load(name, &phaseflow::systems::Overrides::default())
        .unwrap()
}

fn every_system_rhs_is_allocation_free() {
    use phaseflow::dynamics::{BatchSystem, Jacobian};
    // compiled flow: rhs, Jacobian, both together, batch
    let lorenz = load("lorenz");
    let x = [1.0, 2.0, 3.0];
    assert_eq!(rhs_allocs(&lorenz, &x), 0, "lorenz rhs");
    let (mut f, mut j) = (vec![0.0; 3], vec![0.0; 9]);
    lorenz.rhs_jacobian(0.0, &x, &mut f, &mut j);
    assert_eq!(
        count(|| {
            for _ in 0..50 {
                lorenz.jacobian(0.0, &x, &mut j);
                lorenz.rhs_jacobian(0.0, &x, &mut f, &mut j);
            }
        }),
        0,
        "lorenz jacobian"
    );
    let xb = vec![0.5; 3 * 8];
    let mut ob = vec![0.0; 3 * 8];
    lorenz.rhs_batch(0.0, &xb, 8, 8, &mut ob);
    assert_eq!(
        count(|| lorenz.rhs_batch(0.0, &xb, 8, 8, &mut ob)),
        0,
        "lorenz batch"
    );
    // an indexed family with reductions, a map, a delay equation
    let l96 = phaseflow::systems::CompiledSystem::load(
        "lorenz96",
        &phaseflow::systems::Overrides::parse(&["dimension=64".to_string()]).unwrap(),
    )
    .unwrap();
    assert_eq!(rhs_allocs(&l96, &vec![0.3; 64]), 0, "lorenz96");
    assert_eq!(rhs_allocs(&load("henon"), &[0.1, 0.2]), 0, "henon map");
    let mg = load("mackey_glass");
    let (mut o, lag) = (vec![0.0; 1], vec![0.9; mg.n_lags()]);
    mg.rhs_lagged(0.0, &[1.0], &lag, &mut o);
    assert_eq!(
        count(|| {
            for _ in 0..50 {
                mg.rhs_lagged(0.0, &[1.0], &lag, &mut o);
            }
        }),
        0,
        "mackey_glass lagged rhs"
    );
    // the reference interpreter
    let interp = phaseflow::systems::Interpreted::new(lorenz.model().clone());
    assert_eq!(rhs_allocs(&interp, &x), 0, "interpreter");
    // particle drifts: AOUP with pair forces (trap), ABP with WCA (2-D)
    for (file, set) in [
        ("systems/active/trap.toml", vec![("N".to_string(), 16.0)]),
        ("systems/active/mips.toml", vec![("N".to_string(), 64.0)]),
        (
            "systems/active/abp_mips.toml",
            vec![("N".to_string(), 64.0)],
        ),
    ] {
        let model =
            phaseflow::particles::ParticleModel::load(std::path::Path::new(file), &set).unwrap();
        let z: Vec<f64> = phaseflow::particles::sim::initial_state(&model, 1, 0)
            .x
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0.3, model.n * model.propulsion_dim()))
            .collect();
        let drift = phaseflow::particles::ParticleDrift::new(model);
        assert_eq!(rhs_allocs(&drift, &z), 0, "{file}");
    }
}

fn lyapunov_stepping_does_not_allocate() {
    use phaseflow::analysis::lyapunov::{spectrum, SpectrumOptions};
    let lorenz = load("lorenz");
    let run = |span: f64| {
        let opts = SpectrumOptions {
            exponents: 3,
            transient: 1.0,
            span,
            qr_interval: 0.1,
            blocks: 4,
            rtol: 1e-8,
            atol: 1e-8,
            cancel: phaseflow::control::Cancel::new(),
        };
        count(|| {
            spectrum(&lorenz, 0.0, &[1.0, 1.0, 1.0], &opts).unwrap();
        })
    };
    let (short, long) = (run(20.0), run(200.0));
    println!("variational system: allocations over span 20: {short}, over 200: {long}");
    assert!(long <= short + 2, "{short} -> {long}");
}

struct Mg;
impl DelaySystem for Mg {
    fn dim(&self) -> usize {
        1
    }
    fn lags(&self) -> Vec<(usize, f64)> {
        vec![(0, 17.0)]
    }
    fn rhs_lagged(&self, _t: f64, x: &[f64], l: &[f64], out: &mut [f64]) {
        out[0] = 0.2 * l[0] / (1.0 + l[0].powf(10.0)) - 0.1 * x[0];
    }
}

fn allocs(method: Method, t_end: f64, t_out: &[f64]) -> usize {
    let hist = History::Constant(vec![1.2]);
    let t_out: Vec<f64> = t_out.iter().copied().filter(|&t| t <= t_end).collect();
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut sum = 0.0;
    integrate_dde(
        &Mg,
        method,
        1e-9,
        1e-9,
        1e12,
        u64::MAX,
        0.0,
        &hist,
        &t_out,
        &mut |_, _, x| {
            sum += x[0];
            true
        },
    )
    .unwrap();
    assert!(sum.is_finite());
    ALLOCS.load(Ordering::Relaxed) - before
}

fn steady_state_does_not_allocate() {
    let t_out: Vec<f64> = (0..=40_000).map(|i| f64::from(i) * 0.5).collect();
    for m in [Method::Dopri5, Method::Dop853] {
        let short = allocs(m, 2_000.0, &t_out);
        let long = allocs(m, 20_000.0, &t_out);
        println!("{m}: allocations to t = 2000: {short}, to t = 20000: {long}");
        assert!(long <= short + 2, "{m}: {short} -> {long}");
    }
}

#[test]
fn allocation_contract() {
    every_system_rhs_is_allocation_free();
    lyapunov_stepping_does_not_allocate();
    steady_state_does_not_allocate();
}
