//! `phaseflow list` and `phaseflow info`.

use super::*;

pub(super) fn list(json_out: bool) -> Result<()> {
    let mut rows = Vec::new();
    for f in systems::catalogue_files() {
        match SystemSpec::load(&f) {
            Ok(s) => {
                let d = match s.dimension {
                    Some(n) => n * s.variables.len(),
                    None => s.variables.len(),
                };
                rows.push(json!({
                    "name": s.name, "kind": s.kind.as_str(), "dimension": d,
                    "file": f.display().to_string(), "description": s.description,
                    "period": s.period, "dt": s.dt,
                }));
            }
            Err(e) => rows.push(json!({"file": f.display().to_string(), "error": e.to_string()})),
        }
    }
    for f in systems::particle_files() {
        match crate::particles::ParticleModel::load(&f, &[]) {
            Ok(m) => rows.push(json!({
                "name": m.name, "kind": "particles", "dimension": m.dim,
                "particles": m.n, "file": f.display().to_string(),
                "description": m.description, "dt": m.dt,
            })),
            Err(e) => rows.push(json!({"file": f.display().to_string(), "error": e.to_string()})),
        }
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<16} {:<9} {:>4}  description", "name", "kind", "dim");
    for r in &rows {
        if let Some(e) = r.get("error") {
            println!("{:<16} error: {}", "?", e.as_str().unwrap_or(""));
            continue;
        }
        let mut desc = r["description"].as_str().unwrap_or("").to_string();
        if desc.chars().count() > 70 {
            desc = desc.chars().take(67).collect::<String>() + "...";
        }
        println!(
            "{:<16} {:<9} {:>4}  {}",
            r["name"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
            r["dimension"].as_u64().unwrap_or(0),
            desc
        );
    }
    println!(
        "{} systems in {}",
        rows.len(),
        systems::catalogue_dir().display()
    );
    Ok(())
}

pub(super) fn info(system: &str, set: &[String], json_out: bool) -> Result<()> {
    let path = crate::systems::resolve_system(system)?;
    let ov = Overrides::parse(set)?;
    let sys = match crate::simulate::Definition::load_path(&path, &ov)? {
        crate::simulate::Definition::Particles(m) => return info_particles(&path, &m, json_out),
        crate::simulate::Definition::Equations(sys) => sys,
    };
    let info = sys.info();
    let (spec, m) = (&info.spec, &info.model);
    let equations: Vec<_> = spec
        .variables
        .iter()
        .map(|v| json!({"variable": v.value, "equation": spec.equations[&v.value].value}))
        .collect();
    let params: serde_json::Map<String, serde_json::Value> = m
        .param_names
        .iter()
        .zip(sys.params())
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    let reference = serde_json::to_value(&spec.reference)?;
    let out = json!({
        "name": m.name, "kind": m.kind.as_str(), "file": spec.path.display().to_string(),
        "description": spec.description, "citation": spec.citation,
        "variables": m.components, "dimension": sys.dim(), "family_size": m.dimension,
        "parameters": params, "equations": equations,
        "initial_condition": m.initial_condition, "t0": m.t0, "dt": m.dt, "period": m.period,
        "nonautonomous": m.uses_time, "hamiltonian": spec.hamiltonian,
        "jacobian_nonzeros": m.jacobian.len(),
        "delays": m.lags.iter().map(|l| l.text.clone()).collect::<Vec<_>>(),
        "conserved": m.conserved.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "reference": reference,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} ({}, dimension {})", m.name, m.kind.as_str(), sys.dim());
    println!("  file:        {}", spec.path.display());
    if !spec.description.is_empty() {
        println!("  description: {}", spec.description);
    }
    if !spec.citation.is_empty() {
        println!("  citation:    {}", spec.citation);
    }
    println!("  equations:");
    let dot = if m.kind == Kind::Map { "next" } else { "d/dt" };
    for v in &spec.variables {
        let lhs = if m.dimension.is_some() {
            format!("{dot} {}[i]", v.value)
        } else {
            format!("{dot} {}", v.value)
        };
        println!("    {lhs:<12} = {}", spec.equations[&v.value].value);
    }
    println!("  parameters:");
    for (n, v) in m.param_names.iter().zip(sys.params()) {
        println!("    {n:<12} = {v}");
    }
    println!(
        "  initial condition: {:?} (t0 = {})",
        m.initial_condition, m.t0
    );
    println!("  dt = {}, period = {}", m.dt, m.period);
    println!(
        "  Jacobian: {} nonzero entries of {}",
        m.jacobian.len(),
        sys.dim() * sys.dim()
    );
    if !m.lags.is_empty() {
        let l: Vec<_> = m.lags.iter().map(|l| l.text.as_str()).collect();
        println!("  delay terms: {}", l.join(", "));
    }
    if !spec.reference.is_empty() {
        println!("  reference:");
        for (k, v) in &spec.reference {
            println!("    {k:<28} = {v}");
        }
    }
    Ok(())
}

/// `phaseflow info` for a particle model: effective parameters (derived ones included), box,
/// interaction and its cut-off.
fn info_particles(path: &Path, m: &crate::particles::ParticleModel, json_out: bool) -> Result<()> {
    let (model, pair) = (
        match m.dynamics {
            crate::particles::Dynamics::Aoup { .. } => "aoup",
            crate::particles::Dynamics::Abp { .. } => "abp",
        },
        m.pair.map(|p| (format!("{p:?}"), p.cutoff())),
    );
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "name": m.name, "kind": "particles", "model": model, "file": path.display().to_string(),
                "description": m.description, "citation": m.citation, "dimension": m.dim,
                "particles": m.n, "fixed": m.n_fixed, "box_edge": m.bx.length,
                "packing_fraction": m.packing_fraction, "dt": m.dt, "parameters": m.parameters,
                "pair_force": pair.as_ref().map(|p| p.0.clone()), "cutoff": pair.as_ref().map(|p| p.1),
            }))?
        );
        return Ok(());
    }
    println!("{} (particles, model {model}, d = {})", m.name, m.dim);
    println!("  file:        {}", path.display());
    println!("  {}", m.description);
    println!(
        "  N = {} ({} fixed), box edge L = {:.6}, packing fraction {:.4}, dt = {}",
        m.n, m.n_fixed, m.bx.length, m.packing_fraction, m.dt
    );
    if let Some((p, rc)) = pair {
        println!("  pair force:  {p}, cut-off {rc:.4}");
    }
    println!("  parameters:");
    for (k, v) in &m.parameters {
        println!("    {k:<12} = {v}");
    }
    Ok(())
}
