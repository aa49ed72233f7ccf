//! Running Rust kernels on libtorch's own OpenMP threads.
//!
//! Why not `std::thread` or rayon: after each parallel operator, libtorch's OpenMP workers
//! spin for a while waiting for the next one. A thread of ours started then competes with a
//! spinning worker for the same core, and on a 2-core machine a kernel that was 2× faster
//! than MKL in isolation made a decode step 1.4× slower. Handing the work to the OpenMP team
//! instead gives it to the threads that are already awake, as libtorch's `parallel_for` does.
//!
//! The team is reached through `GOMP_parallel`, the entry point GCC emits for
//! `#pragma omp parallel` (libgomp's ABI since GCC 4.9; LLVM's and Intel's OpenMP runtimes
//! export it too), looked up in the process because libtorch loaded the runtime. Where it is
//! not found, scoped standard threads do the work.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;

type GompParallel = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
type OmpInt = unsafe extern "C" fn() -> c_int;

struct Runtime {
    parallel: GompParallel,
    thread_num: OmpInt,
    num_threads: OmpInt,
}

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            // SAFETY: dlsym with RTLD_DEFAULT only looks symbols up; the two found have the
            // C signatures above in every OpenMP runtime that exports them, and the runtime
            // stays loaded for the life of the process (libtorch depends on it).
            unsafe {
                let parallel = libc::dlsym(libc::RTLD_DEFAULT, c"GOMP_parallel".as_ptr());
                let thread_num = libc::dlsym(libc::RTLD_DEFAULT, c"omp_get_thread_num".as_ptr());
                let num_threads = libc::dlsym(libc::RTLD_DEFAULT, c"omp_get_num_threads".as_ptr());
                if parallel.is_null() || thread_num.is_null() || num_threads.is_null() {
                    return None;
                }
                Some(Runtime {
                    parallel: std::mem::transmute::<*mut c_void, GompParallel>(parallel),
                    thread_num: std::mem::transmute::<*mut c_void, OmpInt>(thread_num),
                    num_threads: std::mem::transmute::<*mut c_void, OmpInt>(num_threads),
                })
            }
        })
        .as_ref()
}

/// Calls `work(i)` once for each `i` in `0..parts`, on up to `parts` threads (libtorch's
/// OpenMP team, the calling thread among them), and returns when every call has returned.
/// `work` must not panic: a panic cannot unwind through the OpenMP runtime and aborts.
pub fn for_each_part(parts: usize, work: &(dyn Fn(usize) + Sync)) {
    if parts <= 1 {
        if parts == 1 {
            work(0);
        }
        return;
    }
    let Some(rt) = runtime() else {
        std::thread::scope(|s| {
            for i in 1..parts {
                s.spawn(move || work(i));
            }
            work(0);
        });
        return;
    };
    struct Job<'a> {
        work: &'a (dyn Fn(usize) + Sync),
        parts: usize,
        rt: &'a Runtime,
    }
    extern "C" fn run(data: *mut c_void) {
        // SAFETY: `data` is the `Job` below, alive until GOMP_parallel returns.
        let job = unsafe { &*(data as *const Job) };
        // SAFETY: called on a thread of the team GOMP_parallel started.
        let (me, team) = unsafe { ((job.rt.thread_num)(), (job.rt.num_threads)()) };
        // The runtime may give a smaller team than asked (OMP_DYNAMIC, nesting): the
        // threads it gave then share the parts.
        let (me, team) = (me.max(0) as usize, team.max(1) as usize);
        for i in (me..job.parts).step_by(team) {
            (job.work)(i);
        }
    }
    let job = Job { work, parts, rt };
    let threads = c_uint::try_from(parts).unwrap_or(c_uint::MAX);
    // SAFETY: GOMP_parallel runs `run(&job)` on each thread of a team of at most `threads`
    // and returns after all of them have finished; `job` outlives the call.
    unsafe { (rt.parallel)(run, &job as *const Job as *mut c_void, threads, 0) };
}

/// Calls `work(start, end)` on disjoint ranges that cover `0..n`, one per libtorch thread,
/// each a multiple of `step` long (but the last): how the matrix kernels split a product's
/// output columns. One call on this thread when `parallel` is false, with one thread, or
/// when `n` is under two steps.
pub fn for_column_ranges(
    n: usize,
    step: usize,
    parallel: bool,
    work: &(dyn Fn(usize, usize) + Sync),
) {
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
    let step = step.max(1);
    if !parallel || threads == 1 || n < 2 * step {
        work(0, n);
        return;
    }
    let per_part = n.div_ceil(threads).next_multiple_of(step);
    for_each_part(n.div_ceil(per_part), &|part| {
        let start = part * per_part;
        work(start, (start + per_part).min(n));
    });
}
