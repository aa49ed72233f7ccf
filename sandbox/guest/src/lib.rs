//! The azr-sandbox guest: a RustPython interpreter compiled to `wasm32-wasip1`.
//!
//! The host pre-initialises this module once with wizer (`azr_init` builds the interpreter,
//! imports the common stdlib modules and loads the harness), snapshots its memory, and then
//! runs every program from that snapshot. A request is one JSON document with the items of
//! one program; `azr_prepare` compiles and runs the program and reduces its gold values
//! (`ops.rs`), the host records the memory, and each item then runs with `azr_item` from
//! that recorded state: the host puts linear memory back between items.
//!
//! ABI (all integers are i32 on wasm32):
//! - export `azr_init()`: wizer's initialisation function; never called after the snapshot.
//! - export `azr_alloc(len) -> ptr`: a buffer for the host to write a request into.
//! - export `azr_prepare(ptr, len) -> status`: takes the request; 0 when prepared, 1 when the
//!   request could not be read (its message went through `item_done` as a fault).
//! - export `azr_item(index, ptr, len) -> status`: runs item `index`; `ptr`/`len` carry an
//!   abduction answer's arguments for its second stage (`len` 0: none). Answers through
//!   `item_done` exactly once.
//! - import `azr.item_done(ptr, len)`: one JSON result.

use std::cell::RefCell;

use rustpython::InterpreterBuilderExt;
use rustpython_vm::{
    AsObject, Interpreter, PyObjectRef, PyResult, Settings, VirtualMachine,
    builtins::{PyBaseExceptionRef, PyComplex, PyFloat, PyType},
    scope::Scope,
};

mod capture;
mod judge;
mod ops;

use azr_guest_contract::ItemResult;
use ops::{Harness, Prepared};

mod host {
    // The module's name is `azr_guest_contract::abi::HOST_MODULE` (a literal here: this
    // attribute takes no macro).
    #[link(wasm_import_module = "azr")]
    unsafe extern "C" {
        #[link_name = azr_guest_contract::import_item_done!()]
        pub fn item_done(ptr: *const u8, len: usize);
    }
}

/// Modules imported at initialisation so that their import cost lands in the snapshot.
const PRELOAD: &str = "\
import collections, itertools, math, re, functools, heapq, string, operator, bisect, copy
import typing, json, fractions, decimal, statistics, dataclasses, random, enum, array, struct
import unicodedata, base64, textwrap, cmath, abc, contextlib, os
import posix
posix._serve_files()
";

const POSIX_SHIM: &str = include_str!("../python/posix.py");
const FILES: &str = include_str!("../python/files.py");
const HARNESS: &str = include_str!("../python/harness.py");

struct Guest {
    interpreter: Interpreter,
    harness: Harness,
}

thread_local! {
    static GUEST: RefCell<Option<Guest>> = const { RefCell::new(None) };
    /// The prepared program: part of the memory the host puts back before every item.
    static PREPARED: RefCell<Option<Prepared>> = const { RefCell::new(None) };
}

fn emit(result: &ItemResult) {
    let bytes = serde_json::to_vec(result).unwrap_or_else(|_| {
        br#"{"verdict":"fault","stdout":"","error_type":"GuestError","error_message":"unserialisable result"}"#
            .to_vec()
    });
    // SAFETY: the host reads `len` bytes at `ptr` from this instance's memory during the call.
    unsafe { host::item_done(bytes.as_ptr(), bytes.len()) };
}

fn fault(message: String) {
    emit(&ItemResult::fault(message));
}

/// An exception's message (its `__str__`, which may be Python code: informational only).
pub(crate) fn exception_message(vm: &VirtualMachine, exc: &PyBaseExceptionRef) -> String {
    exc.as_object()
        .str(vm)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("<unprintable {}>", exc.class().name()))
}

fn describe(vm: &VirtualMachine, exc: &PyBaseExceptionRef) -> String {
    format!("{}: {}", exc.class().name(), exception_message(vm, exc))
}

/// The whole Python traceback, for failures of the guest's own start-up code.
fn traceback(vm: &VirtualMachine, exc: &PyBaseExceptionRef) -> String {
    let formatted = vm.import("traceback", 0).and_then(|tb| {
        let lines = vm.call_method(&tb, "format_exception", (exc.clone(),))?;
        let joined = vm.ctx.new_str("").as_object().to_owned();
        vm.call_method(&joined, "join", (lines,))?.str(vm)
    });
    match formatted {
        Ok(text) => text.to_string_lossy().into_owned(),
        Err(_) => describe(vm, exc),
    }
}

/// Free heap left at the end of start-up (see `build`).
const HEAP_SLACK: usize = 4 << 20;

fn build() -> Result<Guest, String> {
    let mut settings = Settings::default();
    // PYTHONHASHSEED=0: str/bytes hashes are CPython's with randomization off (the patched
    // RustPython hashes as CPython 3.11 does), so sets iterate as in `PYTHONHASHSEED=0 python3`.
    settings.hash_seed = Some(0);
    // Which strings that CPython has interned when a program starts: it decides how a set
    // display of constants such as `{1, 2, "name"}` is laid out (patches/README.md).
    rustpython_vm::builtins::PyCode::set_cpython_interned_names(include_str!(
        "../data/cpython-interned-names.txt"
    ));
    settings.import_site = false;
    settings.user_site_directory = false;
    settings.ignore_environment = true;
    let interpreter = Interpreter::builder(settings).init_stdlib().build();
    let harness = interpreter.enter(|vm| -> PyResult<Harness> {
        let sys = vm.import("sys", 0)?;
        // The in-memory files first: `posix` serves its file functions from them.
        let files = source_module(vm, "_azr_files", FILES)?;
        // `os` looks for `posix` among the built-in modules; make ours one.
        source_module(vm, "posix", POSIX_SHIM)?;
        let names = sys.get_attr("builtin_module_names", vm)?;
        let posix: PyObjectRef = vm
            .ctx
            .new_tuple(vec![vm.ctx.new_str("posix").into()])
            .into();
        let extended = vm._add(&names, &posix)?;
        sys.set_attr("builtin_module_names", extended, vm)?;

        vm.run_string(vm.new_scope_with_builtins(), PRELOAD, "<preload>")?;

        let scope: Scope = vm.new_scope_with_builtins();
        scope
            .globals
            .set_item("__name__", vm.ctx.new_str("_azr_harness").into(), vm)?;
        vm.run_string(scope.clone(), HARNESS, "<harness>")?;
        let get = |name: &str| scope.globals.get_item(name, vm);
        // The streams programs print to write natively (capture.rs).
        let output_limit = get("OutputLimit")?;
        get("install_streams")?.call(
            (
                capture::text_writer(vm, capture::Stream::Stdout, output_limit.clone()),
                capture::bytes_writer(vm, capture::Stream::Stdout, output_limit.clone()),
                capture::text_writer(vm, capture::Stream::Stderr, output_limit.clone()),
                capture::bytes_writer(vm, capture::Stream::Stderr, output_limit.clone()),
            ),
            vm,
        )?;
        let default_banned = get("DEFAULT_BANNED")?
            .try_to_value::<Vec<String>>(vm)
            .unwrap_or_default();
        let collections = vm.import("collections", 0)?;
        let harness = Harness {
            install_files: files.get_attr("install", vm)?,
            fetch_files: files.get_attr("fetch", vm)?,
            begin: get("begin")?,
            make_stdin: get("make_stdin")?,
            restart_capture: get("restart_capture")?,
            banned_import: get("banned_import")?,
            compile_program: get("compile_program")?,
            output_limit,
            default_banned,
            known: judge::KnownTypes {
                deque: collections.get_attr("deque", vm).ok(),
                ordered_dict: collections.get_attr("OrderedDict", vm).ok(),
                snapshot: std::rc::Rc::new(snapshot_objects(vm)),
            },
        };
        // Start every program from a collected heap.
        let gc = vm.import("gc", 0)?;
        vm.call_method(&gc, "collect", ())?;
        // And with free memory at the top of it: a program whose allocations fit does not
        // grow linear memory, and only an instance whose memory did not grow is reset in
        // place rather than replaced (engine.rs), which is several times cheaper. Without
        // this, the slack left by start-up is whatever the last allocation left, and a
        // change anywhere in the interpreter can make every call grow memory. The pages
        // stay zero, so the snapshot does not carry them.
        drop(std::hint::black_box(Vec::<u8>::with_capacity(HEAP_SLACK)));
        Ok(harness)
    });
    match harness {
        Ok(harness) => Ok(Guest {
            interpreter,
            harness,
        }),
        Err(exc) => {
            let message = interpreter.enter(|vm| traceback(vm, &exc));
            Err(message)
        }
    }
}

/// Runs `source` as module `name` and registers it in `sys.modules` (the guest's own Python
/// modules, which no importer could find: the frozen stdlib does not hold them).
fn source_module(vm: &VirtualMachine, name: &str, source: &str) -> PyResult<PyObjectRef> {
    let scope = vm.new_scope_with_builtins();
    scope
        .globals
        .set_item("__name__", vm.ctx.new_str(name).into(), vm)?;
    vm.run_string(scope.clone(), source, &format!("<{name}>"))?;
    let types = vm.import("types", 0)?;
    let module = vm.call_method(&types, "ModuleType", (vm.ctx.new_str(name),))?;
    let module_dict = module.get_attr("__dict__", vm)?;
    vm.call_method(&module_dict, "update", (scope.globals.clone(),))?;
    vm.sys_module
        .get_attr("modules", vm)?
        .set_item(name, module.clone(), vm)?;
    Ok(module)
}

/// The objects every instance shares at one address (see `judge::Snapshot`): the classes,
/// builtin functions and float or complex constants (`math.nan`) of the builtins and of the
/// modules loaded at initialisation.
fn snapshot_objects(vm: &VirtualMachine) -> judge::Snapshot {
    let mut objects: Vec<PyObjectRef> = Vec::new();
    let mut add_from = |dict: &rustpython_vm::builtins::PyDict| {
        for (_, value) in dict.items_vec() {
            let class = value.class();
            if value.downcast_ref::<PyType>().is_some()
                || value.downcast_ref::<PyFloat>().is_some()
                || value.downcast_ref::<PyComplex>().is_some()
                || class.is(vm.ctx.types.builtin_function_or_method_type)
            {
                objects.push(value);
            }
        }
    };
    add_from(&vm.builtins.dict());
    if let Ok(modules) = vm.sys_module.get_attr("modules", vm)
        && let Some(modules) = modules.downcast_ref::<rustpython_vm::builtins::PyDict>()
    {
        for (_, module) in modules.items_vec() {
            if let Some(dict) = module.dict() {
                add_from(&dict);
            }
        }
    }
    judge::Snapshot::new(objects)
}

/// Wizer's initialisation function: everything done here is in the snapshot.
#[unsafe(export_name = azr_guest_contract::export_init!())]
pub extern "C" fn azr_init() {
    match build() {
        Ok(guest) => GUEST.with(|g| *g.borrow_mut() = Some(guest)),
        // Leave GUEST empty: every call then reports the failure as a fault.
        Err(message) => INIT_ERROR.with(|e| *e.borrow_mut() = Some(message)),
    }
}

thread_local! {
    static INIT_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

#[unsafe(export_name = azr_guest_contract::export_alloc!())]
pub extern "C" fn azr_alloc(len: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(len.max(1));
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Runs `f` with the guest, or reports why there is none.
fn with_guest(f: impl FnOnce(&Guest) -> i32) -> i32 {
    GUEST.with(|g| {
        let guard = g.borrow();
        match guard.as_ref() {
            Some(guest) => f(guest),
            None => {
                let message = INIT_ERROR
                    .with(|e| e.borrow().clone())
                    .unwrap_or_else(|| "guest was not initialised".to_owned());
                fault(format!("interpreter initialisation failed: {message}"));
                1
            }
        }
    })
}

/// Takes a request: compiles and runs its program, reduces its gold values.
///
/// # Safety
/// `ptr` must point at `len` initialised bytes that the host wrote after `azr_alloc(len)`.
#[unsafe(export_name = azr_guest_contract::export_prepare!())]
pub unsafe extern "C" fn azr_prepare(ptr: *mut u8, len: usize) -> i32 {
    // SAFETY: the host allocated the buffer with `azr_alloc(len)` and filled it.
    let request = unsafe { Vec::from_raw_parts(ptr, len, len.max(1)) };
    let request: azr_guest_contract::Request = match serde_json::from_slice(&request) {
        Ok(r) => r,
        Err(e) => {
            fault(format!("unreadable request: {e}"));
            return 1;
        }
    };
    with_guest(|guest| {
        let prepared = guest
            .interpreter
            .enter(|vm| Prepared::new(vm, &guest.harness, request));
        PREPARED.with(|p| *p.borrow_mut() = Some(prepared));
        0
    })
}

/// Runs one item of the prepared request.
///
/// # Safety
/// With `len` > 0, `ptr` must point at `len` initialised bytes from `azr_alloc(len)`.
#[unsafe(export_name = azr_guest_contract::export_item!())]
pub unsafe extern "C" fn azr_item(index: usize, ptr: *mut u8, len: usize) -> i32 {
    let arguments = if len == 0 {
        None
    } else {
        // SAFETY: as above.
        let bytes = unsafe { Vec::from_raw_parts(ptr, len, len.max(1)) };
        match String::from_utf8(bytes) {
            Ok(s) => Some(s),
            Err(_) => {
                fault("arguments are not UTF-8".to_owned());
                return 1;
            }
        }
    };
    with_guest(|guest| {
        PREPARED.with(|p| {
            let guard = p.borrow();
            let Some(prepared) = guard.as_ref() else {
                fault("no request was prepared".to_owned());
                return 1;
            };
            let result = guest
                .interpreter
                .enter(|vm| prepared.run_item(vm, &guest.harness, index, arguments.as_deref()));
            emit(&result);
            0
        })
    })
}
