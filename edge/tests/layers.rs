//! The edge is in layers: no module imports one that imports it back,
//! directly or through others. This reads every `crate::` / `super::` path
//! of every file under `src/` (comments and unit tests left out) and fails
//! on the first cycle, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the edge (a file, by its path under `src/` without
/// `.rs`, `mod.rs` naming its folder), with its source.
fn modules(dir: &Path, src: &Path, out: &mut BTreeMap<Vec<String>, String>) {
    for entry in std::fs::read_dir(dir).expect("reading src") {
        let path: PathBuf = entry.expect("dir entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                modules(&path, src, out);
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path
            .strip_prefix(src)
            .expect("under src")
            .with_extension("");
        let mut name: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if matches!(name.last().map(String::as_str), Some("mod" | "lib")) {
            name.pop();
        }
        let text = std::fs::read_to_string(&path).expect("reading a module");
        out.insert(name, text);
    }
}

/// The source without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a module names: `crate::a::b`, `super::c`, and the items of
/// `use crate::{a, b::c}` groups, as absolute module paths.
fn named_paths(module: &[String], is_folder: bool, code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let tokens: Vec<char> = code.chars().collect();
    let text: String = tokens.iter().collect();
    for start in ["crate::", "super::"] {
        for (at, _) in text.match_indices(start) {
            if at > 0 && (tokens[at - 1].is_alphanumeric() || tokens[at - 1] == '_') {
                continue;
            }
            let rest = &text[at..];
            let end = rest
                .find(|c: char| {
                    !(c.is_alphanumeric()
                        || c == '_'
                        || c == ':'
                        || c == '{'
                        || c == '}'
                        || c == ','
                        || c == ' '
                        || c == '\n')
                })
                .unwrap_or(rest.len());
            let expr = &rest[..end];
            let (head, group) = match expr.find('{') {
                Some(i) => (&expr[..i], expr[i + 1..].split('}').next().unwrap_or("")),
                None => (expr, ""),
            };
            let mut base: Vec<String> = Vec::new();
            // `a::b as c`: the path is `a::b`.
            let mut parts = head
                .split("::")
                .filter_map(|p| p.split_whitespace().next())
                .filter(|p| !p.is_empty());
            match parts.next() {
                Some("crate") => {}
                Some("super") => {
                    base = module.to_vec();
                    if !is_folder {
                        base.pop();
                    }
                    base.pop();
                }
                _ => continue,
            }
            let mut prefix = base;
            for p in parts {
                if p == "super" {
                    prefix.pop();
                } else {
                    prefix.push(p.to_string());
                }
            }
            if group.is_empty() {
                paths.push(prefix);
            } else {
                for item in group.split(',') {
                    let mut p = prefix.clone();
                    p.extend(
                        item.split("::")
                            .map(str::trim)
                            .filter(|s| !s.is_empty() && *s != "self")
                            .map(String::from),
                    );
                    paths.push(p);
                }
            }
        }
    }
    paths
}

#[test]
fn no_module_of_the_edge_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut mods = BTreeMap::new();
    modules(&src, &src, &mut mods);
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| mods.contains_key(p))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (name, text) in &mods {
        let folder = src.join(name.join("/")).join("mod.rs").exists() || name.is_empty();
        let targets = edges.entry(name.clone()).or_default();
        for path in named_paths(name, folder, &code(text)) {
            if let Some(target) = resolve(&path)
                && target != *name
            {
                targets.insert(target);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        at: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = stack.iter().position(|m| m == at) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(at.clone());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        stack.push(at.clone());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(at.clone());
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!(
                "the edge's modules import each other in a circle: {}",
                names.join(" -> ")
            );
        }
    }
    assert!(
        mods.len() > 20,
        "found only {} modules under {}",
        mods.len(),
        src.display()
    );
}
