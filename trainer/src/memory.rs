//! How the process's heap is run (glibc): libtorch allocates every CPU tensor with `malloc`.
//!
//! By default glibc serves blocks above a threshold (at most 32 MiB) with a fresh `mmap` and
//! unmaps them on `free`, so each training step's large tensors (logits, the embedding
//! gradient, the log-softmax: hundreds of MiB) arrive as new pages that the kernel must fault
//! in and zero: 12 % of a step's time on 2 cores, measured with `perf`. Keeping freed memory in
//! the heap lets the next step reuse it. The price is that the process keeps its peak heap;
//! [`release_free_memory`] gives back what a one-off peak (loading a model) left behind.

/// Serves every allocation from the heap and never trims it, so that freed tensors' pages are
/// reused instead of being returned to the kernel and faulted back in. Call once, early, in a
/// binary (the setting is process-wide). Returns whether the allocator took the setting.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called before the
        // threads that allocate heavily (libtorch's) exist.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Returns the heap's free pages to the kernel (after a one-off peak such as loading a model,
/// whose dequantised copies are freed once the weights are in place).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
