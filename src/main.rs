//! The `phaseflow` binary. See `phaseflow --help`.

/// The system allocator, with freed large blocks kept for reuse once a network command switches
/// the cache on (see `phaseflow::block_cache`).
#[global_allocator]
static ALLOCATOR: phaseflow::block_cache::BlockCache = phaseflow::block_cache::BlockCache;

fn main() {
    // `phaseflow … | head`: end quietly when the reader closes the pipe, as Unix tools do,
    // instead of panicking in println! (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = phaseflow::cli::Cli::parse_args();
    if let Err(e) = phaseflow::cli::run(cli) {
        // one line: the chain of causes joined by ": "
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
