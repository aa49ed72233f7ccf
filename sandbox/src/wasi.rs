//! The WASI preview-1 interface the guest sees at run time, answered on the calling thread.
//!
//! Why not `wasmtime-wasi`'s: its p1 functions that touch descriptors (`fd_write`, `fd_read`,
//! `poll_oneoff`, `path_open`, …) are async, and its synchronous linker runs them on a tokio
//! runtime that it creates on first use. A guest that wrote to stderr for the first time
//! after the daemon's lock-down (any RustPython panic message, the allocator's
//! out-of-memory message) made that runtime call `epoll_create1` under seccomp, and the
//! process died. Here every function is a plain host function that touches only the
//! instance's memory and its [`GuestIo`]: no system call, no thread, no descriptor, so no
//! guest can reach anything the lock-down forbids, and the interface stays as small as what
//! the guest is granted (nothing).
//!
//! What the guest gets:
//! - descriptors 0, 1 and 2 only: stdin is empty, and what the guest's native code writes to
//!   stdout or stderr (Python's `print` is captured inside the guest; this is panics and
//!   allocation failures) is kept, up to [`NATIVE_OUTPUT_CAP`] bytes, for the fault message;
//! - no preopened directories, so every path call fails with `EBADF` (`ENOTDIR` on stdio);
//! - the deterministic clocks of [`crate::determinism`]; `poll_oneoff` (`time.sleep`) never
//!   blocks: it moves both clocks forward by the time asked for and returns at once;
//! - seeded random bytes; no arguments, no environment, no sockets.
//!
//! Every one of the 46 preview-1 functions is defined, so any guest links; the test
//! `every_function_the_guest_imports_is_answered_here` pins that the guest imports nothing
//! else.

use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use wasmtime::{Caller, Extern, Linker};

use crate::determinism::{EPOCH_SECS, SEED, SteppingClock, TICK};

/// The module name of WASI preview 1.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// Bytes of the guest's native stdout/stderr kept per program (the rest is counted, not kept).
pub const NATIVE_OUTPUT_CAP: usize = 4096;
/// Most random bytes one `random_get` hands out (larger asks get `EINVAL`): the host does
/// this work without fuel, so it must stay small.
const MAX_RANDOM_BYTES: u32 = 1 << 20;
/// Most buffers in one `fd_read`/`fd_write` (POSIX's `IOV_MAX`).
const MAX_IOVS: u32 = 1024;
/// Most subscriptions in one `poll_oneoff`.
const MAX_SUBSCRIPTIONS: u32 = 1024;

/// WASI `errno` values used here.
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
    pub const NOTDIR: i32 = 54;
    pub const NOTSOCK: i32 = 57;
    pub const NOTSUP: i32 = 58;
    pub const OVERFLOW: i32 = 61;
    pub const SPIPE: i32 = 68;
}

/// `filetype::character_device`.
const CHARACTER_DEVICE: u8 = 2;
/// Rights bits (`rights` in the witx).
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const RIGHT_FD_FILESTAT_GET: u64 = 1 << 21;
const RIGHT_POLL_FD_READWRITE: u64 = 1 << 27;

/// Clock ids.
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;

/// Event types and flags of `poll_oneoff`.
const EVENT_CLOCK: u8 = 0;
const EVENT_FD_READ: u8 = 1;
const EVENT_FD_WRITE: u8 = 2;
const SUBSCRIPTION_CLOCK_ABSTIME: u16 = 1;
const EVENT_FD_READWRITE_HANGUP: u16 = 1;

/// What an instance's WASI functions read and write on the host side. A new one (clocks and
/// random stream from their start) for every program; every item of a program starts from
/// [`GuestIo::for_item`] of the one its program was prepared with.
pub struct GuestIo {
    wall: SteppingClock,
    monotonic: SteppingClock,
    /// Time the guest "slept" through `poll_oneoff`, added to both clocks.
    slept: Duration,
    random: StdRng,
    native_output: Vec<u8>,
    native_output_len: usize,
}

impl Default for GuestIo {
    fn default() -> Self {
        GuestIo {
            wall: SteppingClock::default(),
            monotonic: SteppingClock::default(),
            slept: Duration::ZERO,
            random: StdRng::seed_from_u64(SEED),
            native_output: Vec::new(),
            native_output_len: 0,
        }
    }
}

impl GuestIo {
    /// What an item of a prepared program starts with: the clocks where the preparation
    /// left them, the random stream from its start, no output. The same for every item.
    pub fn for_item(&self) -> GuestIo {
        GuestIo {
            wall: self.wall.clone(),
            monotonic: self.monotonic.clone(),
            slept: self.slept,
            ..GuestIo::default()
        }
    }

    /// What the guest's native code wrote to stdout/stderr (capped), as text, with a note of
    /// how much was left out; `None` when it wrote nothing.
    pub fn native_output(&self) -> Option<String> {
        if self.native_output_len == 0 {
            return None;
        }
        // One line: a panic message spreads over several, and its advice to set
        // RUST_BACKTRACE means nothing to the caller.
        let mut text = String::from_utf8_lossy(&self.native_output)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect::<Vec<_>>()
            .join(" ");
        let dropped = self.native_output_len - self.native_output.len();
        if dropped > 0 {
            text.push_str(&format!(" [… {dropped} more bytes]"));
        }
        Some(text)
    }

    fn write_native(&mut self, bytes: &[u8]) {
        let room = NATIVE_OUTPUT_CAP.saturating_sub(self.native_output.len());
        self.native_output
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.native_output_len = self.native_output_len.saturating_add(bytes.len());
    }

    /// A reading of `clock` in nanoseconds (`None` for a clock the guest does not have).
    fn now(&self, clock: u32) -> Option<u64> {
        self.read(clock, SteppingClock::step)
    }

    /// The time `clock` would read now, without counting as a reading.
    fn peek(&self, clock: u32) -> Option<u64> {
        self.read(clock, SteppingClock::elapsed)
    }

    fn read(&self, clock: u32, reading: fn(&SteppingClock) -> Duration) -> Option<u64> {
        let (start, stepping) = match clock {
            CLOCK_REALTIME => (Duration::from_secs(EPOCH_SECS), &self.wall),
            CLOCK_MONOTONIC => (Duration::ZERO, &self.monotonic),
            _ => return None,
        };
        let t = start
            .saturating_add(reading(stepping))
            .saturating_add(self.slept);
        Some(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Store data that carries a [`GuestIo`].
pub trait HasGuestIo {
    fn guest_io(&mut self) -> &mut GuestIo;
}

type Result<T> = std::result::Result<T, i32>;

/// Linear memory and the store's data, borrowed together for one call.
fn memory<'a, T: HasGuestIo>(caller: &'a mut Caller<'_, T>) -> Result<(&'a mut [u8], &'a mut T)> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory.data_and_store_mut(caller)),
        _ => Err(errno::FAULT),
    }
}

fn bytes(memory: &[u8], ptr: u32, len: u32) -> Result<&[u8]> {
    let start = ptr as usize;
    memory
        .get(start..start.checked_add(len as usize).ok_or(errno::FAULT)?)
        .ok_or(errno::FAULT)
}

fn bytes_mut(memory: &mut [u8], ptr: u32, len: u32) -> Result<&mut [u8]> {
    let start = ptr as usize;
    memory
        .get_mut(start..start.checked_add(len as usize).ok_or(errno::FAULT)?)
        .ok_or(errno::FAULT)
}

fn read_u32(memory: &[u8], ptr: u32) -> Result<u32> {
    let b = bytes(memory, ptr, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(memory: &[u8], ptr: u32) -> Result<u64> {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes(memory, ptr, 8)?);
    Ok(u64::from_le_bytes(b))
}

fn write(memory: &mut [u8], ptr: u32, value: &[u8]) -> Result<()> {
    bytes_mut(memory, ptr, value.len() as u32)?.copy_from_slice(value);
    Ok(())
}

fn write_u32(memory: &mut [u8], ptr: u32, value: u32) -> Result<()> {
    write(memory, ptr, &value.to_le_bytes())
}

fn write_u64(memory: &mut [u8], ptr: u32, value: u64) -> Result<()> {
    write(memory, ptr, &value.to_le_bytes())
}

fn errno_of(result: Result<()>) -> i32 {
    match result {
        Ok(()) => errno::SUCCESS,
        Err(e) => e,
    }
}

fn is_stdio(fd: u32) -> bool {
    fd <= 2
}

/// The answer for a call on a descriptor that only stdio could take: `on_stdio` there,
/// `EBADF` on any other (nothing else is open).
fn stdio_or_badf(fd: u32, on_stdio: i32) -> i32 {
    if is_stdio(fd) { on_stdio } else { errno::BADF }
}

/// The `(ptr, len)` buffers of an iovec array.
fn iovecs(memory: &[u8], iovs: u32, count: u32) -> Result<Vec<(u32, u32)>> {
    if count > MAX_IOVS {
        return Err(errno::INVAL);
    }
    (0..count)
        .map(|i| {
            let at = iovs.checked_add(i * 8).ok_or(errno::FAULT)?;
            Ok((read_u32(memory, at)?, read_u32(memory, at + 4)?))
        })
        .collect()
}

/// Defines every WASI preview-1 function in `linker`.
pub fn add_to_linker<T: HasGuestIo + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    // Arguments and environment: none.
    linker.func_wrap(MODULE, "args_get", |_: u32, _: u32| errno::SUCCESS)?;
    linker.func_wrap(MODULE, "environ_get", |_: u32, _: u32| errno::SUCCESS)?;
    for name in ["args_sizes_get", "environ_sizes_get"] {
        linker.func_wrap(
            MODULE,
            name,
            |mut caller: Caller<'_, T>, count: u32, size: u32| {
                errno_of(memory(&mut caller).and_then(|(m, _)| {
                    write_u32(m, count, 0)?;
                    write_u32(m, size, 0)
                }))
            },
        )?;
    }

    // Clocks: the deterministic ones.
    linker.func_wrap(
        MODULE,
        "clock_res_get",
        |mut caller: Caller<'_, T>, id: u32, out: u32| {
            errno_of(memory(&mut caller).and_then(|(m, _)| match id {
                CLOCK_REALTIME | CLOCK_MONOTONIC => write_u64(m, out, TICK.as_nanos() as u64),
                _ => Err(errno::BADF),
            }))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut caller: Caller<'_, T>, id: u32, _precision: u64, out: u32| {
            errno_of(memory(&mut caller).and_then(|(m, state)| {
                let now = state.guest_io().now(id).ok_or(errno::BADF)?;
                write_u64(m, out, now)
            }))
        },
    )?;

    // Descriptors: 0, 1 and 2 exist; nothing else does.
    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut caller: Caller<'_, T>, fd: u32, iovs: u32, count: u32, written: u32| {
            errno_of(memory(&mut caller).and_then(|(m, state)| {
                if fd != 1 && fd != 2 {
                    return Err(stdio_or_badf(fd, errno::BADF));
                }
                let mut total: u32 = 0;
                for (ptr, len) in iovecs(m, iovs, count)? {
                    state.guest_io().write_native(bytes(m, ptr, len)?);
                    total = total.checked_add(len).ok_or(errno::OVERFLOW)?;
                }
                write_u32(m, written, total)
            }))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_pwrite",
        |fd: u32, _: u32, _: u32, _: u64, _: u32| stdio_or_badf(fd, errno::SPIPE),
    )?;
    linker.func_wrap(
        MODULE,
        "fd_read",
        |mut caller: Caller<'_, T>, fd: u32, iovs: u32, count: u32, read: u32| {
            errno_of(memory(&mut caller).and_then(|(m, _)| {
                if fd != 0 {
                    return Err(stdio_or_badf(fd, errno::BADF));
                }
                iovecs(m, iovs, count)?;
                // Stdin is empty: end of file at once.
                write_u32(m, read, 0)
            }))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_pread",
        |fd: u32, _: u32, _: u32, _: u64, _: u32| stdio_or_badf(fd, errno::SPIPE),
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_get",
        |mut caller: Caller<'_, T>, fd: u32, out: u32| {
            errno_of(memory(&mut caller).and_then(|(m, _)| {
                if !is_stdio(fd) {
                    return Err(errno::BADF);
                }
                let rights = if fd == 0 {
                    RIGHT_FD_READ
                } else {
                    RIGHT_FD_WRITE
                } | RIGHT_POLL_FD_READWRITE
                    | RIGHT_FD_FILESTAT_GET;
                let mut stat = [0u8; 24];
                stat[0] = CHARACTER_DEVICE;
                stat[8..16].copy_from_slice(&rights.to_le_bytes());
                write(m, out, &stat)
            }))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_get",
        |mut caller: Caller<'_, T>, fd: u32, out: u32| {
            errno_of(memory(&mut caller).and_then(|(m, _)| {
                if !is_stdio(fd) {
                    return Err(errno::BADF);
                }
                let mut stat = [0u8; 64];
                stat[16] = CHARACTER_DEVICE;
                write(m, out, &stat)
            }))
        },
    )?;
    linker.func_wrap(MODULE, "fd_fdstat_set_flags", |fd: u32, _: u32| {
        stdio_or_badf(fd, errno::NOTSUP)
    })?;
    linker.func_wrap(MODULE, "fd_fdstat_set_rights", |fd: u32, _: u64, _: u64| {
        stdio_or_badf(fd, errno::NOTSUP)
    })?;
    // Stdio stays open: closing it succeeds and changes nothing.
    linker.func_wrap(MODULE, "fd_close", |fd: u32| {
        stdio_or_badf(fd, errno::SUCCESS)
    })?;
    for name in ["fd_sync", "fd_datasync"] {
        linker.func_wrap(MODULE, name, |fd: u32| stdio_or_badf(fd, errno::INVAL))?;
    }
    linker.func_wrap(MODULE, "fd_advise", |fd: u32, _: u64, _: u64, _: u32| {
        stdio_or_badf(fd, errno::SPIPE)
    })?;
    linker.func_wrap(MODULE, "fd_allocate", |fd: u32, _: u64, _: u64| {
        stdio_or_badf(fd, errno::SPIPE)
    })?;
    linker.func_wrap(MODULE, "fd_filestat_set_size", |fd: u32, _: u64| {
        stdio_or_badf(fd, errno::INVAL)
    })?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_set_times",
        |fd: u32, _: u64, _: u64, _: u32| stdio_or_badf(fd, errno::NOTSUP),
    )?;
    linker.func_wrap(MODULE, "fd_seek", |fd: u32, _: i64, _: u32, _: u32| {
        stdio_or_badf(fd, errno::SPIPE)
    })?;
    linker.func_wrap(MODULE, "fd_tell", |fd: u32, _: u32| {
        stdio_or_badf(fd, errno::SPIPE)
    })?;
    linker.func_wrap(
        MODULE,
        "fd_readdir",
        |fd: u32, _: u32, _: u32, _: u64, _: u32| stdio_or_badf(fd, errno::NOTDIR),
    )?;
    linker.func_wrap(MODULE, "fd_renumber", |from: u32, to: u32| {
        if is_stdio(from) && is_stdio(to) {
            errno::NOTSUP
        } else {
            errno::BADF
        }
    })?;
    // No preopened directories.
    linker.func_wrap(MODULE, "fd_prestat_get", |_: u32, _: u32| errno::BADF)?;
    linker.func_wrap(MODULE, "fd_prestat_dir_name", |_: u32, _: u32, _: u32| {
        errno::BADF
    })?;

    // Paths: relative to a directory descriptor, and there is none.
    for name in [
        "path_create_directory",
        "path_remove_directory",
        "path_unlink_file",
    ] {
        linker.func_wrap(MODULE, name, |fd: u32, _: u32, _: u32| {
            stdio_or_badf(fd, errno::NOTDIR)
        })?;
    }
    linker.func_wrap(
        MODULE,
        "path_filestat_get",
        |fd: u32, _: u32, _: u32, _: u32, _: u32| stdio_or_badf(fd, errno::NOTDIR),
    )?;
    linker.func_wrap(
        MODULE,
        "path_filestat_set_times",
        |fd: u32, _: u32, _: u32, _: u32, _: u64, _: u64, _: u32| stdio_or_badf(fd, errno::NOTDIR),
    )?;
    linker.func_wrap(
        MODULE,
        "path_link",
        |fd: u32, _: u32, _: u32, _: u32, _: u32, _: u32, _: u32| stdio_or_badf(fd, errno::NOTDIR),
    )?;
    linker.func_wrap(
        MODULE,
        "path_open",
        |fd: u32, _: u32, _: u32, _: u32, _: u32, _: u64, _: u64, _: u32, _: u32| {
            stdio_or_badf(fd, errno::NOTDIR)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_readlink",
        |fd: u32, _: u32, _: u32, _: u32, _: u32, _: u32| stdio_or_badf(fd, errno::NOTDIR),
    )?;
    linker.func_wrap(
        MODULE,
        "path_rename",
        |fd: u32, _: u32, _: u32, _: u32, _: u32, _: u32| stdio_or_badf(fd, errno::NOTDIR),
    )?;
    linker.func_wrap(
        MODULE,
        "path_symlink",
        |_: u32, _: u32, fd: u32, _: u32, _: u32| stdio_or_badf(fd, errno::NOTDIR),
    )?;

    linker.func_wrap(MODULE, "poll_oneoff", poll_oneoff::<T>)?;

    // Processes, signals, scheduling.
    linker.func_wrap(MODULE, "proc_exit", |code: u32| -> wasmtime::Result<()> {
        Err(wasmtime::format_err!("the guest exited with status {code}"))
    })?;
    linker.func_wrap(MODULE, "proc_raise", |_: u32| errno::NOTSUP)?;
    linker.func_wrap(MODULE, "sched_yield", || errno::SUCCESS)?;

    linker.func_wrap(
        MODULE,
        "random_get",
        |mut caller: Caller<'_, T>, buf: u32, len: u32| {
            errno_of(memory(&mut caller).and_then(|(m, state)| {
                if len > MAX_RANDOM_BYTES {
                    return Err(errno::INVAL);
                }
                let out = bytes_mut(m, buf, len)?;
                // Byte by byte from the seeded stream, as wasmtime-wasi draws them, so a
                // program sees the same bytes as under the snapshot's WASI.
                for (b, r) in out
                    .iter_mut()
                    .zip((&mut state.guest_io().random).random_iter::<u8>())
                {
                    *b = r;
                }
                Ok(())
            }))
        },
    )?;

    // Sockets: none.
    linker.func_wrap(MODULE, "sock_accept", |fd: u32, _: u32, _: u32| {
        stdio_or_badf(fd, errno::NOTSOCK)
    })?;
    linker.func_wrap(
        MODULE,
        "sock_recv",
        |fd: u32, _: u32, _: u32, _: u32, _: u32, _: u32| stdio_or_badf(fd, errno::NOTSOCK),
    )?;
    linker.func_wrap(
        MODULE,
        "sock_send",
        |fd: u32, _: u32, _: u32, _: u32, _: u32| stdio_or_badf(fd, errno::NOTSOCK),
    )?;
    linker.func_wrap(MODULE, "sock_shutdown", |fd: u32, _: u32| {
        stdio_or_badf(fd, errno::NOTSOCK)
    })?;
    Ok(())
}

/// `poll_oneoff`: never blocks. Descriptor subscriptions are ready at once (stdin at end of
/// file, stdout/stderr writable); with none, the earliest clock fires and both clocks move
/// forward to it, so `time.sleep(n)` returns at once and the clock reads `n` seconds later.
fn poll_oneoff<T: HasGuestIo>(
    mut caller: Caller<'_, T>,
    subscriptions: u32,
    events: u32,
    count: u32,
    written: u32,
) -> i32 {
    const SUBSCRIPTION: u32 = 48;
    const EVENT: u32 = 32;
    errno_of(memory(&mut caller).and_then(|(m, state)| {
        if count == 0 || count > MAX_SUBSCRIPTIONS {
            return Err(errno::INVAL);
        }
        let io = state.guest_io();
        struct Sub {
            userdata: u64,
            kind: u8,
            /// Clock: nanoseconds from now until it fires (`None`: unknown clock).
            wait: Option<u64>,
            fd: u32,
        }
        let mut subs = Vec::with_capacity(count as usize);
        for i in 0..count {
            let at = subscriptions
                .checked_add(i * SUBSCRIPTION)
                .ok_or(errno::FAULT)?;
            let raw = bytes(m, at, SUBSCRIPTION)?;
            let userdata = read_u64(raw, 0)?;
            let kind = raw[8];
            let mut sub = Sub {
                userdata,
                kind,
                wait: None,
                fd: 0,
            };
            match kind {
                EVENT_CLOCK => {
                    let clock = read_u32(raw, 16)?;
                    let timeout = read_u64(raw, 24)?;
                    let flags = u16::from_le_bytes([raw[40], raw[41]]);
                    sub.wait = io.peek(clock).map(|now| {
                        if flags & SUBSCRIPTION_CLOCK_ABSTIME != 0 {
                            timeout.saturating_sub(now)
                        } else {
                            timeout
                        }
                    });
                }
                EVENT_FD_READ | EVENT_FD_WRITE => sub.fd = read_u32(raw, 16)?,
                _ => return Err(errno::INVAL),
            }
            subs.push(sub);
        }
        let any_fd = subs.iter().any(|s| s.kind != EVENT_CLOCK);
        let earliest = subs
            .iter()
            .filter(|s| s.kind == EVENT_CLOCK)
            .filter_map(|s| s.wait)
            .min();
        if !any_fd && let Some(wait) = earliest {
            io.slept = io.slept.saturating_add(Duration::from_nanos(wait));
        }
        let mut n: u32 = 0;
        for sub in &subs {
            // (errno, fd_readwrite flags); `nbytes` stays 0: stdin is empty, and how much
            // stdout could take is not promised.
            let (error, flags): (i32, u16) = match sub.kind {
                EVENT_CLOCK => match sub.wait {
                    None => (errno::INVAL, 0),
                    Some(wait) if !any_fd && Some(wait) == earliest => (errno::SUCCESS, 0),
                    Some(_) => continue,
                },
                EVENT_FD_READ if sub.fd == 0 => (errno::SUCCESS, EVENT_FD_READWRITE_HANGUP),
                EVENT_FD_WRITE if sub.fd == 1 || sub.fd == 2 => (errno::SUCCESS, 0),
                _ => (errno::BADF, 0),
            };
            let mut event = [0u8; EVENT as usize];
            event[0..8].copy_from_slice(&sub.userdata.to_le_bytes());
            event[8..10].copy_from_slice(&(error as u16).to_le_bytes());
            event[10] = sub.kind;
            event[24..26].copy_from_slice(&flags.to_le_bytes());
            write(
                m,
                events.checked_add(n * EVENT).ok_or(errno::FAULT)?,
                &event,
            )?;
            n += 1;
        }
        write_u32(m, written, n)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_output_is_capped_and_counts_what_it_dropped() {
        let mut io = GuestIo::default();
        assert_eq!(io.native_output(), None);
        io.write_native(
            b"\nthread panicked at x:\nwhy\nnote: run with `RUST_BACKTRACE=1` to see\n",
        );
        assert_eq!(
            io.native_output().as_deref(),
            Some("thread panicked at x: why")
        );
        io.write_native(&vec![b'y'; NATIVE_OUTPUT_CAP]);
        let text = io.native_output().expect("output");
        assert!(text.ends_with("[… 68 more bytes]"), "{text}");
    }

    #[test]
    fn sleeping_moves_both_clocks_without_counting_a_reading() {
        let mut io = GuestIo::default();
        let wall = io.peek(CLOCK_REALTIME).unwrap();
        assert_eq!(wall, EPOCH_SECS * 1_000_000_000);
        io.slept += Duration::from_secs(5);
        assert_eq!(io.peek(CLOCK_MONOTONIC), Some(5_000_000_000));
        assert_eq!(io.now(CLOCK_MONOTONIC), Some(5_000_000_000));
        assert_eq!(
            io.now(CLOCK_MONOTONIC),
            Some(5_000_000_000 + TICK.as_nanos() as u64)
        );
        assert_eq!(io.now(7), None);
    }
}
