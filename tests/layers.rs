//! The shape of the source tree: the core's files import each other without a circle, no
//! source file outside tests is over 700 lines, and `src/main.rs` stays a dispatcher.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its unit-test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments of every `prefix...` path in `code`, braces expanded one level.
fn segments(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices(prefix) {
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(
                group
                    .split(',')
                    .map(|s| s.trim().split("::").next().unwrap_or("").to_string()),
            );
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// Module (file) dependencies among `src/learner`: `a -> {b}` when a's code names a path
/// of b (directly or through a re-export of `learner/mod.rs`).
fn learner_graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = root().join("src/learner");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let module = |p: &Path| -> String {
        let rel = p.strip_prefix(&dir).unwrap().with_extension("");
        let rel = rel.to_string_lossy().replace('\\', "/");
        rel.strip_suffix("/mod").map(str::to_string).unwrap_or(rel)
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module(f)).collect();
    // `pub use x::{A, B};` in mod.rs: where each re-exported name lives.
    let mut reexports = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("mod.rs")).unwrap().lines() {
        if let Some(rest) = line.trim().strip_prefix("pub use ") {
            let (from, names) = rest.split_once("::").unwrap();
            for name in names
                .trim_end_matches(';')
                .trim_matches(|c| c == '{' || c == '}')
                .split(',')
            {
                reexports.insert(name.trim().to_string(), from.to_string());
            }
        }
    }
    let mut graph = BTreeMap::new();
    for f in &files {
        let name = module(f);
        if name == "mod" {
            continue;
        }
        let code = code(&std::fs::read_to_string(f).unwrap());
        let mut deps = BTreeSet::new();
        for seg in segments(&code, "crate::learner::") {
            if modules.contains(&seg) {
                deps.insert(seg);
            } else if let Some(m) = reexports.get(&seg) {
                deps.insert(m.clone());
            }
        }
        if let Some((parent, _)) = name.split_once('/') {
            for seg in segments(&code, "super::") {
                let sibling = format!("{parent}/{seg}");
                deps.insert(if modules.contains(&sibling) {
                    sibling
                } else {
                    parent.to_string()
                });
            }
        }
        deps.remove(&name);
        graph.insert(name, deps);
    }
    graph
}

/// A circle in `graph`, if there is one (depth-first search).
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let start = path.iter().position(|p| p == m).unwrap();
                    let mut c = path[start..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_core_has_no_import_circle() {
    let graph = learner_graph();
    assert!(graph.len() > 15, "the core's files were not found: {graph:?}");
    // The graph is read right: the learner uses the layout, which uses the defences.
    assert!(graph["learner"].contains("layout") && graph["layout"].contains("consolidation"));
    if let Some(c) = circle(&graph) {
        panic!("import circle among src/learner: {}", c.join(" -> "));
    }
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(circle(&g), None);
}

#[test]
fn no_source_file_is_over_700_lines_and_main_is_a_dispatcher() {
    let mut files = Vec::new();
    for dir in [
        "src",
        "boards/firmware/src",
        "boards/netduinoplus2/src",
        "boards/rp-pico/src",
        "benches",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut long = Vec::new();
    for f in &files {
        let lines = std::fs::read_to_string(f).unwrap().lines().count();
        let unit_tests = f.file_name().is_some_and(|n| n == "tests.rs");
        if lines > 700 && !unit_tests {
            long.push(format!("{} ({lines} lines)", f.strip_prefix(root()).unwrap().display()));
        }
    }
    assert!(long.is_empty(), "source files over 700 lines: {}", long.join(", "));
    let main = std::fs::read_to_string(root().join("src/main.rs"))
        .unwrap()
        .lines()
        .count();
    assert!(main < 100, "src/main.rs has {main} lines: commands belong in src/cli/");
}
