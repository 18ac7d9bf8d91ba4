//! A global allocator that keeps freed large blocks for reuse: [`BlockCache`].
//!
//! Why: glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh
//! `mmap` and returns it with `munmap` on free, so the kernel faults in and zeroes every page of
//! it again on the next use. A training step of the paper-size local transformer builds an
//! autodiff graph of ~8.6 GB in buffers of 68 MB ([1024, 65, 256] f32 activations, [1024, 4, 65,
//! 65] attention weights) and frees it at the end of the step; the next step allocates the same
//! sizes again. Measured with `perf record` on `phaseflow train benches/configs/mips_paper.toml`
//! (2 cores): 41 % of the samples were in the kernel (page faults: `clear_page_erms`,
//! `exc_page_fault`, memcg charging), against 35 % in the matrix products.
//!
//! The cache is off until [`enable`] is called (`phaseflow train`, `score` and `epr --model` do),
//! so the other commands allocate exactly as before. When on, a freed block of at least
//! [`MIN_BLOCK`] bytes is kept (up to [`SLOTS`] blocks and the byte budget given to [`enable`],
//! oldest evicted first) and handed out again to an allocation of exactly the same size and
//! alignment. Smaller blocks, and everything while the cache is off, go straight to the system
//! allocator. Memory held: at most the budget beyond what the program itself holds at its peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Blocks below this size are not cached (glibc's heap already reuses those: its dynamic mmap
/// threshold grows to 32 MiB after the first free of an mmapped block).
pub const MIN_BLOCK: usize = 4 << 20;
/// Blocks kept at most (a training step of the paper-size network frees ~400 large blocks).
pub const SLOTS: usize = 1024;

static ENABLED: AtomicBool = AtomicBool::new(false);
static BUDGET: AtomicUsize = AtomicUsize::new(0);

/// The kept blocks: a ring of `(size, align, address)` in order of release.
struct Cache {
    slots: [(usize, usize, usize); SLOTS],
    len: usize,
    bytes: usize,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    slots: [(0, 0, 0); SLOTS],
    len: 0,
    bytes: 0,
});

/// Turns the cache on, keeping at most `budget` bytes of freed blocks.
pub fn enable(budget: usize) {
    BUDGET.store(budget, Ordering::Relaxed);
    ENABLED.store(true, Ordering::Release);
}

/// Half the physical memory (the default budget of the commands that train or evaluate networks).
pub fn default_budget() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && size > 0 {
            return (pages as usize).saturating_mul(size as usize) / 2;
        }
    }
    4 << 30
}

/// Bytes currently kept for reuse.
pub fn cached_bytes() -> usize {
    CACHE.lock().map(|c| c.bytes).unwrap_or(0)
}

/// The system allocator with a cache of freed large blocks (see the module docs).
pub struct BlockCache;

impl BlockCache {
    fn take(layout: Layout) -> Option<*mut u8> {
        if layout.size() < MIN_BLOCK || !ENABLED.load(Ordering::Acquire) {
            return None;
        }
        let mut c = CACHE.lock().ok()?;
        let len = c.len;
        // newest first: the block freed last is the likeliest to be warm in cache
        let k = (0..len)
            .rev()
            .find(|&k| c.slots[k].0 == layout.size() && c.slots[k].1 == layout.align())?;
        let (size, _, addr) = c.slots[k];
        c.slots.copy_within(k + 1..len, k);
        c.len -= 1;
        c.bytes -= size;
        Some(addr as *mut u8)
    }

    /// Keeps the block; returns false when it must be freed (small, cache off or over budget).
    /// Evicted older blocks are freed here.
    fn keep(ptr: *mut u8, layout: Layout) -> bool {
        if layout.size() < MIN_BLOCK || !ENABLED.load(Ordering::Acquire) {
            return false;
        }
        let budget = BUDGET.load(Ordering::Relaxed);
        if layout.size() > budget {
            return false;
        }
        let Ok(mut c) = CACHE.lock() else {
            return false;
        };
        while c.len == SLOTS || c.bytes + layout.size() > budget {
            let (size, align, addr) = c.slots[0];
            let len = c.len;
            c.slots.copy_within(1..len, 0);
            c.len -= 1;
            c.bytes -= size;
            // SAFETY: the block was allocated by System with this size and alignment and is
            // owned by the cache (nobody else holds it).
            unsafe {
                System.dealloc(
                    addr as *mut u8,
                    Layout::from_size_align_unchecked(size, align),
                )
            };
        }
        let len = c.len;
        c.slots[len] = (layout.size(), layout.align(), ptr as usize);
        c.len += 1;
        c.bytes += layout.size();
        true
    }
}

// SAFETY: every block handed out was allocated by `System` with the same size and alignment as
// the request (exact match), is owned by exactly one party (the cache or the caller), and is
// returned to `System` with its original layout.
unsafe impl GlobalAlloc for BlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Self::take(layout) {
            Some(p) => p,
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match Self::take(layout) {
            Some(p) => {
                // SAFETY: p points to layout.size() writable bytes owned by the caller.
                unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
                p
            }
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !Self::keep(ptr, layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < MIN_BLOCK && new_size < MIN_BLOCK {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees a valid layout for new_size (GlobalAlloc::realloc).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks come back only at the same size and alignment, within the slot and byte limits,
    /// and the contents of a zeroed allocation are zero even when the block is reused. Runs on
    /// an allocator value of its own (the test binary keeps the system allocator), so the
    /// global switch is exercised without affecting other tests' allocations.
    #[test]
    fn reuses_exact_sizes_and_respects_the_budget() {
        let a = BlockCache;
        enable(4 * MIN_BLOCK);
        let l1 = Layout::from_size_align(MIN_BLOCK, 64).unwrap();
        let l2 = Layout::from_size_align(MIN_BLOCK + 4096, 64).unwrap();
        unsafe {
            let p = a.alloc(l1);
            p.write_bytes(7, l1.size());
            a.dealloc(p, l1);
            assert_eq!(cached_bytes(), MIN_BLOCK);
            // another size: not that block
            let q = a.alloc(l2);
            assert_ne!(q, p);
            // the same size: that block, zeroed on request
            let r = a.alloc_zeroed(l1);
            assert_eq!(r, p);
            assert!(std::slice::from_raw_parts(r, l1.size())
                .iter()
                .all(|&b| b == 0));
            assert_eq!(cached_bytes(), 0);
            a.dealloc(r, l1);
            a.dealloc(q, l2);
            assert_eq!(cached_bytes(), 2 * MIN_BLOCK + 4096);
            // over budget: the oldest (r) is evicted
            let s = a.alloc(Layout::from_size_align(2 * MIN_BLOCK, 64).unwrap());
            a.dealloc(s, Layout::from_size_align(2 * MIN_BLOCK, 64).unwrap());
            assert_eq!(cached_bytes(), 3 * MIN_BLOCK + 4096);
            // small blocks are never kept
            let t = a.alloc(Layout::from_size_align(1024, 8).unwrap());
            a.dealloc(t, Layout::from_size_align(1024, 8).unwrap());
            assert_eq!(cached_bytes(), 3 * MIN_BLOCK + 4096);
            // drain
            let u = a.alloc(l2);
            let v = a.alloc(Layout::from_size_align(2 * MIN_BLOCK, 64).unwrap());
            assert_eq!(cached_bytes(), 0);
            ENABLED.store(false, Ordering::Release);
            a.dealloc(u, l2);
            a.dealloc(v, Layout::from_size_align(2 * MIN_BLOCK, 64).unwrap());
            assert_eq!(cached_bytes(), 0);
        }
    }
}
