//! One bash process per document: its commands run one after another in the same shell, so
//! `export`, `cd` and files carry over from block to block as they would for a reader
//! typing them. stderr is merged into stdout in the order the commands write them.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    time::Duration,
};

use anyhow::{Context, Result, bail};

/// Printed after every command with its exit status; no example prints it.
const END: &str = "@@marketdb-docs-end@@";
/// A command that runs longer is a failure (and the session ends).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

/// What one command printed (stdout and stderr) and its exit status.
pub struct Printed {
    pub lines: Vec<String>,
    pub status: i32,
}

impl Session {
    /// A bash in `dir` with exactly the environment `env` (nothing inherited).
    pub fn start(dir: &Path, env: &[(String, String)]) -> Result<Self> {
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start bash")?;
        let stdin = child.stdin.take().context("bash has no stdin")?;
        let stdout = child.stdout.take().context("bash has no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.strip_suffix('\n').unwrap_or(&line);
                        if tx.send(line.to_owned()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut session = Session {
            child,
            stdin,
            lines,
        };
        session.send("exec 2>&1\n")?;
        Ok(session)
    }

    /// Runs `command` (stdin from /dev/null) and waits for it; `$?` afterwards is its status,
    /// as in a terminal.
    pub fn run(&mut self, command: &str) -> Result<Printed> {
        let script = format!(
            "{{\n{command}\n}} </dev/null\n__docs_rc=$?\nprintf '\\n{END} %s\\n' \"$__docs_rc\"\n(exit $__docs_rc)\n"
        );
        self.send(&script)?;
        let mut lines = Vec::new();
        loop {
            let line = match self.lines.recv_timeout(COMMAND_TIMEOUT) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    bail!(
                        "`{command}` did not finish within {} s",
                        COMMAND_TIMEOUT.as_secs()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("the shell ended during `{command}`: {}", lines.join("\n"))
                }
            };
            if let Some(at) = line.find(END) {
                // The marker starts its own line; text before it was an unterminated line.
                let status = line[at + END.len()..].trim().parse().unwrap_or(-1);
                if at > 0 {
                    lines.push(line[..at].to_owned());
                }
                while lines.last().is_some_and(String::is_empty) {
                    lines.pop();
                }
                return Ok(Printed { lines, status });
            }
            lines.push(line);
        }
    }

    fn send(&mut self, text: &str) -> Result<()> {
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|()| self.stdin.flush())
            .context("cannot write to the shell")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())]
    }

    #[test]
    fn state_and_status_carry_over_like_a_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::start(dir.path(), &env()).unwrap();
        let p = s.run("export X=7; mkdir sub && cd sub").unwrap();
        assert_eq!((p.lines.len(), p.status), (0, 0));
        let p = s
            .run("echo $X $(basename $PWD); echo oops >&2; false")
            .unwrap();
        assert_eq!(p.lines, ["7 sub", "oops"]);
        assert_eq!(p.status, 1);
        let p = s.run("echo $?").unwrap();
        assert_eq!(p.lines, ["1"]);
        let p = s.run("printf 'no newline'").unwrap();
        assert_eq!(p.lines, ["no newline"]);
        let p = s.run("cat <<EOF\nhere\n\nEOF").unwrap();
        assert_eq!(p.lines, ["here"]);
        // stdin is not the script: a command reading it gets end of input.
        let p = s.run("cat; echo after").unwrap();
        assert_eq!(p.lines, ["after"]);
    }
}
