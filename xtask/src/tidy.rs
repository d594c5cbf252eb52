//! `cargo xtask tidy`: house rules that rustc and clippy do not check. Every `.rs` file under
//! `crates/` and `src/` must open with a `//!` paragraph, every crate manifest must take
//! internal (`marketdb*`) dependencies, and all others, from `[workspace.dependencies]`
//! instead of declaring paths or versions itself, and README.md and `docs/*.md` may name
//! only `cargo xtask` commands that exist (those `xtask/src/main.rs` dispatches).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// Returns one line per violation found under `root`.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for dir in ["crates", "src"] {
        let mut files = Vec::new();
        collect(&root.join(dir), "rs", &mut files)?;
        for file in files {
            let text = fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if !text.trim_start().starts_with("//!") {
                problems.push(format!(
                    "{} does not open with a //! doc paragraph",
                    rel(root, &file)
                ));
            }
        }
    }
    let mut manifests = vec![
        root.join("xtask/Cargo.toml"),
        root.join("benches/Cargo.toml"),
    ];
    if let Ok(entries) = fs::read_dir(root.join("crates")) {
        for entry in entries.flatten() {
            manifests.push(entry.path().join("Cargo.toml"));
        }
    }
    problems.extend(check_xtask_mentions(root)?);
    manifests.push(root.join("Cargo.toml"));
    manifests.sort();
    for manifest in manifests.into_iter().filter(|m| m.exists()) {
        let text = fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        problems.extend(
            check_manifest(&text)
                .into_iter()
                .map(|p| format!("{}: {p}", rel(root, &manifest))),
        );
    }
    Ok(problems)
}

/// The commands `xtask/src/main.rs` dispatches: its `Some("name") =>` arms.
fn xtask_commands(root: &Path) -> Result<Vec<String>> {
    let main = root.join("xtask/src/main.rs");
    let text =
        fs::read_to_string(&main).with_context(|| format!("cannot read {}", main.display()))?;
    let mut out = Vec::new();
    for piece in text.split("Some(\"").skip(1) {
        if let Some((name, rest)) = piece.split_once('"')
            && rest.trim_start().starts_with(')')
            && !name.starts_with('-')
        {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// `cargo xtask <name>` in README.md or `docs/*.md` where `<name>` is not a command.
fn check_xtask_mentions(root: &Path) -> Result<Vec<String>> {
    let known = xtask_commands(root)?;
    let mut docs = vec![root.join("README.md")];
    collect(&root.join("docs"), "md", &mut docs)?;
    let mut problems = Vec::new();
    for doc in docs.into_iter().filter(|d| d.exists()) {
        let text =
            fs::read_to_string(&doc).with_context(|| format!("cannot read {}", doc.display()))?;
        for piece in text.split("cargo xtask").skip(1) {
            let name: String = piece
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            if !name.is_empty() && !known.contains(&name) {
                problems.push(format!(
                    "{} names `cargo xtask {name}`, which is not a command",
                    rel(root, &doc)
                ));
            }
        }
    }
    Ok(problems)
}

/// Dependencies in a manifest that are not taken from the workspace.
fn check_manifest(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            // [dependencies], [dev-dependencies], [build-dependencies], target-specific ones;
            // but not [workspace.dependencies], where declarations belong.
            in_deps = line.ends_with("dependencies]") && !line.starts_with("[workspace.");
            continue;
        }
        if !in_deps || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let from_workspace = name.ends_with(".workspace") || value.contains("workspace = true");
        if !from_workspace {
            let what = if name.starts_with("marketdb") {
                "internal dependency"
            } else {
                "dependency"
            };
            problems.push(format!(
                "{what} `{name}` is declared outside [workspace.dependencies]"
            ));
        }
    }
    problems
}

fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect(&path, ext, out)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn fake_workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "Cargo.toml",
            "[workspace.dependencies]\nmarketdb-model = { path = \"crates/model\" }\n\
             serde = \"1\"\n\n[dependencies]\nmarketdb-model.workspace = true\n",
        );
        write(
            root,
            "crates/model/Cargo.toml",
            "[package]\nname = \"marketdb-model\"\n\n[dependencies]\nserde = { workspace = true, features = [\"derive\"] }\n",
        );
        write(
            root,
            "crates/model/src/lib.rs",
            "//! The model.\n\nmod freq;\n",
        );
        write(
            root,
            "crates/model/src/freq.rs",
            "//! Intervals.\n\npub struct Freq;\n",
        );
        write(root, "src/main.rs", "\n//! The CLI.\nfn main() {}\n");
        write(
            root,
            "xtask/src/main.rs",
            "//! x\nfn main() { match a { Some(\"ci\") => 1, Some(\"--help\") => 2 } }\n",
        );
        write(
            root,
            "README.md",
            "Run `cargo xtask ci` or `cargo xtask`.\n",
        );
        dir
    }

    #[test]
    fn naming_a_missing_xtask_command_fails() {
        let dir = fake_workspace();
        write(
            dir.path(),
            "docs/a.md",
            "Then `cargo xtask compat` checks it.\n",
        );
        let problems = check(dir.path()).unwrap();
        assert_eq!(
            problems,
            vec!["docs/a.md names `cargo xtask compat`, which is not a command"]
        );
    }

    #[test]
    fn a_clean_tree_passes() {
        let dir = fake_workspace();
        assert_eq!(check(dir.path()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn removing_a_header_fails() {
        let dir = fake_workspace();
        write(
            dir.path(),
            "crates/model/src/freq.rs",
            "/// Not a module doc.\npub struct Freq;\n",
        );
        let problems = check(dir.path()).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("crates/model/src/freq.rs"),
            "{problems:?}"
        );
        assert!(problems[0].contains("//!"), "{problems:?}");
    }

    #[test]
    fn dependencies_outside_the_workspace_table_fail() {
        let dir = fake_workspace();
        write(
            dir.path(),
            "crates/model/Cargo.toml",
            "[package]\nname = \"marketdb-model\"\n\n[dependencies]\n\
             marketdb-pool = { path = \"../pool\" }\nserde = \"1\"\n\n[dev-dependencies]\n\
             tempfile.workspace = true\n",
        );
        let problems = check(dir.path()).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("internal dependency `marketdb-pool`"),
            "{problems:?}"
        );
        assert!(problems[1].contains("dependency `serde`"), "{problems:?}");
    }

    #[test]
    fn the_real_workspace_passes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert_eq!(check(root).unwrap(), Vec::<String>::new());
    }
}
