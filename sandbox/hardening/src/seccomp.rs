//! seccomp-bpf allow-lists, one per thread role, kept as data in `policies/seccomp/`.
//!
//! Two roles, modelled on Firecracker's per-thread filters:
//! - `daemon`: installed on every thread at once (`SECCOMP_FILTER_FLAG_TSYNC`) once start-up
//!   is over; threads created later inherit it. It allows what serving needs and nothing
//!   that opens files, starts processes or reaches a network.
//! - `worker`: stacked on each wasm worker thread as it starts (the kernel applies both, so
//!   the tighter wins): workers never touch sockets.
//! - `refuse`: installed on every thread with `daemon`; it answers the calls it lists (opening
//!   files) with `EACCES` instead of killing the process, for library code that tries and
//!   copes (glibc's malloc reads a `/proc` file when it first trims a thread's heap). The
//!   kernel takes the strictest answer of all filters, so a call must be allowed by the
//!   allow-lists to get this softer refusal at all.
//!
//! The default action is to trap: a SIGSYS handler names the refused call on stderr and
//! ends the process (systemd restarts it). A filter that stops a legitimate call is a bug in
//! the policy file; `hardening.seccomp = false` exists to diagnose one.

use std::{collections::HashMap, io::Write};

use seccompiler::{BpfProgram, TargetArch};

use super::HardeningError;

/// The policy compiled into the binary for this architecture.
#[cfg(target_arch = "x86_64")]
const POLICY: Option<&str> = Some(include_str!("../../../policies/seccomp/x86_64.json"));
#[cfg(target_arch = "x86_64")]
const ARCH: Option<TargetArch> = Some(TargetArch::x86_64);
#[cfg(not(target_arch = "x86_64"))]
const POLICY: Option<&str> = None;
#[cfg(not(target_arch = "x86_64"))]
const ARCH: Option<TargetArch> = None;

/// Compiled filters by role.
pub struct Filters {
    by_role: HashMap<String, BpfProgram>,
}

impl Filters {
    /// Compiles the built-in policy (or `text`, a policy file's contents).
    pub fn compile(text: Option<&str>) -> Result<Self, HardeningError> {
        let (Some(policy), Some(arch)) = (text.or(POLICY), ARCH) else {
            return Err(HardeningError::Seccomp(
                "no seccomp policy for this architecture (policies/seccomp/ has x86_64 only); \
                 set hardening.seccomp = false to run without one"
                    .into(),
            ));
        };
        let by_role = seccompiler::compile_from_json(policy.as_bytes(), arch)
            .map_err(|e| HardeningError::Seccomp(format!("compiling the policy: {e}")))?;
        for role in ["daemon", "worker", "refuse"] {
            if !by_role.contains_key(role) {
                return Err(HardeningError::Seccomp(format!(
                    "the policy has no {role:?} filter"
                )));
            }
        }
        Ok(Filters { by_role })
    }

    fn role(&self, role: &str) -> Result<&BpfProgram, HardeningError> {
        self.by_role
            .get(role)
            .ok_or_else(|| HardeningError::Seccomp(format!("no {role:?} filter")))
    }

    /// Installs the `daemon` and `refuse` filters on every thread of the process.
    pub fn apply_to_process(&self) -> Result<(), HardeningError> {
        install_sigsys_handler()?;
        for role in ["daemon", "refuse"] {
            seccompiler::apply_filter_all_threads(self.role(role)?).map_err(|e| {
                HardeningError::Seccomp(format!("installing the {role} filter: {e}"))
            })?;
        }
        Ok(())
    }

    /// Puts the calling thread, and only it, under exactly the filters a daemon worker runs
    /// under (`daemon` and `refuse`, which the daemon installs process-wide, then `worker`),
    /// with the SIGSYS handler that names a refused call. For harnesses that run the engine
    /// in a process that keeps its own freedoms: the fuzzers, whose engine would otherwise
    /// never meet the lock-down that the served daemon's guests meet.
    pub fn apply_worker_lockdown_to_this_thread(&self) -> Result<(), HardeningError> {
        install_sigsys_handler()?;
        ["daemon", "refuse", "worker"]
            .into_iter()
            .try_for_each(|role| self.apply_to_this_thread(role))
    }

    /// Installs the `worker` filter on the calling thread.
    pub fn apply_to_this_thread(&self, role: &str) -> Result<(), HardeningError> {
        seccompiler::apply_filter(self.role(role)?)
            .map_err(|e| HardeningError::Seccomp(format!("installing the {role} filter: {e}")))
    }
}

/// Reports a refused system call and ends the process. Runs in a signal handler: only
/// async-signal-safe calls (`write`, `_exit`), formatting into a stack buffer.
extern "C" fn on_sigsys(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // For SIGSYS the kernel fills `si_syscall` (an int after the 8-byte `si_call_addr`, at
    // offset 24 of siginfo_t on 64-bit Linux); libc does not expose it.
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let syscall = unsafe { *(info as *const u8).add(24).cast::<i32>() };
    let mut buffer = [0u8; 160];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = writeln!(
        cursor,
        "azr-sandbox: seccomp refused system call {syscall} (see policies/seccomp/); exiting"
    );
    let len = cursor.position() as usize;
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer lives on this stack.
    unsafe {
        libc::write(2, buffer.as_ptr().cast(), len);
    }
    // Name what was running, so that the program that found the bug can be reported.
    crate::crash::report_running();
    // SAFETY: as above.
    unsafe {
        libc::_exit(128 + libc::SIGSYS);
    }
}

fn install_sigsys_handler() -> Result<(), HardeningError> {
    // SAFETY: a plain sigaction with a handler that only makes async-signal-safe calls.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(HardeningError::Seccomp(format!(
            "installing the SIGSYS handler: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_compiles_with_every_role() {
        let filters = Filters::compile(None).expect("policies/seccomp/x86_64.json compiles");
        for role in ["daemon", "worker", "refuse"] {
            assert!(filters.by_role.contains_key(role), "{role}");
        }
    }

    #[test]
    fn a_policy_without_the_worker_role_is_refused() {
        let policy =
            r#"{"daemon": {"default_action": "trap", "filter_action": "allow", "filter": []}}"#;
        assert!(Filters::compile(Some(policy)).is_err());
    }
}
