//! Where the daemon's socket comes from (its own path, or systemd's `LISTEN_FDS`) and who may
//! talk through it (`SO_PEERCRED` allow-list).

use std::{
    io,
    os::{
        fd::{FromRawFd, RawFd},
        unix::fs::PermissionsExt,
    },
    path::{Path, PathBuf},
};

use tokio::net::UnixListener;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// A listening socket and whether the daemon owns its path (and so removes it at exit).
pub struct Listener {
    pub listener: std::os::unix::net::UnixListener,
    /// The path the daemon bound; `None` when systemd passed the socket (systemd owns it).
    pub owned_path: Option<PathBuf>,
    pub description: String,
}

/// Takes the socket systemd passed, if any: `LISTEN_PID` must name this process and
/// `LISTEN_FDS` must be 1 (one socket unit, one stream socket).
pub fn from_systemd() -> io::Result<Option<Listener>> {
    let Some(fds) = std::env::var_os("LISTEN_FDS") else {
        return Ok(None);
    };
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    // The variables are for this process only, never for anything it might start.
    // SAFETY: start-up is single-threaded at this point (called before the runtime).
    unsafe {
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !pid_matches {
        return Ok(None);
    }
    let count: u32 = fds
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "LISTEN_FDS is not a number"))?;
    if count != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("systemd passed {count} sockets; azr-sandbox.socket must declare exactly one"),
        ));
    }
    let fd = LISTEN_FDS_START;
    check_is_unix_stream_listener(fd)?;
    // SAFETY: systemd hands fd 3 to this process (LISTEN_PID checked above), it is a
    // listening Unix stream socket (checked), and nothing else in the process owns it.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    set_cloexec(fd)?;
    listener.set_nonblocking(true)?;
    Ok(Some(Listener {
        listener,
        owned_path: None,
        description: "socket passed by systemd (LISTEN_FDS)".into(),
    }))
}

fn check_is_unix_stream_listener(fd: RawFd) -> io::Result<()> {
    use nix::sys::socket::{SockType, SockaddrStorage, getsockname, getsockopt, sockopt};
    let not = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} from systemd is {what}"),
        )
    };
    // SAFETY: only borrowed for the duration of the calls below.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let kind = getsockopt(&borrowed, sockopt::SockType)
        .map_err(|e| not(&format!("not a socket ({e})")))?;
    if kind != SockType::Stream {
        return Err(not("not a stream socket"));
    }
    if !getsockopt(&borrowed, sockopt::AcceptConn).unwrap_or(false) {
        return Err(not("not listening"));
    }
    let addr: SockaddrStorage = getsockname(fd).map_err(|e| not(&format!("unnamed ({e})")))?;
    if addr.as_unix_addr().is_none() {
        return Err(not("not a Unix socket (azr-sandbox serves AF_UNIX only)"));
    }
    Ok(())
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // SAFETY: fd is open (checked by the caller) and stays open.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    Ok(())
}

/// Binds `path` with permission bits `mode`. A stale socket file (nobody listening) is
/// replaced; a live one is an error rather than stolen from a running daemon.
pub fn bind(path: &Path, mode: u32) -> io::Result<Listener> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; refusing to replace it",
                        path.display()
                    ),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another daemon is serving on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The socket is created with the umask's bits; tighten the umask so that it is never,
    // even for a moment, more open than `mode`.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o777 & !mode));
    let bound = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    listener.set_nonblocking(true)?;
    Ok(Listener {
        listener,
        owned_path: Some(path.to_owned()),
        description: format!("{} (mode {mode:o})", path.display()),
    })
}

impl Listener {
    pub fn into_tokio(self) -> io::Result<(UnixListener, Option<PathBuf>)> {
        Ok((UnixListener::from_std(self.listener)?, self.owned_path))
    }
}

/// Who may call: the uids and gids of the allow-list.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    uids: Vec<u32>,
    gids: Vec<u32>,
}

impl PeerPolicy {
    /// With both lists empty, only `own_uid` (the daemon's user) passes.
    pub fn new(uids: &[u32], gids: &[u32], own_uid: u32) -> Self {
        if uids.is_empty() && gids.is_empty() {
            return PeerPolicy {
                uids: vec![own_uid],
                gids: Vec::new(),
            };
        }
        PeerPolicy {
            uids: uids.to_vec(),
            gids: gids.to_vec(),
        }
    }

    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_allow_lists_mean_the_daemons_own_uid_only() {
        let policy = PeerPolicy::new(&[], &[], 1000);
        assert!(policy.allows(1000, 5));
        assert!(!policy.allows(0, 0));
    }

    #[test]
    fn a_listed_gid_lets_any_member_in() {
        let policy = PeerPolicy::new(&[], &[42], 1000);
        assert!(policy.allows(7, 42));
        assert!(!policy.allows(1000, 5));
    }

    #[test]
    fn binding_refuses_to_replace_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("azr-listener-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("not-a-socket");
        std::fs::write(&path, b"keep me").expect("write");
        assert!(bind(&path, 0o660).is_err());
        assert_eq!(std::fs::read(&path).expect("still there"), b"keep me");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
