//! `cargo xtask docs [--bless] [FILE...]`: runs every example of README.md and docs/*.md and
//! compares what it prints with what the document shows (docs/CONTRIBUTING-HOUSE.md,
//! "Examples that run").
//!
//! Each document runs in its own fresh folder under `target/docs-run/`, holding a fresh demo
//! database (`marketdb demo`), with `marketdb` on PATH (the release build) and
//! `$MARKETDB_DOCS_PYTHON` naming the Python of `target/pymarketdb` with the package
//! installed. `--bless` rewrites the shown outputs that differ from a real run.

mod blocks;
mod matching;
mod session;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use blocks::{Block, Kind};
use session::Session;

/// A shown output that differs from the printed one.
struct Difference {
    /// Where the block's body lines are replaced when blessing: the range of document lines
    /// and the new lines.
    at: std::ops::Range<usize>,
    blessed: Vec<String>,
    report: String,
}

#[allow(clippy::print_stdout)]
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let bless = args.iter().any(|a| a == "--bless");
    let chosen: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if let Some(unknown) = args.iter().find(|a| a.starts_with("--") && *a != "--bless") {
        bail!("unknown option {unknown:?} (usage: cargo xtask docs [--bless] [FILE...])");
    }
    let mut files = vec![root.join("README.md")];
    let mut in_docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .context("cannot list docs/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    in_docs.sort();
    files.extend(in_docs);
    if !chosen.is_empty() {
        files.retain(|f| chosen.iter().any(|c| root.join(c) == *f));
        if files.len() != chosen.len() {
            bail!("not a document of README.md or docs/*.md among {chosen:?}");
        }
    }

    let mut parsed = Vec::new();
    for file in &files {
        let name = relative(root, file);
        let text = fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
        let blocks = blocks::parse(&name, &text)?;
        parsed.push((file.clone(), name, text, blocks));
    }
    let needs_python = parsed
        .iter()
        .flat_map(|p| &p.3)
        .any(|b| matches!(b.kind, Kind::Python { .. }));

    crate::cargo(root, &["build", "--release", "--bin", "marketdb"])?;
    let python = if needs_python {
        python_with_package(root)?
    } else {
        PathBuf::new()
    };

    let (mut runnable, mut not_run, mut differing) = (0, 0, 0);
    for (file, name, text, blocks) in &parsed {
        let counts = Counts::of(blocks);
        runnable += counts.runnable();
        not_run += counts.not_run;
        println!(
            "{name}: {} runnable block(s) ({} console with {} command(s), {} python), {} not run",
            counts.runnable(),
            counts.console,
            counts.commands,
            counts.python,
            counts.not_run
        );
        if counts.runnable() == 0 {
            continue;
        }
        let differences = run_document(root, name, blocks, &python)?;
        differing += differences.len();
        for d in &differences {
            println!("{}", d.report);
        }
        if bless && !differences.is_empty() {
            fs::write(file, blessed(text, &differences))
                .with_context(|| format!("cannot write {name}"))?;
            println!("{name}: {} shown output(s) rewritten", differences.len());
        }
    }
    println!(
        "{} document(s): {runnable} runnable block(s), {not_run} not run, {differing} differing",
        parsed.len()
    );
    if differing > 0 && !bless {
        bail!(
            "{differing} example(s) print something else than their document shows; \
             `cargo xtask docs --bless` rewrites the shown outputs from this run"
        );
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    console: usize,
    commands: usize,
    python: usize,
    not_run: usize,
}

impl Counts {
    fn of(blocks: &[Block]) -> Self {
        let mut c = Counts::default();
        for b in blocks {
            match &b.kind {
                Kind::Console(cmds) => {
                    c.console += 1;
                    c.commands += cmds.len();
                }
                Kind::Python { .. } => c.python += 1,
                Kind::NotRun(_) => c.not_run += 1,
            }
        }
        c
    }

    fn runnable(&self) -> usize {
        self.console + self.python
    }
}

/// Runs the runnable blocks of one document in order, in a fresh folder with a fresh demo
/// database, and returns the outputs that differ.
fn run_document(
    root: &Path,
    name: &str,
    blocks: &[Block],
    python: &Path,
) -> Result<Vec<Difference>> {
    let work = root
        .join("target")
        .join("docs-run")
        .join(name.replace('/', "-"));
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot empty {}", work.display()))?;
    }
    let (dir, bin, home) = (work.join("run"), work.join("bin"), work.join("home"));
    for d in [&dir, &bin, &home] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let marketdb = root.join("target").join("release").join("marketdb");
    std::os::unix::fs::symlink(&marketdb, bin.join("marketdb"))
        .context("cannot link the marketdb binary")?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env: Vec<(String, String)> = [
        ("PATH", path),
        ("HOME", home.display().to_string()),
        ("LANG", "C.UTF-8".to_owned()),
        ("TZ", "UTC".to_owned()),
        ("TERM", "dumb".to_owned()),
        ("MARKETDB_DOCS_PYTHON", python.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let mut shell = Session::start(&dir, &env)?;
    let demo = shell.run("marketdb demo -q")?;
    if demo.status != 0 {
        bail!(
            "{name}: `marketdb demo -q` failed before the examples: {}",
            demo.lines.join("\n")
        );
    }
    let mut differences = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        match &block.kind {
            Kind::NotRun(_) => {}
            Kind::Console(commands) => {
                for c in commands {
                    let printed = shell.run(&c.text)?;
                    if matching::matches(&c.shown, &printed.lines) {
                        continue;
                    }
                    let start = block.body_start + c.output_start;
                    differences.push(Difference {
                        at: start..start + c.shown.len(),
                        blessed: matching::blessed(&c.shown, &printed.lines),
                        report: report(name, block.line, &c.text, &c.shown, &printed.lines),
                    });
                }
            }
            Kind::Python { source, shown } => {
                let script = work.join(format!("block-{index}.py"));
                fs::write(&script, source)
                    .with_context(|| format!("cannot write {}", script.display()))?;
                let printed =
                    shell.run(&format!("\"$MARKETDB_DOCS_PYTHON\" '{}'", script.display()))?;
                if printed.status != 0 {
                    bail!(
                        "{name}:{}: the python example failed (exit {}):\n{}",
                        block.line,
                        printed.status,
                        printed.lines.join("\n")
                    );
                }
                if matching::matches(&shown.shown, &printed.lines) {
                    continue;
                }
                // Shown as comments after `# output:` (added when the block had none).
                let start = block.body_start + shown.output_start;
                let mut lines = matching::blessed(&shown.shown, &printed.lines);
                while lines.last().is_some_and(String::is_empty) {
                    lines.pop();
                }
                let mut blessed: Vec<String> = lines
                    .iter()
                    .map(|l| {
                        if l.is_empty() {
                            "#".to_owned()
                        } else {
                            format!("# {l}")
                        }
                    })
                    .collect();
                if !source.contains(blocks::OUTPUT) {
                    blessed.insert(0, blocks::OUTPUT.to_owned());
                }
                differences.push(Difference {
                    at: start..start + shown.shown.len(),
                    blessed,
                    report: report(name, block.line, "python", &shown.shown, &printed.lines),
                });
            }
        }
    }
    Ok(differences)
}

/// The document's text with the differing outputs replaced.
fn blessed(text: &str, differences: &[Difference]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut sorted: Vec<&Difference> = differences.iter().collect();
    sorted.sort_by_key(|d| std::cmp::Reverse(d.at.start));
    for d in sorted {
        lines.splice(d.at.clone(), d.blessed.iter().cloned());
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The shown and printed outputs of one command, line by line, `-` shown and `+` printed.
fn report(name: &str, line: usize, command: &str, shown: &[String], printed: &[String]) -> String {
    let mut out = format!("{name}:{line}: `$ {command}` printed something else:\n");
    let rows = shown.len().max(printed.len());
    for i in 0..rows {
        let (s, p) = (shown.get(i), printed.get(i));
        match (s, p) {
            (Some(s), Some(p))
                if matching::matches(std::slice::from_ref(s), std::slice::from_ref(p)) =>
            {
                let _ = writeln!(out, "    {p}");
            }
            _ => {
                if let Some(s) = s {
                    let _ = writeln!(out, "  - {s}");
                }
                if let Some(p) = p {
                    let _ = writeln!(out, "  + {p}");
                }
            }
        }
    }
    out
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// The virtualenv's Python with the package built from these sources installed
/// (`scripts/python.sh install`, which rebuilds only when the sources changed).
fn python_with_package(root: &Path) -> Result<PathBuf> {
    let out = Command::new("bash")
        .args(["scripts/python.sh", "install"])
        .current_dir(root)
        .output()
        .context("cannot run scripts/python.sh install")?;
    if !out.status.success() {
        bail!(
            "`scripts/python.sh install` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blessing_replaces_only_the_differing_outputs() {
        let text = "a\n```console\n$ echo 1\n2\n$ echo x\nx\n```\n";
        let blocks = blocks::parse("d.md", text).unwrap();
        let Kind::Console(c) = &blocks[0].kind else {
            panic!()
        };
        let start = blocks[0].body_start + c[0].output_start;
        let d = Difference {
            at: start..start + c[0].shown.len(),
            blessed: vec!["1".into()],
            report: String::new(),
        };
        assert_eq!(
            blessed(text, &[d]),
            "a\n```console\n$ echo 1\n1\n$ echo x\nx\n```\n"
        );
    }

    #[test]
    fn a_document_whose_output_changed_by_one_character_differs() {
        // The whole path of one document (shell, compare, report) on a command every
        // machine has; the demo database is not needed for it.
        let dir = tempfile::tempdir().unwrap();
        let text = "```console\n$ echo hello world\nhello worle\n```\n";
        let blocks = blocks::parse("d.md", text).unwrap();
        let Kind::Console(c) = &blocks[0].kind else {
            panic!()
        };
        let env = vec![("PATH".to_owned(), std::env::var("PATH").unwrap_or_default())];
        let mut s = Session::start(dir.path(), &env).unwrap();
        let printed = s.run(&c[0].text).unwrap();
        assert!(!matching::matches(&c[0].shown, &printed.lines));
        let r = report("d.md", 1, &c[0].text, &c[0].shown, &printed.lines);
        assert!(r.contains("  - hello worle\n  + hello world\n"), "{r}");
    }
}
