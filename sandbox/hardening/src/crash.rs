//! What a dying daemon says about the programs it was running.
//!
//! No program should be able to end the daemon; if one does (a bug nobody has found yet), the
//! report is only useful if it names the program. Each worker thread publishes a short label
//! of the program it is running (a hash, its size and its first characters) in a fixed
//! static slot; the seccomp SIGSYS handler and the panic hook print every non-empty slot.
//! The slots are plain atomics, so the signal handler reads them without locks or
//! allocation; a label being rewritten at the moment of the crash may come out torn, which
//! a crash report can live with.

use std::{
    cell::Cell,
    fmt::Write as _,
    hash::{DefaultHasher, Hash, Hasher},
    io::Write,
    sync::atomic::{AtomicU8, AtomicUsize, Ordering},
};

/// Slots for this many worker threads; later ones go unlabelled.
const SLOTS: usize = 64;
/// Bytes of one label.
const LABEL: usize = 240;
/// Characters of the program's text that a label shows.
const EXCERPT_CHARS: usize = 120;

struct Slot {
    len: AtomicUsize,
    bytes: [AtomicU8; LABEL],
}

impl Slot {
    const fn new() -> Self {
        Slot {
            len: AtomicUsize::new(0),
            bytes: [const { AtomicU8::new(0) }; LABEL],
        }
    }
}

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot, claimed on its first label.
    static MINE: Cell<Option<usize>> = const { Cell::new(None) };
}

fn my_slot() -> Option<&'static Slot> {
    MINE.with(|mine| {
        if mine.get().is_none() {
            let n = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
            mine.set(Some(n));
        }
        mine.get().and_then(|n| TABLE.get(n))
    })
}

/// Records that this thread now runs `program` (until [`finished`]). On every program's
/// path, so it writes the label straight into the slot: no allocation.
pub fn running(program: &str) {
    let Some(slot) = my_slot() else { return };
    let mut hasher = DefaultHasher::new();
    program.hash(&mut hasher);
    slot.len.store(0, Ordering::Release);
    let mut label = SlotWriter { slot, len: 0 };
    let excerpt = program
        .char_indices()
        .nth(EXCERPT_CHARS)
        .map_or(program, |(i, _)| &program[..i]);
    let _ = write!(
        label,
        "program {:016x} ({} bytes): {}{}",
        hasher.finish(),
        program.len(),
        excerpt.escape_debug(),
        if excerpt.len() < program.len() {
            "…"
        } else {
            ""
        }
    );
    slot.len.store(label.len, Ordering::Release);
}

/// Writes into a slot's bytes, silently dropping what does not fit.
struct SlotWriter<'a> {
    slot: &'a Slot,
    len: usize,
}

impl std::fmt::Write for SlotWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for (cell, b) in self.slot.bytes[self.len..].iter().zip(s.as_bytes()) {
            cell.store(*b, Ordering::Relaxed);
            self.len += 1;
        }
        Ok(())
    }
}

/// Clears this thread's label.
pub fn finished() {
    if let Some(slot) = MINE.with(Cell::get).and_then(|n| TABLE.get(n)) {
        slot.len.store(0, Ordering::Release);
    }
}

/// Writes one line per running program to stderr. Async-signal-safe: only `write(2)` on a
/// stack buffer.
pub fn report_running() {
    let mut any = false;
    for (i, slot) in TABLE.iter().enumerate() {
        let len = slot.len.load(Ordering::Acquire).min(LABEL);
        if len == 0 {
            continue;
        }
        any = true;
        let mut line = [0u8; LABEL + 64];
        let mut cursor = std::io::Cursor::new(&mut line[..]);
        let _ = write!(cursor, "azr-sandbox: worker {i} was running ");
        let mut at = cursor.position() as usize;
        for cell in &slot.bytes[..len] {
            line[at] = cell.load(Ordering::Relaxed);
            at += 1;
        }
        line[at] = b'\n';
        write_stderr(&line[..=at]);
    }
    if !any {
        write_stderr(b"azr-sandbox: no program was running\n");
    }
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: write(2) is async-signal-safe; the buffer outlives the call.
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
}

/// Makes a panic anywhere in the process also name the running programs (the default hook's
/// message comes first).
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        report_running();
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_of_this_thread() -> String {
        let slot = my_slot().expect("slot");
        let len = slot.len.load(Ordering::Acquire);
        slot.bytes[..len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed) as char)
            .collect()
    }

    #[test]
    fn a_label_names_the_program_by_hash_size_and_first_characters() {
        std::thread::spawn(|| {
            let program = "def f(x):\n    return 'é' * 2";
            running(program);
            let label = label_of_this_thread();
            assert!(label.starts_with("program "), "{label}");
            let shown = format!("({} bytes): def f(x):\\n    return", program.len());
            assert!(label.contains(&shown), "{label}");
            finished();
            assert_eq!(label_of_this_thread(), "");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_long_program_is_cut_to_the_label() {
        std::thread::spawn(|| {
            running(&"x = 1\n".repeat(1000));
            let slot = my_slot().expect("slot");
            assert!(slot.len.load(Ordering::Acquire) <= LABEL);
        })
        .join()
        .expect("thread");
    }
}
