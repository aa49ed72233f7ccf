//! Locking the daemon process down at start-up, in the order that keeps each step possible:
//! rlimits, no-new-privileges, dropping root, then seccomp filters (see `seccomp`).
//!
//! None of this needs root, cgroups or namespaces: as an ordinary user inside an unprivileged
//! container every step still applies (dropping root is then simply not needed).
//!
//! `crash` is what the process says if it dies anyway: the programs its workers were running,
//! printed by the seccomp SIGSYS handler and the panic hook.

pub mod crash;
pub mod seccomp;

use nix::{
    sys::resource::{Resource, setrlimit},
    unistd::{Gid, Group, Uid, User},
};

use serde::{Deserialize, Serialize};

/// How the daemon locks itself down at start-up, in this order: rlimits, no-new-privileges,
/// dropping to `user`/`group`, then the seccomp filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardeningConfig {
    /// Limit on open file descriptors (`RLIMIT_NOFILE`); bounds what a leak could take.
    pub max_open_files: u64,
    /// Allow core dumps (`RLIMIT_CORE`); off, as a dump would hold model-written programs.
    pub core_dumps: bool,
    /// When started as root, switch to this user (name or numeric uid); empty: stay root
    /// (and warn). Ignored when not root.
    pub user: String,
    /// Group to switch to with `user`; empty: the user's primary group.
    pub group: String,
    /// Install the seccomp-bpf filters of `policies/seccomp/` (compiled in). Turning this off
    /// is for diagnosing a filter that stops a legitimate call, never for production.
    pub seccomp: bool,
}

impl Default for HardeningConfig {
    fn default() -> Self {
        HardeningConfig {
            max_open_files: 4096,
            core_dumps: false,
            user: String::new(),
            group: String::new(),
            seccomp: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("setting {what}: {source}")]
    Rlimit {
        what: &'static str,
        source: nix::Error,
    },
    #[error("setting no-new-privileges: {0}")]
    NoNewPrivs(nix::Error),
    #[error("unknown {kind} {name:?}")]
    UnknownAccount { kind: &'static str, name: String },
    #[error("dropping privileges to {user}: {source}")]
    Drop { user: String, source: nix::Error },
    #[error("still able to regain root after dropping privileges")]
    RegainedRoot,
    #[error("seccomp: {0}")]
    Seccomp(String),
}

/// Resource limits for the whole process. The memory of model-written programs is capped
/// per instance by the engine; these bound what the daemon as a whole can hold.
pub fn apply_rlimits(config: &HardeningConfig) -> Result<(), HardeningError> {
    let files = config.max_open_files;
    setrlimit(Resource::RLIMIT_NOFILE, files, files).map_err(|source| HardeningError::Rlimit {
        what: "RLIMIT_NOFILE",
        source,
    })?;
    if !config.core_dumps {
        setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|source| HardeningError::Rlimit {
            what: "RLIMIT_CORE",
            source,
        })?;
    }
    Ok(())
}

/// `PR_SET_NO_NEW_PRIVS`: no exec can ever grant privileges again (and seccomp filters may
/// then be installed without CAP_SYS_ADMIN). Threads started later inherit it.
pub fn set_no_new_privs() -> Result<(), HardeningError> {
    nix::sys::prctl::set_no_new_privs().map_err(HardeningError::NoNewPrivs)
}

/// The account to switch to, resolved while `/etc/passwd` can still be read.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// Resolves `user`/`group` of the config when the process runs as root; `None` when there is
/// nothing to drop (not root, or no user configured: the caller warns about the latter).
pub fn resolve_account(config: &HardeningConfig) -> Result<Option<Account>, HardeningError> {
    if !Uid::effective().is_root() || config.user.is_empty() {
        return Ok(None);
    }
    let user = match config.user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)).ok().flatten(),
        Err(_) => User::from_name(&config.user).ok().flatten(),
    };
    let (name, uid, primary) = match (user, config.user.parse::<u32>()) {
        (Some(u), _) => (u.name, u.uid, u.gid),
        // A numeric uid with no passwd entry (e.g. systemd's DynamicUser style) is fine.
        (None, Ok(uid)) => (config.user.clone(), Uid::from_raw(uid), Gid::from_raw(uid)),
        (None, Err(_)) => {
            return Err(HardeningError::UnknownAccount {
                kind: "user",
                name: config.user.clone(),
            });
        }
    };
    let gid = if config.group.is_empty() {
        primary
    } else {
        match config.group.parse::<u32>() {
            Ok(gid) => Gid::from_raw(gid),
            Err(_) => Group::from_name(&config.group)
                .ok()
                .flatten()
                .map(|g| g.gid)
                .ok_or_else(|| HardeningError::UnknownAccount {
                    kind: "group",
                    name: config.group.clone(),
                })?,
        }
    };
    Ok(Some(Account { name, uid, gid }))
}

/// Switches to `account` for good: supplementary groups, gid, then uid (in that order: after
/// `setuid` the others are no longer allowed), and checks that root cannot be regained.
pub fn drop_privileges(account: &Account) -> Result<(), HardeningError> {
    let err = |source| HardeningError::Drop {
        user: account.name.clone(),
        source,
    };
    nix::unistd::setgroups(&[account.gid]).map_err(err)?;
    nix::unistd::setresgid(account.gid, account.gid, account.gid).map_err(err)?;
    nix::unistd::setresuid(account.uid, account.uid, account.uid).map_err(err)?;
    if !account.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(HardeningError::RegainedRoot);
    }
    Ok(())
}
