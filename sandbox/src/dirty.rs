//! Which pages of a linear memory were written since we last looked, from the kernel.
//!
//! Putting a used instance back to the snapshot byte for byte is much cheaper than a fresh
//! instance, *if* we know exactly which pages the program wrote: a fresh instance takes a
//! copy-on-write fault on each of the ~200 pages a run writes (and its reset flushes them),
//! while an instance that is reset in place copies back only those pages and takes no fault
//! on reading anything. Linux tracks this for us: a range registered with a userfaultfd in
//! *asynchronous write-protect* mode (`UFFD_FEATURE_WP_ASYNC`, Linux 6.7) has its pages
//! write-protected; the first write to one is resolved by the kernel itself (no handler
//! thread) and leaves the page marked written; the `PAGEMAP_SCAN` ioctl on
//! `/proc/self/pagemap` lists the written pages and write-protects them again in one call.
//! This is the mechanism made for CRIU's and Wine's dirty-page tracking; it needs no
//! privilege (`UFFD_USER_MODE_ONLY`) and works on every kind of mapping in async mode.
//!
//! Everything here is plain syscalls; both descriptors are opened once, before the daemon
//! locks itself down, and shared by all workers (the ioctls are thread-safe).

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// `ioctl` numbers and flags from `<linux/userfaultfd.h>` and `<linux/fs.h>` (x86_64 and
/// aarch64 share them).
mod sys {
    pub const UFFD_API: u64 = 0xAA;
    pub const UFFD_USER_MODE_ONLY: libc::c_int = 1;
    pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
    pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
    /// `_IOWR(0xAA, 0x3F, struct uffdio_api)`
    pub const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
    /// `_IOWR(0xAA, 0x00, struct uffdio_register)`
    pub const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
    /// `_IOR(0xAA, 0x01, struct uffdio_range)`
    pub const UFFDIO_UNREGISTER: libc::c_ulong = 0x8010_AA01;
    /// `_IOWR(0xAA, 0x06, struct uffdio_writeprotect)`
    pub const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xC018_AA06;
    pub const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
    pub const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
    /// `_IOWR('f', 16, struct pm_scan_arg)`
    pub const PAGEMAP_SCAN: libc::c_ulong = 0xC060_6610;
    pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
    pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
    pub const PAGE_IS_WRITTEN: u64 = 1 << 1;

    #[repr(C)]
    pub struct UffdioApi {
        pub api: u64,
        pub features: u64,
        pub ioctls: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct UffdioRange {
        pub start: u64,
        pub len: u64,
    }

    #[repr(C)]
    pub struct UffdioRegister {
        pub range: UffdioRange,
        pub mode: u64,
        pub ioctls: u64,
    }

    #[repr(C)]
    pub struct UffdioWriteprotect {
        pub range: UffdioRange,
        pub mode: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    pub struct PmScanArg {
        pub size: u64,
        pub flags: u64,
        pub start: u64,
        pub end: u64,
        pub walk_end: u64,
        pub vec: u64,
        pub vec_len: u64,
        pub max_pages: u64,
        pub category_inverted: u64,
        pub category_mask: u64,
        pub category_anyof_mask: u64,
        pub return_mask: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct PageRegion {
        pub start: u64,
        pub end: u64,
        pub categories: u64,
    }
}

/// Regions one `PAGEMAP_SCAN` call may report; a scan that fills them continues.
const SCAN_REGIONS: usize = 256;

/// The kernel's dirty-page tracking for this process.
#[derive(Debug)]
pub struct DirtyTracker {
    uffd: OwnedFd,
    pagemap: File,
}

/// A memory range under tracking; give it back with [`DirtyTracker::untrack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    start: u64,
    len: u64,
}

impl DirtyTracker {
    /// Opens the userfaultfd and `/proc/self/pagemap`; an error when the kernel lacks
    /// asynchronous write-protection (older than 6.7, or userfaultfd disabled), in which
    /// case the engine falls back to a fresh instance per program.
    pub fn new() -> io::Result<Self> {
        // SAFETY: a plain syscall with no pointer arguments.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_userfaultfd,
                libc::O_CLOEXEC | libc::O_NONBLOCK | sys::UFFD_USER_MODE_ONLY,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let uffd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        let wanted = sys::UFFD_FEATURE_WP_ASYNC | sys::UFFD_FEATURE_WP_UNPOPULATED;
        let mut api = sys::UffdioApi {
            api: sys::UFFD_API,
            features: wanted,
            ioctls: 0,
        };
        // SAFETY: `api` is a valid `struct uffdio_api` for the duration of the call.
        if unsafe { libc::ioctl(uffd.as_raw_fd(), sys::UFFDIO_API, &mut api) } < 0 {
            return Err(io::Error::last_os_error());
        }
        if api.features & wanted != wanted {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel lacks asynchronous userfaultfd write-protection",
            ));
        }
        let pagemap = File::open("/proc/self/pagemap")?;
        let tracker = DirtyTracker { uffd, pagemap };
        // Probe PAGEMAP_SCAN (an empty scan) so that a kernel without it fails here.
        tracker.scan(0, 0, 0, &mut Vec::new())?;
        Ok(tracker)
    }

    /// Starts tracking `[start, start + len)`: every page counts as clean from now on.
    ///
    /// # Safety
    /// The range must be mapped, page-aligned, and stay mapped until [`Self::untrack`].
    pub unsafe fn track(&self, start: *mut u8, len: usize) -> io::Result<Tracked> {
        let range = sys::UffdioRange {
            start: start as u64,
            len: len as u64,
        };
        let mut register = sys::UffdioRegister {
            range,
            mode: sys::UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: a valid `struct uffdio_register`; the kernel checks the range.
        if unsafe { libc::ioctl(self.uffd.as_raw_fd(), sys::UFFDIO_REGISTER, &mut register) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let tracked = Tracked {
            start: range.start,
            len: range.len,
        };
        let mut protect = sys::UffdioWriteprotect {
            range,
            mode: sys::UFFDIO_WRITEPROTECT_MODE_WP,
        };
        // SAFETY: a valid `struct uffdio_writeprotect` over the range registered above.
        if unsafe {
            libc::ioctl(
                self.uffd.as_raw_fd(),
                sys::UFFDIO_WRITEPROTECT,
                &mut protect,
            )
        } < 0
        {
            let error = io::Error::last_os_error();
            self.untrack(tracked);
            return Err(error);
        }
        Ok(tracked)
    }

    /// Stops tracking; the pages keep their contents.
    pub fn untrack(&self, tracked: Tracked) {
        let mut range = sys::UffdioRange {
            start: tracked.start,
            len: tracked.len,
        };
        // SAFETY: a valid `struct uffdio_range`. Failure leaves the range registered, which
        // only costs the kernel's bookkeeping until the mapping is replaced.
        unsafe { libc::ioctl(self.uffd.as_raw_fd(), sys::UFFDIO_UNREGISTER, &mut range) };
    }

    /// The page ranges of `tracked` written since the last [`Self::protect`] (or since
    /// `track`), as byte offsets `(start, end)` into the range, in ascending order.
    pub fn written(&self, tracked: Tracked, out: &mut Vec<(usize, usize)>) -> io::Result<()> {
        out.clear();
        self.scan(tracked.start, tracked.len, 0, out)?;
        for (start, end) in out.iter_mut() {
            *start -= tracked.start as usize;
            *end -= tracked.start as usize;
        }
        Ok(())
    }

    /// Write-protects the pages of `tracked` written since the last look: from now on they
    /// count as clean again.
    pub fn protect(&self, tracked: Tracked) -> io::Result<()> {
        self.scan(
            tracked.start,
            tracked.len,
            sys::PM_SCAN_WP_MATCHING | sys::PM_SCAN_CHECK_WPASYNC,
            &mut Vec::new(),
        )
    }

    /// One `PAGEMAP_SCAN` for written pages over `[start, start + len)`, repeated from where
    /// the kernel stopped whenever the region buffer fills.
    fn scan(
        &self,
        start: u64,
        len: u64,
        flags: u64,
        out: &mut Vec<(usize, usize)>,
    ) -> io::Result<()> {
        let end = start + len;
        let mut regions = [sys::PageRegion::default(); SCAN_REGIONS];
        let mut from = start;
        loop {
            let mut arg = sys::PmScanArg {
                size: std::mem::size_of::<sys::PmScanArg>() as u64,
                flags,
                start: from,
                end,
                vec: regions.as_mut_ptr() as u64,
                vec_len: SCAN_REGIONS as u64,
                category_mask: sys::PAGE_IS_WRITTEN,
                return_mask: sys::PAGE_IS_WRITTEN,
                ..Default::default()
            };
            // SAFETY: `arg` is a valid `struct pm_scan_arg` whose `vec` points at
            // `SCAN_REGIONS` writable `struct page_region`s; the scanned range is only read.
            let found =
                unsafe { libc::ioctl(self.pagemap.as_raw_fd(), sys::PAGEMAP_SCAN, &mut arg) };
            if found < 0 {
                return Err(io::Error::last_os_error());
            }
            for region in &regions[..found as usize] {
                match out.last_mut() {
                    Some(last) if last.1 == region.start as usize => last.1 = region.end as usize,
                    _ => out.push((region.start as usize, region.end as usize)),
                }
            }
            if arg.walk_end >= end {
                return Ok(());
            }
            if arg.walk_end <= from {
                return Err(io::Error::other("PAGEMAP_SCAN stopped without progress"));
            }
            from = arg.walk_end;
        }
    }
}
