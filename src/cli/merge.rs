//! `phaseflow merge`: shard files back into one output.

use super::*;

/// Options of `phaseflow merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The merged output (written atomically): the file the unsharded run writes
    pub output: PathBuf,
    /// The shard files, one per shard, in any order (e.g. out.shard-*)
    #[arg(required = true, num_args = 1..)]
    pub shards: Vec<PathBuf>,
    /// Machine-readable summary on stdout
    #[arg(long)]
    pub json: bool,
}

/// `phaseflow merge OUTPUT SHARD...`.
pub(super) fn merge(args: &MergeArgs) -> Result<()> {
    let m = crate::shard::merge(&args.output, &args.shards)?;
    if args.json {
        let mut v = serde_json::to_value(&m)?;
        v["output"] = json!(args.output.display().to_string());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        eprintln!(
            "wrote {} (`{}`: {} items from {} shards)",
            args.output.display(),
            m.command,
            m.items,
            m.shards
        );
    }
    Ok(())
}
