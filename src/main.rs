//! The `phaseflow` binary. See `phaseflow --help`.

use clap::Parser;

fn main() {
    let cli = phaseflow::cli::Cli::parse();
    if let Err(e) = phaseflow::cli::run(cli) {
        // one line: the chain of causes joined by ": "
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
