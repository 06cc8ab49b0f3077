//! Where a report came from: the versions of the main crates, the machine it ran on and the
//! data files' provenance.

use std::path::Path;

/// Crates whose versions the report states, read from the Cargo.lock the binary was built
/// with.
const CRATES: [&str; 6] = ["tract-onnx", "plotters", "burn", "ndarray", "postcard", "clap"];

/// Versions of [`CRATES`] in the Cargo.lock edgecl was built with.
pub(super) fn crate_versions() -> Vec<(&'static str, String)> {
    let lock = include_str!("../../../Cargo.lock");
    CRATES
        .iter()
        .filter_map(|&name| {
            let key = format!("name = \"{name}\"\nversion = \"");
            let rest = &lock[lock.find(&key)? + key.len()..];
            Some((name, rest.split('"').next()?.to_string()))
        })
        .collect()
}

/// The machine: OS, CPU, cores and memory (Linux's /proc where there is one).
pub(super) fn machine() -> Vec<(String, String)> {
    let mut m = vec![(
        "system".to_string(),
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    )];
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(model) = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
    {
        m.push(("CPU".into(), model.trim().to_string()));
    }
    m.push((
        "cores".into(),
        std::thread::available_parallelism().map_or_else(|_| "unknown".into(), |n| n.to_string()),
    ));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(kb) = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        m.push(("memory".into(), format!("{:.1} GiB", kb as f64 / 1048576.0)));
    }
    m
}

/// The first paragraphs of a provenance or model card beside `path` (a data folder or a
/// backbone file), when there is one.
pub(super) fn provenance(path: &str, file: &str) -> Option<String> {
    let p = Path::new(path);
    let dir = if p.is_dir() { p } else { p.parent()? };
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    let lines: Vec<&str> = text.lines().take(12).collect();
    Some(lines.join("\n"))
}
