//! `phaseflow merge`: shard files back into one output.

use super::*;

/// Options of `phaseflow merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The merged output (written atomically): the file the unsharded run writes (`forecast
    /// bench`: its output directory)
    pub output: PathBuf,
    /// The shard files, one per shard, in any order (e.g. out.shard-*)
    #[arg(required = true, num_args = 1..)]
    pub shards: Vec<PathBuf>,
    /// Machine-readable summary on stdout
    #[arg(long)]
    pub json: bool,
}

/// `phaseflow merge OUTPUT SHARD...`: the shards are checked by [`crate::shard::gather`], then
/// the output is written by the command's own library code.
pub(super) fn merge(args: &MergeArgs) -> Result<()> {
    let g = crate::shard::gather(&args.shards)?;
    let mut v = json!({
        "command": g.table.command, "shards": g.shards, "items": g.table.items,
        "output": args.output.display().to_string(),
    });
    let mut notes = Vec::new();
    match g.table.command.as_str() {
        crate::forecast::bench::SHARD_COMMAND => {
            let m = crate::forecast::bench::merge_shards(&args.output, &g.table, &g.sources)?;
            for d in &m.datasets_missing {
                notes.push(format!(
                    "note: data set {d} not found: not copied to {}",
                    args.output.join("data").display()
                ));
            }
            v["bench"] = serde_json::to_value(&m)?;
        }
        crate::simulate::ENSEMBLE_SHARD_COMMAND => {
            let w = crate::simulate::merge_ensemble(&args.output, &g.table)?;
            v["frames"] = json!(w.frames);
        }
        _ => {
            crate::shard::publish(&args.output, &g.table, None)?;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for n in &notes {
            eprintln!("{n}");
        }
        eprintln!(
            "wrote {} (`{}`: {} items from {} shards)",
            args.output.display(),
            g.table.command,
            g.table.items,
            g.shards
        );
    }
    Ok(())
}
