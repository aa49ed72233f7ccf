//! Running items in fresh instances of the pre-initialised guest.
//!
//! One wasmtime [`Engine`] with the pooling allocator and copy-on-write memory images. Every
//! program starts from the snapshot's exact state, so nothing crosses from one program to the
//! next, in one of two ways ([`InstanceReset`]):
//! - `in_place` (the default where the kernel allows it): each worker keeps one instance and,
//!   after a program, copies back from the snapshot exactly the pages the program wrote (the
//!   kernel reports them, see [`crate::dirty`]). Linear memory is then byte for byte the
//!   snapshot's; the only other mutable wasm state, the stack-pointer global, is back at its
//!   start because the call returned normally; and the guest's code never writes its table.
//!   Anything else (a trap, a deadline, memory growth) discards the instance instead.
//! - `fresh`: a new instance per program, whose memory wasmtime resets when it is dropped.
//!
//! Within a request the items of one program share one preparation: the guest compiles and
//! runs the program and reduces its gold values to plain data (`azr_prepare`), the worker
//! records the pages that wrote, and every item then runs (`azr_item`) from that recorded
//! state, its memory put back between items the same way (the pages the item wrote come back
//! from the recording, or from the snapshot). No item can see what an earlier one did, and
//! 8 checks of one program still cost one program start. Each call gets its own fuel and
//! wall-clock budget; an item that traps or grows memory ends the instance, and the items
//! after it prepare the program again in a fresh one.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use azr_guest_contract::{AnswerRole, ItemResult, ItemSpec, Options, Request, SentFile, abi};
use wasmtime::{
    Caller, Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Memory,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, TypedFunc,
};

use azr_sandbox_hardening::crash;

use crate::{
    dirty::{DirtyTracker, Tracked},
    error::SandboxError,
    item::{Files, Item, Outcome, Verdict},
    limits::{Limits, Rules},
    snapshot,
    wasi::{self, GuestIo, HasGuestIo},
};

/// How often the wall-clock deadline is checked.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Dirty linear memory per slot that is reset in place rather than returned to the kernel.
const KEEP_RESIDENT_BYTES: usize = 64 << 20;

/// Host page size assumed by the in-place reset's bookkeeping (only sizes its heuristics).
const PAGE: usize = 4096;
/// Most pages an instance reset in place leaves writable between programs (see
/// [`Worker::keep`]): copying one back costs less than the fault it saves only while the
/// set is mostly pages that programs write again.
const HOT_PAGES: usize = 512;
/// Programs after which the writable set is write-protected and starts over.
const HOT_RUNS: u32 = 64;

/// How a batch runs beyond its limits and rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunControl {
    /// Stop at the first item that fails ([`Outcome::failed`]); the rest are `skipped`.
    pub stop_on_failure: bool,
    /// When the caller stops waiting. Items whose turn comes later are `skipped`, and no item
    /// runs past it (its wall-clock limit is shortened to fit), so a worker is not held by
    /// work nobody will read.
    pub deadline: Option<Instant>,
}

/// Settings of the engine itself (per process, not per request).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where the pre-initialised, precompiled guest is cached.
    pub cache_dir: std::path::PathBuf,
    /// Instances that may exist at once (slots of the pooling allocator).
    pub max_instances: u32,
    /// The most any request may ask for; also sizes the memory slots.
    pub cap: Limits,
    /// How an instance is made ready for the next program.
    pub reset: InstanceReset,
    /// Count fuel (the deterministic work limit, `out_of_fuel`). Always on in service: only
    /// `bench compute --no-fuel` turns it off, to measure what the metering costs (the
    /// epoch's time limit still holds, and `fuel_used` then reads as the whole limit).
    pub fuel_metering: bool,
    /// Write `/tmp/perf-<pid>.map` so that `perf` names the guest's compiled functions
    /// (`bench compute --perf-map`, for profiles of where the guest's time goes).
    pub perf_map: bool,
}

/// How an instance is made ready for the next program; both give every program the
/// snapshot's exact state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceReset {
    /// Keep one instance per worker and copy back the pages the last program wrote (Linux
    /// 6.7 or later: asynchronous userfaultfd write-protection and `PAGEMAP_SCAN`). Falls
    /// back to `fresh`, with a warning, where the kernel refuses.
    #[default]
    InPlace,
    /// A new instance from the snapshot for every program.
    Fresh,
}

/// Compiled guest plus everything needed to instantiate it; cheap to share across threads.
pub struct Executor {
    engine: Engine,
    pre: InstancePre<HostState>,
    cap: Limits,
    ticker_stop: Arc<AtomicBool>,
    /// Present when instances are reset in place.
    in_place: Option<InPlace>,
}

/// What resetting instances in place needs: the kernel's dirty-page tracking and the
/// snapshot's linear memory as a fresh instance sees it.
struct InPlace {
    tracker: Arc<DirtyTracker>,
    pristine: Box<[u8]>,
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Store data of one instance.
struct HostState {
    /// What the guest's WASI calls see and write (clocks, random stream, native output).
    io: GuestIo,
    limiter: MemoryLimiter,
    fuel: u64,
    deadline_ticks: u64,
    /// What the guest answered during the current call.
    outcomes: Vec<Outcome>,
    /// What the item's answer needs next (see [`Next`]).
    next: Next,
    item_started: Instant,
    /// Largest result the guest may hand back for one item.
    max_result_bytes: usize,
}

impl HostState {
    /// The state of a store before its first program.
    fn new() -> Self {
        HostState {
            io: GuestIo::default(),
            limiter: MemoryLimiter {
                // Until a program sets its own: instantiation must be able to make the memory.
                max_bytes: usize::MAX,
                denied: false,
            },
            fuel: 0,
            deadline_ticks: 0,
            outcomes: Vec::new(),
            next: Next::Done,
            item_started: Instant::now(),
            max_result_bytes: 0,
        }
    }

    /// The limits and bookkeeping of the next call. (Its [`GuestIo`] is the snapshot's or
    /// the prepared program's, see [`Worker::keep`] and [`Worker::reset_to_prepared`].)
    fn prepare(&mut self, limits: &Limits) {
        self.limiter = MemoryLimiter {
            max_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            denied: false,
        };
        self.fuel = limits.fuel;
        self.deadline_ticks = limits.timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1;
        self.outcomes = Vec::new();
        self.next = Next::Done;
        self.item_started = Instant::now();
        self.max_result_bytes = (limits.stdout_chars as usize * 4)
            .saturating_add(limits.value_chars as usize * 4)
            .saturating_add(1 << 16);
    }
}

/// One instance with its store and the guest's entry points.
struct GuestInstance {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    prepare: TypedFunc<(u32, u32), i32>,
    item: TypedFunc<(u32, u32, u32), i32>,
    /// Linear memory's size when the instance was made; the range under tracking.
    size: usize,
    /// Set while the kernel tracks the pages this instance writes (in-place reset).
    tracked: Option<(Arc<DirtyTracker>, Tracked)>,
    /// Programs since its memory was last write-protected as a whole.
    warm_runs: u32,
}

impl Drop for GuestInstance {
    fn drop(&mut self) {
        // Before the store (and with it the memory slot) goes back to the pool.
        if let Some((tracker, tracked)) = self.tracked.take() {
            tracker.untrack(tracked);
        }
    }
}

/// A worker's handle on the engine: runs batches, keeping its instance between programs when
/// instances are reset in place. Not shared between threads; one per worker thread.
pub struct Worker {
    executor: Arc<Executor>,
    warm: Option<GuestInstance>,
    dirty: Vec<(usize, usize)>,
    /// The pages the current program's preparation wrote (one prepared program at a time).
    overlay: Overlay,
}

/// Caps linear memory and remembers whether it had to say no, so that the trap that follows
/// (the guest's allocator aborts) can be reported as out-of-memory.
struct MemoryLimiter {
    max_bytes: usize,
    denied: bool,
}

impl HasGuestIo for HostState {
    fn guest_io(&mut self) -> &mut GuestIo {
        &mut self.io
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Growth past the pooling allocator's slot size fails here, not in `memory_growing`.
        self.denied = true;
        Ok(())
    }
}

/// An item as the engine hands it to the guest: a caller's item, or the first stage of a
/// deduction or abduction answer, which the engine adds itself.
enum GuestItem<'a> {
    Item(&'a Item),
    /// An answer evaluated where its program never ran (the guest's `evaluate_answer`): only
    /// the task's imports and the program's own import statements have. An answer that
    /// needs the program's definitions (that calls `f`, say) fails here, and so is wrong.
    Answer(ItemSpec<&'a str>),
}

/// `strings` borrowed.
fn borrowed(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

impl<'a> GuestItem<'a> {
    /// The first stage of `item`'s answer (deduction and abduction only).
    fn answer_stage(item: &'a Item) -> Option<GuestItem<'a>> {
        let (program, imports, answer, role) = match item {
            Item::Deduction {
                program,
                imports,
                answer,
                ..
            } => (program, imports, answer, AnswerRole::Deduction),
            Item::Abduction {
                program,
                imports,
                answer,
                ..
            } => (program, imports, answer, AnswerRole::Abduction),
            _ => return None,
        };
        Some(GuestItem::Answer(ItemSpec::EvaluateAnswer {
            program,
            imports: borrowed(imports),
            answer,
            role,
        }))
    }

    /// The files its program runs with (an answer's first stage has none: the program
    /// never runs there).
    fn files(&self) -> &'a Files {
        match self {
            GuestItem::Item(item) => item.files(),
            GuestItem::Answer(_) => Files::none(),
        }
    }

    /// The item as the guest reads it (a script's expected output stays on this side).
    fn spec(&self) -> ItemSpec<&'a str> {
        let item = match self {
            GuestItem::Item(item) => *item,
            GuestItem::Answer(stage) => return stage.clone(),
        };
        match item {
            Item::Run {
                program,
                imports,
                input,
                ..
            } => ItemSpec::Run {
                program,
                imports: borrowed(imports),
                input: input.as_deref(),
            },
            Item::Validate {
                program,
                imports,
                input,
            } => ItemSpec::Validate {
                program,
                imports: borrowed(imports),
                input,
            },
            Item::Deduction {
                program,
                imports,
                gold,
                answer,
            } => ItemSpec::Deduction {
                program,
                imports: borrowed(imports),
                gold,
                answer,
            },
            Item::Abduction {
                program,
                imports,
                gold,
                answer,
            } => ItemSpec::Abduction {
                program,
                imports: borrowed(imports),
                gold,
                answer,
            },
            Item::Induction {
                program,
                imports,
                inputs,
                outputs,
            } => ItemSpec::Induction {
                program,
                imports: borrowed(imports),
                inputs: borrowed(inputs),
                outputs: borrowed(outputs),
            },
            Item::Script {
                program,
                imports,
                stdin,
                ..
            } => ItemSpec::Script {
                program,
                imports: borrowed(imports),
                stdin,
            },
            Item::Call {
                program,
                imports,
                function,
                arguments,
                expected,
                ..
            } => ItemSpec::Call {
                program,
                imports: borrowed(imports),
                function,
                arguments,
                expected,
            },
            Item::Assert {
                program,
                imports,
                test,
                ..
            } => ItemSpec::Assert {
                program,
                imports: borrowed(imports),
                test,
            },
        }
    }

    fn program(&self) -> &str {
        match self {
            GuestItem::Item(item) => item.program().0,
            GuestItem::Answer(stage) => stage.program().0,
        }
    }

    fn judge_output(&self, outcome: Outcome) -> Outcome {
        match self {
            GuestItem::Item(item) => item.judge_output(outcome),
            GuestItem::Answer(_) => outcome,
        }
    }
}

/// What an item's answer needs after the guest answered it.
#[derive(Debug, Default, PartialEq)]
enum Next {
    /// Nothing: the outcome is final.
    #[default]
    Done,
    /// Its first stage, where the program never ran: the answer is more than literals.
    Evaluate,
    /// A first stage's result (JSON the guest reads back), for the check.
    Evaluated(String),
}

/// One item's outcome, and what its answer needs next.
struct Ran {
    outcome: Outcome,
    next: Next,
}

impl Ran {
    fn done(outcome: Outcome) -> Ran {
        Ran {
            outcome,
            next: Next::Done,
        }
    }
}

impl Executor {
    pub fn new(config: &EngineConfig) -> Result<Self, SandboxError> {
        let engine_err = |e: wasmtime::Error| SandboxError::Engine(format!("{e:#}"));
        let cap = &config.cap;
        let mut wasm_config = Config::new();
        wasm_config
            .consume_fuel(config.fuel_metering)
            .epoch_interruption(true)
            .max_wasm_stack(usize::try_from(cap.wasm_stack_bytes).unwrap_or(usize::MAX))
            .async_stack_size(
                usize::try_from(cap.wasm_stack_bytes).unwrap_or(usize::MAX) + (1 << 20),
            )
            .memory_init_cow(true)
            // The snapshot's ~60 MiB image must always be mapped copy-on-write, not copied.
            .memory_guaranteed_dense_image_size(128 << 20);
        if config.perf_map {
            wasm_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pool = PoolingAllocationConfig::default();
        let slots = config.max_instances.max(1);
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            // RustPython's indirect-call table is large.
            .table_elements(1 << 18)
            .max_memory_size(usize::try_from(cap.memory_bytes).unwrap_or(usize::MAX))
            .max_core_instance_size(8 << 20)
            // Keep the pages a program dirtied resident and copy them back from the image
            // (only the dirty ones, found with PAGEMAP_SCAN) instead of dropping them: the
            // next instance in the slot then takes no page faults on them. Start-up cost
            // is mostly page faults otherwise.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(wasmtime::Enabled::Yes);
        wasm_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm_config).map_err(engine_err)?;
        let module = snapshot::load(&engine, &config.cache_dir)?;

        let mut linker: Linker<HostState> = Linker::new(&engine);
        // Our own WASI: no call a guest makes may need a system call (see `crate::wasi`).
        wasi::add_to_linker(&mut linker).map_err(engine_err)?;
        linker
            .func_wrap(abi::HOST_MODULE, abi::ITEM_DONE, item_done)
            .map_err(engine_err)?;
        let pre = linker.instantiate_pre(&module).map_err(engine_err)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = ticker_stop.clone();
        let ticking = engine.clone();
        thread::Builder::new()
            .name("azr-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| SandboxError::Engine(format!("starting the epoch thread: {e}")))?;

        let in_place = match config.reset {
            InstanceReset::Fresh => None,
            InstanceReset::InPlace => match DirtyTracker::new() {
                Ok(tracker) => {
                    let tracker = Arc::new(tracker);
                    let pristine = pristine_memory(&engine, &pre)?;
                    tracing::debug!(bytes = pristine.len(), "instances are reset in place");
                    Some(InPlace { tracker, pristine })
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "the kernel cannot track dirty pages; every program gets a fresh instance"
                    );
                    None
                }
            },
        };

        Ok(Executor {
            engine,
            pre,
            cap: config.cap.clone(),
            ticker_stop,
            in_place,
        })
    }

    /// Whether instances are reset in place (see [`InstanceReset`]).
    pub fn resets_in_place(&self) -> bool {
        self.in_place.is_some()
    }

    pub fn cap(&self) -> &Limits {
        &self.cap
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Worker {
    /// A worker's state. Make it before the thread locks itself down: it reserves the
    /// buffer that records a prepared program's pages (at most the instance's memory), so
    /// that running programs allocates no large block afterwards.
    pub fn new(executor: Arc<Executor>) -> Self {
        let bytes = executor.in_place.as_ref().map_or(0, |p| p.pristine.len());
        Worker {
            executor,
            warm: None,
            dirty: Vec::new(),
            overlay: Overlay {
                spans: Vec::with_capacity(1024),
                offsets: Vec::with_capacity(1024),
                bytes: Vec::with_capacity(bytes),
            },
        }
    }

    pub fn executor(&self) -> &Arc<Executor> {
        &self.executor
    }

    /// Runs `items` in order and returns one outcome per item.
    ///
    /// Consecutive items of the same program share one instance (and so one interpreter:
    /// each item still gets a fresh namespace); a different program always starts from the
    /// snapshot's exact state, so no state crosses programs.
    ///
    /// Must be called on a thread whose stack is larger than `cap.wasm_stack_bytes` (the
    /// worker pool's threads are).
    pub fn run_items(&mut self, items: &[Item], limits: &Limits, rules: &Rules) -> Vec<Outcome> {
        self.run_items_with(items, limits, rules, RunControl::default())
    }

    /// [`Worker::run_items`] with a stop-on-failure switch and a deadline.
    pub fn run_items_with(
        &mut self,
        items: &[Item],
        limits: &Limits,
        rules: &Rules,
        control: RunControl,
    ) -> Vec<Outcome> {
        let capped = limits.capped_by(&self.executor.cap);
        let mut outcomes = Vec::with_capacity(items.len());
        while outcomes.len() < items.len() {
            let mut limits = capped.clone();
            if let Some(deadline) = control.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    skip_rest(&mut outcomes, items.len(), "the request's deadline passed");
                    break;
                }
                limits.timeout_ms = limits.timeout_ms.min(left.as_millis().max(1) as u64);
            }
            let rest = &items[outcomes.len()..];
            let key = rest[0].instance_key();
            let same = rest.iter().take_while(|i| i.instance_key() == key).count();
            let group = &rest[..same];
            let before = outcomes.len();
            self.run_group(group, &limits, rules, control, &mut outcomes);
            if outcomes.len() == before {
                // Never loop without progress: the first remaining item gets the blame.
                outcomes.push(Outcome::host(
                    Verdict::Fault,
                    "SandboxFault",
                    "the guest returned without answering",
                ));
            }
            if control.stop_on_failure && outcomes[before..].iter().any(Outcome::failed) {
                skip_rest(&mut outcomes, items.len(), "an earlier item failed");
            }
        }
        outcomes.truncate(items.len());
        outcomes
    }

    /// Runs the items of one program, and the answers among them that are more than
    /// literals in two stages: each is first evaluated in an instance where the program
    /// never ran, then checked, from what that gave, in the program's prepared instance.
    fn run_group(
        &mut self,
        group: &[Item],
        limits: &Limits,
        rules: &Rules,
        control: RunControl,
        outcomes: &mut Vec<Outcome>,
    ) {
        let items: Vec<GuestItem<'_>> = group.iter().map(GuestItem::Item).collect();
        let mut ran = Vec::with_capacity(items.len());
        self.run_program(&items, &[], limits, rules, control, &mut ran);
        let pending: Vec<usize> = (0..ran.len())
            .filter(|&i| ran[i].next == Next::Evaluate)
            .collect();
        if !pending.is_empty() {
            self.run_answer_stages(group, &pending, limits, rules, control, &mut ran);
            if control.stop_on_failure
                && let Some(first) = ran.iter().position(|r| r.outcome.failed())
            {
                // Items after an answer that failed in its second stage ran meanwhile.
                for r in &mut ran[first + 1..] {
                    r.outcome =
                        Outcome::host(Verdict::Skipped, "Skipped", "an earlier item failed");
                }
            }
        }
        outcomes.extend(ran.into_iter().map(|r| r.outcome));
    }

    /// The two stages of the answers of `group` at `pending` (their outcomes in `ran` are
    /// replaced by the checks' own).
    fn run_answer_stages(
        &mut self,
        group: &[Item],
        pending: &[usize],
        limits: &Limits,
        rules: &Rules,
        control: RunControl,
        ran: &mut [Ran],
    ) {
        let control = RunControl {
            stop_on_failure: false,
            ..control
        };
        let stages: Vec<GuestItem<'_>> = pending
            .iter()
            .filter_map(|&i| GuestItem::answer_stage(&group[i]))
            .collect();
        let mut first = Vec::with_capacity(stages.len());
        if stages.len() == pending.len() {
            self.run_program(&stages, &[], limits, rules, control, &mut first);
        }
        let mut checks = Vec::new();
        let mut evaluated = Vec::new();
        let mut spent = Vec::new();
        for (k, &i) in pending.iter().enumerate() {
            match first.get_mut(k).map(|r| std::mem::take(&mut r.next)) {
                Some(Next::Evaluated(text)) => {
                    let o = &first[k].outcome;
                    checks.push(i);
                    evaluated.push(Some(text));
                    spent.push((o.fuel_used, o.micros));
                }
                Some(_) if first[k].outcome.verdict != Verdict::Ok => {
                    // The answer failed where the program never ran: it is wrong, and the
                    // outcome says why (an `AnswerUsesProgram` error for one that needs
                    // the program's definitions).
                    let mut outcome = first[k].outcome.clone();
                    outcome.passed = Some(false);
                    outcome.value = None;
                    ran[i].outcome = outcome;
                }
                _ => {
                    ran[i].outcome = Outcome::host(
                        Verdict::Fault,
                        "SandboxFault",
                        "the guest did not evaluate the answer",
                    );
                    ran[i].outcome.passed = Some(false);
                }
            }
        }
        if checks.is_empty() {
            return;
        }
        let items: Vec<GuestItem<'_>> =
            checks.iter().map(|&i| GuestItem::Item(&group[i])).collect();
        let mut second = Vec::with_capacity(items.len());
        self.run_program(&items, &evaluated, limits, rules, control, &mut second);
        for ((&i, r), (fuel, micros)) in checks.iter().zip(second).zip(spent) {
            let mut outcome = r.outcome;
            if r.next != Next::Done {
                outcome = Outcome::host(
                    Verdict::Fault,
                    "SandboxFault",
                    "the guest asked twice to evaluate an answer",
                );
                outcome.passed = Some(false);
            }
            outcome.fuel_used = outcome.fuel_used.saturating_add(fuel);
            outcome.micros = outcome.micros.saturating_add(micros);
            ran[i].outcome = outcome;
        }
    }

    /// Runs the items of one program: prepares the program once (its definitions run, its
    /// gold values are reduced), records that state, and runs every item from it, putting
    /// linear memory back to the recorded state between items. An item's code therefore
    /// never sees what an earlier item did. An item that traps or grows memory ends the
    /// instance; the next item prepares the program again in a new one. `evaluated[i]`, where
    /// present, is item `i`'s answer from its first stage.
    fn run_program(
        &mut self,
        items: &[GuestItem<'_>],
        evaluated: &[Option<String>],
        limits: &Limits,
        rules: &Rules,
        control: RunControl,
        ran: &mut Vec<Ran>,
    ) {
        let files = items[0].files();
        let request = Request {
            options: Options {
                banned_words: Some(borrowed(&rules.banned_words)),
                banned_keywords: borrowed(&rules.banned_keywords),
                require_f: rules.require_f,
                stdout_cap: limits.stdout_chars,
                value_cap: limits.value_chars,
                recursion_limit: limits.recursion_limit,
                files: files
                    .sent
                    .iter()
                    .map(|f| SentFile {
                        path: f.path.as_str(),
                        base64: f.base64.as_str(),
                    })
                    .collect(),
                fetch_files: borrowed(&files.fetch),
                fetch_cap: files.fetch_cap,
            },
            items: items.iter().map(GuestItem::spec).collect(),
        };
        let bytes = match serde_json::to_vec(&request) {
            Ok(b) => b,
            Err(e) => {
                ran.push(Ran::done(Outcome::host(
                    Verdict::Fault,
                    "SandboxFault",
                    e.to_string(),
                )));
                return;
            }
        };
        let program = items[0].program();
        let mut prepared: Option<PreparedInstance> = None;
        for index in 0..items.len() {
            let mut limits = limits.clone();
            if let Some(deadline) = control.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    ran.extend(
                        std::iter::repeat_with(|| {
                            Ran::done(Outcome::host(
                                Verdict::Skipped,
                                "Skipped",
                                "the request's deadline passed",
                            ))
                        })
                        .take(items.len() - index),
                    );
                    break;
                }
                limits.timeout_ms = limits.timeout_ms.min(left.as_millis().max(1) as u64);
            }
            let mut p = match prepared.take() {
                Some(p) => p,
                None => match self.prepare(&bytes, &limits, program) {
                    Ok(p) => p,
                    Err(outcome) => {
                        // The program itself failed to start: every item would, alike.
                        ran.extend(
                            std::iter::repeat_with(|| Ran::done((*outcome).clone()))
                                .take(items.len() - index),
                        );
                        return;
                    }
                },
            };
            let answer = evaluated.get(index).and_then(Option::as_deref);
            let (outcome, alive) = self.call_item(&mut p, index, answer, &limits, program);
            let next = std::mem::take(&mut p.instance.store.data_mut().next);
            let outcome = items[index].judge_output(outcome);
            let failed = outcome.failed();
            ran.push(Ran { outcome, next });
            let last = index + 1 == items.len() || (control.stop_on_failure && failed);
            if alive && last {
                self.keep_prepared(p);
            } else if alive && self.reset_to_prepared(&mut p) {
                prepared = Some(p);
            }
            if control.stop_on_failure && failed {
                break;
            }
        }
        if let Some(p) = prepared {
            self.keep_prepared(p);
        }
    }

    /// A fresh instance with the program prepared in it, and that state recorded.
    fn prepare(
        &mut self,
        request: &[u8],
        limits: &Limits,
        program: &str,
    ) -> Result<PreparedInstance, Box<Outcome>> {
        let mut instance = self.take_instance().map_err(|e| {
            Box::new(Outcome::host(
                Verdict::Fault,
                "SandboxFault",
                format!("starting an instance: {e:#}"),
            ))
        })?;
        if instance.size as u64 > limits.memory_bytes {
            let outcome = Outcome::host(
                Verdict::OutOfMemory,
                "MemoryError",
                format!(
                    "memory limit of {} bytes is below the interpreter's own {} bytes",
                    limits.memory_bytes, instance.size
                ),
            );
            self.warm = Some(instance);
            return Err(Box::new(outcome));
        }
        arm(&mut instance, limits);
        crash::running(program);
        let result = (|| {
            let store = &mut instance.store;
            let len = u32::try_from(request.len())
                .map_err(|_| wasmtime::format_err!("request larger than 4 GiB"))?;
            let ptr = instance.alloc.call(&mut *store, len)?;
            instance.memory.write(&mut *store, ptr as usize, request)?;
            instance.prepare.call(&mut *store, (ptr, len))
        })();
        crash::finished();
        let state = instance.store.data_mut();
        match result {
            Ok(0) => {}
            Ok(_) => {
                return Err(Box::new(state.outcomes.pop().unwrap_or_else(|| {
                    Outcome::host(
                        Verdict::Fault,
                        "SandboxFault",
                        "the guest refused the request",
                    )
                })));
            }
            Err(error) => return Err(Box::new(trap_outcome(&mut instance, &error, limits))),
        }
        // Record the prepared state: the pages the program wrote, and the host's side.
        let overlay = &mut self.overlay;
        overlay.clear();
        let resettable = instance.memory.data_size(&instance.store) == instance.size
            && match (&self.executor.in_place, &instance.tracked) {
                (Some(in_place), Some((_, tracked))) => {
                    let tracked = *tracked;
                    let memory = instance.memory.data(&instance.store);
                    // The pages stay writable (no fault when an item writes them again):
                    // every scan reports them, and each reset copies them back from here.
                    in_place.tracker.written(tracked, &mut self.dirty).is_ok()
                        && self.dirty.iter().all(|&(start, end)| {
                            memory.get(start..end).is_some_and(|bytes| {
                                overlay.record(start, end, bytes);
                                true
                            })
                        })
                }
                _ => false,
            };
        let io = instance.store.data().io.for_item();
        let memory_denied = instance.store.data().limiter.denied;
        Ok(PreparedInstance {
            instance,
            io,
            resettable,
            memory_denied,
            overlay_protected: false,
        })
    }

    /// Runs one item in a prepared instance: its outcome, and whether the instance lives.
    fn call_item(
        &mut self,
        p: &mut PreparedInstance,
        index: usize,
        answer: Option<&str>,
        limits: &Limits,
        program: &str,
    ) -> (Outcome, bool) {
        let instance = &mut p.instance;
        arm(instance, limits);
        crash::running(program);
        let result = (|| {
            let store = &mut instance.store;
            let (ptr, len) = match answer {
                Some(text) => {
                    let len = u32::try_from(text.len())
                        .map_err(|_| wasmtime::format_err!("an answer larger than 4 GiB"))?;
                    let ptr = instance.alloc.call(&mut *store, len)?;
                    instance
                        .memory
                        .write(&mut *store, ptr as usize, text.as_bytes())?;
                    (ptr, len)
                }
                None => (0, 0),
            };
            let index =
                u32::try_from(index).map_err(|_| wasmtime::format_err!("more than 4 Gi items"))?;
            instance.item.call(&mut *store, (index, ptr, len))
        })();
        crash::finished();
        match result {
            Ok(_) => {
                let mut outcome = instance.store.data_mut().outcomes.pop().unwrap_or_else(|| {
                    Outcome::host(
                        Verdict::Fault,
                        "SandboxFault",
                        "the guest returned without answering",
                    )
                });
                if p.memory_denied
                    && outcome.verdict == Verdict::Error
                    && outcome.error_type.as_deref() == Some("MemoryError")
                {
                    // The program's own definitions hit the cap while it was prepared (the
                    // interpreter raised `MemoryError`, which every item reports).
                    outcome.verdict = Verdict::OutOfMemory;
                    outcome.error_message = Some(memory_exceeded(limits.memory_bytes));
                }
                (outcome, true)
            }
            Err(error) => {
                let outcome = trap_outcome(instance, &error, limits);
                (outcome, false)
            }
        }
    }

    /// [`Worker::keep`] for a prepared instance.
    fn keep_prepared(&mut self, p: PreparedInstance) {
        let protected = if p.overlay_protected {
            std::mem::take(&mut self.overlay.spans)
        } else {
            Vec::new()
        };
        self.keep(p.instance, &protected);
        if p.overlay_protected {
            self.overlay.spans = protected;
        }
    }

    /// Puts a prepared instance's memory back to the prepared state (pages the last item
    /// wrote come back from the recorded ones, or from the snapshot). False when it cannot
    /// be (memory grew, no in-place reset): the instance is then discarded.
    fn reset_to_prepared(&mut self, p: &mut PreparedInstance) -> bool {
        let instance = &mut p.instance;
        let (true, Some(in_place), Some((_, tracked))) =
            (p.resettable, &self.executor.in_place, &instance.tracked)
        else {
            return false;
        };
        let tracked = *tracked;
        if instance.memory.data_size(&instance.store) != instance.size {
            return false;
        }
        if in_place.tracker.written(tracked, &mut self.dirty).is_err() {
            return false;
        }
        let memory = instance.memory.data_mut(&mut instance.store);
        for &(start, end) in &self.dirty {
            let mut page = start;
            while page < end {
                let next = (page + PAGE).min(end);
                let source = self
                    .overlay
                    .page(page, next)
                    .or_else(|| in_place.pristine.get(page..next));
                match (memory.get_mut(page..next), source) {
                    (Some(target), Some(source)) => target.copy_from_slice(source),
                    _ => return false,
                }
                page = next;
            }
        }
        let written: usize = self.dirty.iter().map(|(s, e)| e - s).sum::<usize>() / PAGE;
        if written <= HOT_PAGES && instance.warm_runs < HOT_RUNS {
            instance.warm_runs += 1;
        } else {
            if in_place.tracker.protect(tracked).is_err() {
                return false;
            }
            instance.warm_runs = 0;
            p.overlay_protected = true;
        }
        instance.store.data_mut().io = p.io.for_item();
        true
    }

    /// The warm instance if there is one, else a new one (tracked when resetting in place).
    fn take_instance(&mut self) -> wasmtime::Result<GuestInstance> {
        if let Some(instance) = self.warm.take() {
            return Ok(instance);
        }
        let mut instance = new_instance(&self.executor.engine, &self.executor.pre)?;
        if let Some(in_place) = &self.executor.in_place {
            let base = instance.memory.data_ptr(&instance.store);
            // SAFETY: linear memory is mapped (page-aligned, by the pooling allocator) for
            // as long as the store lives, and `GuestInstance::drop` untracks it first.
            match unsafe { in_place.tracker.track(base, instance.size) } {
                Ok(tracked) => instance.tracked = Some((in_place.tracker.clone(), tracked)),
                Err(e) => tracing::warn!(error = %e, "tracking an instance's memory failed"),
            }
        }
        Ok(instance)
    }

    /// Puts the instance back to the snapshot's state and keeps it for the next program; an
    /// instance that cannot be (untracked, grown, or the kernel failed) is dropped. The pages
    /// its program was prepared with are among those put back.
    fn keep(&mut self, mut instance: GuestInstance, overlay: &[(usize, usize)]) {
        let (Some(in_place), Some((_, tracked))) = (&self.executor.in_place, &instance.tracked)
        else {
            return;
        };
        let tracked = *tracked;
        if instance.memory.data_size(&instance.store) != instance.size {
            return;
        }
        if let Err(e) = in_place.tracker.written(tracked, &mut self.dirty) {
            tracing::warn!(error = %e, "finding an instance's dirty pages failed");
            return;
        }
        let written: usize = self.dirty.iter().map(|(s, e)| e - s).sum::<usize>() / PAGE;
        // Pages the preparation wrote that were write-protected since (else they are among
        // the written ones already).
        self.dirty.extend_from_slice(overlay);
        let memory = instance.memory.data_mut(&mut instance.store);
        for &(start, end) in &self.dirty {
            match (
                memory.get_mut(start..end),
                in_place.pristine.get(start..end),
            ) {
                (Some(page), Some(snapshot)) => page.copy_from_slice(snapshot),
                _ => return,
            }
        }
        // Pages written stay writable (no fault when the next program writes them again, no
        // TLB flush for protecting them), and since every writable page is reported as
        // written, they are copied back after every program. That pays while the set is
        // small and current: past `HOT_PAGES`, or every `HOT_RUNS` programs, all of it is
        // write-protected again and the set starts over.
        if overlay.is_empty() && written <= HOT_PAGES && instance.warm_runs < HOT_RUNS {
            instance.warm_runs += 1;
        } else {
            if let Err(e) = in_place.tracker.protect(tracked) {
                tracing::warn!(error = %e, "write-protecting an instance's memory failed");
                return;
            }
            instance.warm_runs = 0;
        }
        // The host side of a fresh instance: clocks and random streams start over.
        instance.store.data_mut().io = GuestIo::default();
        self.warm = Some(instance);
    }

    /// Whether the kept instance's linear memory equals the snapshot's, byte for byte (`None`
    /// when no instance is kept). For tests of the in-place reset; reads all of memory.
    #[doc(hidden)]
    pub fn kept_instance_is_pristine(&self) -> Option<bool> {
        let instance = self.warm.as_ref()?;
        let in_place = self.executor.in_place.as_ref()?;
        Some(instance.memory.data(&instance.store) == &in_place.pristine[..])
    }
}

/// Gives the instance one item's budget: fuel, wall clock, memory cap, fresh bookkeeping.
fn arm(instance: &mut GuestInstance, limits: &Limits) {
    let store = &mut instance.store;
    store.data_mut().prepare(limits);
    let _ = store.set_fuel(limits.fuel);
    let deadline_ticks = store.data().deadline_ticks;
    store.set_epoch_deadline(deadline_ticks);
}

/// The outcome of a call that trapped (the instance is then discarded).
fn trap_outcome(instance: &mut GuestInstance, error: &wasmtime::Error, limits: &Limits) -> Outcome {
    let fuel_left = instance.store.get_fuel().unwrap_or(0);
    let state = instance.store.data_mut();
    let mut outcome = classify_trap(error, state.limiter.denied, limits);
    if outcome.verdict == Verdict::Fault
        && let Some(said) = state.io.native_output()
    {
        // A guest panic: its message is the best account of what went wrong.
        outcome.error_message = Some(format!(
            "{}; the interpreter said: {said}",
            outcome.error_message.as_deref().unwrap_or_default()
        ));
    }
    outcome.fuel_used = limits.fuel.saturating_sub(fuel_left);
    outcome.micros = state.item_started.elapsed().as_micros() as u64;
    outcome
}

/// The pages a program's preparation wrote, as they were when it ended.
struct Overlay {
    /// Byte ranges `(start, end)` of linear memory, ascending.
    spans: Vec<(usize, usize)>,
    /// Where each span's contents start in `bytes`.
    offsets: Vec<usize>,
    /// The contents, back to back.
    bytes: Vec<u8>,
}

impl Overlay {
    /// Empties it, keeping its buffers.
    fn clear(&mut self) {
        self.spans.clear();
        self.offsets.clear();
        self.bytes.clear();
    }

    fn record(&mut self, start: usize, end: usize, contents: &[u8]) {
        self.spans.push((start, end));
        self.offsets.push(self.bytes.len());
        self.bytes.extend_from_slice(contents);
    }

    /// The recorded contents of `[start, end)` (within one span), if recorded.
    fn page(&self, start: usize, end: usize) -> Option<&[u8]> {
        let i = self.spans.partition_point(|&(_, e)| e <= start);
        let &(s, e) = self.spans.get(i)?;
        if start < s || end > e {
            return None;
        }
        let offset = self.offsets[i] + (start - s);
        self.bytes.get(offset..offset + (end - start))
    }
}

/// An instance with a program prepared in it (its recorded pages are the worker's overlay).
struct PreparedInstance {
    instance: GuestInstance,
    /// The host side (clocks, random stream) as the preparation left it.
    io: GuestIo,
    /// Whether its memory can be put back in place (else every item prepares anew).
    resettable: bool,
    /// Whether the preparation asked for memory over the cap.
    memory_denied: bool,
    /// Whether the pages the preparation wrote were write-protected since (a scan no
    /// longer reports them unless written again).
    overlay_protected: bool,
}

/// A new instance of the snapshot (its memory is the snapshot's, copy-on-write).
fn new_instance(engine: &Engine, pre: &InstancePre<HostState>) -> wasmtime::Result<GuestInstance> {
    let mut store = Store::new(engine, HostState::new());
    store.limiter(|s| &mut s.limiter);
    let instance = pre.instantiate(&mut store)?;
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| wasmtime::format_err!("guest exports no memory"))?;
    let alloc = instance.get_typed_func::<u32, u32>(&mut store, abi::ALLOC)?;
    let prepare = instance.get_typed_func::<(u32, u32), i32>(&mut store, abi::PREPARE)?;
    let item = instance.get_typed_func::<(u32, u32, u32), i32>(&mut store, abi::ITEM)?;
    let size = memory.data_size(&store);
    Ok(GuestInstance {
        store,
        memory,
        alloc,
        prepare,
        item,
        size,
        tracked: None,
        warm_runs: 0,
    })
}

/// The linear memory of a new instance, before it has run anything.
fn pristine_memory(
    engine: &Engine,
    pre: &InstancePre<HostState>,
) -> Result<Box<[u8]>, SandboxError> {
    let instance = new_instance(engine, pre)
        .map_err(|e| SandboxError::Engine(format!("instantiating the guest: {e:#}")))?;
    Ok(instance.memory.data(&instance.store).into())
}

/// Answers every item from `outcomes.len()` up to `total` with `skipped`.
fn skip_rest(outcomes: &mut Vec<Outcome>, total: usize, why: &str) {
    while outcomes.len() < total {
        outcomes.push(Outcome::host(Verdict::Skipped, "Skipped", why));
    }
}

/// The message of an `out_of_memory` outcome.
fn memory_exceeded(limit: impl std::fmt::Display) -> String {
    format!("memory limit of {limit} bytes exceeded")
}

fn classify_trap(error: &wasmtime::Error, memory_denied: bool, limits: &Limits) -> Outcome {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::host(
            Verdict::OutOfFuel,
            "OutOfFuel",
            format!("instruction budget of {} exhausted", limits.fuel),
        ),
        Some(Trap::Interrupt) => Outcome::host(
            Verdict::Timeout,
            "Timeout",
            format!("wall-clock limit of {} ms exceeded", limits.timeout_ms),
        ),
        _ if memory_denied => Outcome::host(
            Verdict::OutOfMemory,
            "MemoryError",
            memory_exceeded(limits.memory_bytes),
        ),
        Some(Trap::StackOverflow) => Outcome::host(
            Verdict::Fault,
            "StackOverflow",
            "the interpreter exhausted its native stack",
        ),
        Some(trap) => Outcome::host(Verdict::Fault, "SandboxFault", trap.to_string()),
        None => Outcome::host(Verdict::Fault, "SandboxFault", format!("{error:#}")),
    }
}

fn item_done(mut caller: Caller<'_, HostState>, ptr: u32, len: u32) -> wasmtime::Result<()> {
    let fuel_left = caller.get_fuel().unwrap_or(0);
    let memory: Memory = match caller.get_export(abi::MEMORY) {
        Some(wasmtime::Extern::Memory(m)) => m,
        _ => wasmtime::bail!("guest exports no memory"),
    };
    let state_max = caller.data().max_result_bytes;
    let outcome = if len as usize > state_max {
        let outcome = Outcome::host(
            Verdict::OutputLimit,
            "OutputLimit",
            format!("result of {len} bytes is larger than {state_max}"),
        );
        (outcome, Next::Done)
    } else {
        let mut buffer = vec![0u8; len as usize];
        memory.read(&caller, ptr as usize, &mut buffer)?;
        match serde_json::from_slice::<ItemResult>(&buffer) {
            Ok(mut result) => {
                let next = match result.evaluated.take() {
                    Some(text) => Next::Evaluated(text),
                    None if result.needs_evaluation => Next::Evaluate,
                    None => Next::Done,
                };
                (Outcome::from_guest(result), next)
            }
            Err(e) => {
                let outcome = Outcome::host(
                    Verdict::Fault,
                    "SandboxFault",
                    format!("unreadable result from the guest: {e}"),
                );
                (outcome, Next::Done)
            }
        }
    };
    let state = caller.data_mut();
    let (mut outcome, next) = outcome;
    state.next = next;
    if state.limiter.denied
        && outcome.verdict == Verdict::Error
        && outcome.error_type.as_deref() == Some("MemoryError")
    {
        // The interpreter caught the refused allocation and raised `MemoryError`, and the
        // program let it escape: the memory cap was reached, as when the allocator aborts.
        outcome.verdict = Verdict::OutOfMemory;
        outcome.error_message = Some(memory_exceeded(state.limiter.max_bytes));
    }
    outcome.fuel_used = state.fuel.saturating_sub(fuel_left);
    outcome.micros = state.item_started.elapsed().as_micros() as u64;
    state.outcomes.push(outcome);
    Ok(())
}

/// The default cache directory: `$AZR_CACHE_DIR`, else `$XDG_CACHE_HOME/azr-rs`, else
/// `$HOME/.cache/azr-rs`, else the system temp directory.
pub fn default_cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("AZR_CACHE_DIR") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Path::new(&dir).join("azr-rs");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return Path::new(&home).join(".cache/azr-rs");
    }
    std::env::temp_dir().join("azr-rs")
}
