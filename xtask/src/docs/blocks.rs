//! The example blocks of a Markdown document: fenced code blocks, what kind each is, and the
//! commands and shown outputs of a shell transcript.
//!
//! A block is *runnable* when its info string is `console` (a shell transcript: `$ ` starts a
//! command, `> ` continues it, every other line up to the next command is the output it
//! shows) or `python` (a script, run to its end; the comment lines after a line
//! `# output:` at its end are the output it shows). Any other block, and a runnable one that
//! must not run here, carries `<!-- not run: REASON -->` on the line before its fence.

use anyhow::{Result, bail};

/// The marker that exempts the next block from running, with its reason.
const NOT_RUN: &str = "<!-- not run:";

/// One fenced block of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    /// Index of the first body line in the document's lines.
    pub body_start: usize,
    /// Lines of the body (between the fences).
    pub body: Vec<String>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Console(Vec<Command>),
    /// A script and the output it shows (as a command `python3 SCRIPT` would).
    Python {
        source: String,
        shown: Command,
    },
    NotRun(String),
}

/// One command of a transcript and the output the document shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command as the shell gets it (continuation lines joined with newlines).
    pub text: String,
    /// Index (in the block's body) of the first shown output line.
    pub output_start: usize,
    /// The shown output, one entry per line.
    pub shown: Vec<String>,
}

/// The fenced blocks of `text`, each classified; an unmarked block that is not runnable is
/// an error naming its line.
pub fn parse(name: &str, text: &str) -> Result<Vec<Block>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = fence(lines[i]) else {
            i += 1;
            continue;
        };
        let open = i;
        let close = (open + 1..lines.len()).find(|&j| fence(lines[j]).is_some_and(str::is_empty));
        let Some(close) = close else {
            bail!("{name}:{}: the block opened here is never closed", open + 1);
        };
        let body: Vec<String> = lines[open + 1..close]
            .iter()
            .map(|l| (*l).to_owned())
            .collect();
        let marker = lines[..open]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| not_run_reason(l));
        let kind = match (marker, info.split_whitespace().next().unwrap_or("")) {
            (Some(reason), _) if reason.is_empty() => {
                bail!("{name}:{}: `{NOT_RUN} -->` needs a reason", open + 1)
            }
            (Some(reason), _) => Kind::NotRun(reason),
            (None, "console") => Kind::Console(transcript(name, open + 1, &body)?),
            (None, "python") => python(name, open + 1, &body)?,
            (None, other) => bail!(
                "{name}:{}: a ```{other} block is neither runnable (```console or ```python) \
                 nor marked `{NOT_RUN} REASON -->` on the line before it",
                open + 1
            ),
        };
        blocks.push(Block {
            line: open + 1,
            body_start: open + 1,
            body,
            kind,
        });
        i = close + 1;
    }
    Ok(blocks)
}

/// The info string of a fence line (`` ``` `` at the start of the line), `None` otherwise.
fn fence(line: &str) -> Option<&str> {
    line.strip_prefix("```").map(str::trim)
}

fn not_run_reason(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix(NOT_RUN)?;
    let reason = rest.strip_suffix("-->")?;
    Some(reason.trim().to_owned())
}

/// A python block: the script, and the output shown after `# output:` (each line `# ` and
/// the text, or only `#` for an empty line).
fn python(name: &str, line: usize, body: &[String]) -> Result<Kind> {
    let marker = body.iter().position(|l| l.trim_end() == OUTPUT);
    let shown = match marker {
        None => Vec::new(),
        Some(at) => {
            let mut shown = Vec::new();
            for (k, l) in body.iter().enumerate().skip(at + 1) {
                match l.strip_prefix("# ").or((l.trim_end() == "#").then_some("")) {
                    Some(text) => shown.push(text.to_owned()),
                    None => bail!(
                        "{name}:{}: after `{OUTPUT}` every line is a `# ` comment",
                        line + 1 + k
                    ),
                }
            }
            shown
        }
    };
    let output_start = marker.map_or(body.len(), |at| at + 1);
    Ok(Kind::Python {
        source: body.join("\n") + "\n",
        shown: Command {
            text: String::new(),
            output_start,
            shown,
        },
    })
}

/// The line that starts the shown output of a python block.
pub const OUTPUT: &str = "# output:";

/// The commands of a console block; output before the first command is an error.
fn transcript(name: &str, line: usize, body: &[String]) -> Result<Vec<Command>> {
    let mut commands: Vec<Command> = Vec::new();
    let mut continuing = false;
    for (k, l) in body.iter().enumerate() {
        if let Some(cmd) = l.strip_prefix("$ ") {
            commands.push(Command {
                text: cmd.to_owned(),
                output_start: k + 1,
                shown: Vec::new(),
            });
            continuing = true;
        } else if let (true, Some(more), Some(c)) = (
            continuing,
            // `>` alone is an empty continuation line of a here-document
            l.strip_prefix("> ").or((l == ">").then_some("")),
            commands.last_mut(),
        ) {
            c.text.push('\n');
            c.text.push_str(more);
            c.output_start = k + 1;
        } else if let Some(c) = commands.last_mut() {
            continuing = false;
            c.shown.push(l.clone());
        } else {
            bail!(
                "{name}:{}: a console block starts with output, not a `$ ` command",
                line + 1 + k
            );
        }
    }
    if commands.is_empty() {
        bail!("{name}:{line}: a console block without a `$ ` command");
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_classified_by_info_string_and_marker() {
        let doc = "text\n```console\n$ echo a\na\n```\n\n<!-- not run: talks to Binance -->\n\
                   ```console\n$ marketdb download\n```\n```python\nprint(1)\n```\n";
        let b = parse("d.md", doc).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].line, 2);
        let Kind::Console(c) = &b[0].kind else {
            panic!("{:?}", b[0].kind)
        };
        assert_eq!(c[0].text, "echo a");
        assert_eq!(c[0].shown, ["a"]);
        assert_eq!(b[1].kind, Kind::NotRun("talks to Binance".into()));
        let Kind::Python { source, shown } = &b[2].kind else {
            panic!("{:?}", b[2].kind)
        };
        assert_eq!(source, "print(1)\n");
        assert!(shown.shown.is_empty());
    }

    #[test]
    fn an_unmarked_block_of_another_kind_is_refused_with_its_line() {
        let err = parse("d.md", "a\n\n```text\nx\n```\n").unwrap_err();
        assert!(
            err.to_string().starts_with("d.md:3: a ```text block"),
            "{err}"
        );
        let err = parse("d.md", "```\nx\n```\n").unwrap_err();
        assert!(err.to_string().contains("neither runnable"), "{err}");
        let err = parse("d.md", "<!-- not run: -->\n```\nx\n```\n").unwrap_err();
        assert!(err.to_string().contains("needs a reason"), "{err}");
        let err = parse("d.md", "```console\n$ a\n").unwrap_err();
        assert!(err.to_string().contains("never closed"), "{err}");
    }

    #[test]
    fn continuation_lines_join_the_command_and_output_follows() {
        let doc = "```console\n$ cat > f <<EOF\n> one\n>\n> EOF\n$ cat f\none\n\n$ true\n```\n";
        let b = parse("d.md", doc).unwrap();
        let Kind::Console(c) = &b[0].kind else {
            panic!()
        };
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].text, "cat > f <<EOF\none\n\nEOF");
        assert!(c[0].shown.is_empty());
        assert_eq!(c[1].text, "cat f");
        assert_eq!(c[1].shown, ["one", ""]);
        assert_eq!(c[1].output_start, 5);
        assert!(c[2].shown.is_empty());
    }

    #[test]
    fn a_python_block_shows_its_output_as_comments_after_a_marker() {
        let doc = "```python\nprint('a')\nprint()\n# output:\n# a\n#\n```\n";
        let b = parse("d.md", doc).unwrap();
        let Kind::Python { shown, .. } = &b[0].kind else {
            panic!()
        };
        assert_eq!(shown.shown, ["a", ""]);
        assert_eq!(shown.output_start, 3);
        let err = parse("d.md", "```python\n# output:\nx = 1\n```\n").unwrap_err();
        assert!(err.to_string().contains("d.md:3"), "{err}");
    }

    #[test]
    fn output_before_any_command_is_refused() {
        let err = parse("d.md", "```console\nhello\n$ a\n```\n").unwrap_err();
        assert!(err.to_string().contains("d.md:2"), "{err}");
    }
}
