//! A reference side of `bench`: a process kept running beside us (`bench/reference.py --serve`
//! for transformers, `bench/llama_cpp_reference.py --serve` for llama.cpp), asked for one
//! measurement at a time so that the sides take turns (see [`super::run`]).
//!
//! The protocol: the process prints `{"ready": true}` once its model is loaded, then for each
//! measurement name read from stdin prints `{"seconds": S}`, or `{"error": "..."}` for one it
//! cannot take.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Measure, Side};
use crate::{Error, Result};

/// How much of the reference's stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;

/// The longest the reference may take to load its model or to take one measurement before it
/// is given up on (a 0.5B model's training step takes well under a minute on 2 cores).
const REPLY_TIMEOUT: Duration = Duration::from_secs(900);

/// A running `reference.py --serve`.
pub struct Reference {
    name: String,
    child: Child,
    stdin: ChildStdin,
    /// Its stdout's lines, read on a thread so that waiting for one can time out.
    lines: Receiver<std::io::Result<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Reference {
    /// Starts `command` (a `--serve` invocation of a reference script) and waits until it has
    /// loaded the model. `name` labels its results.
    pub fn spawn(name: &str, mut command: Command) -> Result<Self> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(&program, e))?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::Reference("no pipes to the reference process".into()));
        };
        // Drained on a thread so that a chatty stderr can never fill its pipe and stall the
        // process; only the tail is kept, for the error message.
        let tail = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&tail);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut t) = sink.lock() {
                    t.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if t.len() > 2 * STDERR_TAIL {
                        let mut cut = t.len() - STDERR_TAIL;
                        while !t.is_char_boundary(cut) {
                            cut += 1;
                        }
                        t.drain(..cut);
                    }
                }
            }
        });
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut reference = Reference {
            name: name.to_string(),
            child,
            stdin,
            lines,
            stderr: tail,
        };
        let ready = reference.reply()?;
        if ready.get("ready").and_then(serde_json::Value::as_bool) != Some(true) {
            return Err(Error::Reference(format!("unexpected greeting {ready}")));
        }
        Ok(reference)
    }

    /// Takes measurement `m` once; its seconds.
    pub fn once(&mut self, m: Measure) -> Result<f64> {
        writeln!(self.stdin, "{}", m.name())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| self.died(&e.to_string()))?;
        let reply = self.reply()?;
        if let Some(error) = reply.get("error").and_then(serde_json::Value::as_str) {
            return Err(Error::Reference(format!(
                "{} cannot take `{}`: {error}",
                self.name,
                m.name()
            )));
        }
        reply
            .get("seconds")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| Error::Reference(format!("unexpected reply {reply}")))
    }

    /// The next JSON line on stdout.
    fn reply(&mut self) -> Result<serde_json::Value> {
        match self.lines.recv_timeout(REPLY_TIMEOUT) {
            Ok(Ok(line)) => serde_json::from_str(line.trim())
                .map_err(|e| Error::Reference(format!("unreadable reply {line:?}: {e}"))),
            Ok(Err(e)) => Err(self.died(&e.to_string())),
            Err(RecvTimeoutError::Disconnected) => Err(self.died("it exited")),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(self.died(&format!(
                    "no answer in {} s, stopped it",
                    REPLY_TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// An error that says why the process stopped answering: its exit status and the last
    /// line it wrote to stderr (a Python traceback ends with the exception).
    fn died(&mut self, what: &str) -> Error {
        // Give the process a moment to finish writing and exit.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s.to_string(),
            _ => "still running".into(),
        };
        let last = self
            .stderr
            .lock()
            .ok()
            .and_then(|t| {
                t.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        Error::Reference(format!("{what} ({status}): {last}"))
    }
}

impl Side for Reference {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn once(&mut self, m: Measure) -> Result<f64> {
        Reference::once(self, m)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        // Closing stdin ends its loop; kill in case it is stuck in a measurement.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
