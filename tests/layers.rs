//! The layers of `src/` point down: every import between top-level modules goes to a lower
//! row of the table in `docs/architecture.md`, the one place the order is written. A new
//! top-level module must be given a row; an import that points up or sideways fails here with
//! its file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";

/// The layer of each top-level module, from the doc's table: rows `| N | \`a\` \`b\` | ... |`.
fn layers(doc: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Ok(n) = cells[1].parse::<u32>() else {
            continue;
        };
        for name in cells[2].split('`').skip(1).step_by(2) {
            assert!(
                out.insert(name.to_string(), n).is_none(),
                "{DOC}: `{name}` is in two rows"
            );
        }
    }
    out
}

/// The top-level modules of `src/` (files and folders; not the crate roots).
fn modules(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(src).expect("src/ is readable") {
        let e = e.expect("a directory entry");
        let name = e.file_name().to_string_lossy().to_string();
        if e.path().is_dir() {
            out.insert(name);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if stem != "lib" && stem != "main" {
                out.insert(stem.to_string());
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("a readable folder") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The first path segment of every `crate::` path in `code`, with its line number: `crate::a::b`
/// gives `a`, and `use crate::{a::b, c}` gives `a` and `c`. Comment lines are skipped, and so is
/// everything from the first `#[cfg(test)]` on (unit tests may reach anywhere).
fn imports(code: &str) -> Vec<(usize, String)> {
    let code = code.split("#[cfg(test)]").next().unwrap_or("");
    let mut text = String::new();
    let mut line_of = Vec::new();
    for (n, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for _ in 0..=line.len() {
            line_of.push(n + 1);
        }
        text.push_str(line);
        text.push('\n');
    }
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("crate::") {
        let at = from + i;
        let rest = &text[at + "crate::".len()..];
        from = at + "crate::".len();
        // `roombox::crate::` does not exist; `$crate::` (macros) and `super::crate` do not either,
        // but an identifier ending in `crate` (`my_crate::`) is not ours.
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            continue;
        }
        let line = line_of[at];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at the group's top level, up to its closing brace.
            let mut depth = 0;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 0 => {
                        let name = ident(&group[k..]);
                        if !name.is_empty() && name != "self" {
                            out.push((line, name));
                        }
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push((line, name));
            }
        }
    }
    out
}

#[test]
fn the_parser_finds_plain_grouped_and_nested_imports_and_skips_comments_and_tests() {
    let code = "use crate::a::B;\n\
                // use crate::commented::X;\n\
                use crate::{b::{C, D}, c, self};\n\
                fn f() { crate::d::e(); my_crate::x(); }\n\
                #[cfg(test)]\nmod tests { use crate::z; }\n";
    let names: Vec<String> = imports(code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(imports(code)[2].0, 3, "line numbers count from 1");
}

#[test]
fn every_import_between_top_level_modules_points_to_a_lower_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join(DOC)).expect("docs/architecture.md");
    let layer = layers(&doc);
    let src = root.join("src");
    let found = modules(&src);

    let unlisted: Vec<&String> = found.iter().filter(|m| !layer.contains_key(*m)).collect();
    assert!(
        unlisted.is_empty(),
        "top-level modules with no row in {DOC}: {unlisted:?}"
    );
    let gone: Vec<&String> = layer.keys().filter(|m| !found.contains(*m)).collect();
    assert!(gone.is_empty(), "{DOC} lists modules src/ lacks: {gone:?}");

    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = 0;
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let first = rel
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy()
            .to_string();
        let from = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        let Some(&from_layer) = layer.get(&from) else {
            continue; // lib.rs and main.rs sit above every layer
        };
        let code = std::fs::read_to_string(&file).expect("a readable source file");
        for (line, to) in imports(&code) {
            let Some(&to_layer) = layer.get(&to) else {
                continue; // a crate-root item, or a path the parser cut short
            };
            if to == from {
                continue;
            }
            edges += 1;
            if to_layer >= from_layer {
                wrong.push(format!(
                    "src/{}:{line}: `{from}` (layer {from_layer}) imports `{to}` (layer {to_layer})",
                    rel.display()
                ));
            }
        }
    }
    // Each module folder says where it stands, in its own header, as the table does.
    for m in &found {
        let Ok(code) = std::fs::read_to_string(src.join(m).join("mod.rs")) else {
            continue;
        };
        let header: String = code
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let want = format!("Layer {} of {DOC}", layer[m]);
        if !header.contains(&want) {
            wrong.push(format!(
                "src/{m}/mod.rs: its `//!` header should say \"{want}\" and who may import it"
            ));
        }
    }
    // The agent alone imports half a dozen modules: a parser that finds almost nothing is broken.
    assert!(
        edges > 100,
        "only {edges} imports found; the parser is broken"
    );
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways ({DOC} gives the order):\n{}",
        wrong.join("\n")
    );
}
