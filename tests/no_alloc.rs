//! Steady-state stepping of the DDE solver does not allocate: the allocation count of a run is
//! independent of its length once the history buffer has reached its working size.

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

#[test]
fn steady_state_does_not_allocate() {
    let t_out: Vec<f64> = (0..=40_000).map(|i| f64::from(i) * 0.5).collect();
    for m in [Method::Dopri5, Method::Dop853] {
        let short = allocs(m, 2_000.0, &t_out);
        let long = allocs(m, 20_000.0, &t_out);
        println!("{m}: allocations to t = 2000: {short}, to t = 20000: {long}");
        assert!(long <= short + 2, "{m}: {short} -> {long}");
    }
}
