//! The azr-sandbox guest: a RustPython interpreter compiled to `wasm32-wasip1`.
//!
//! The host pre-initialises this module once with wizer (`azr_init` builds the interpreter,
//! imports the common stdlib modules and loads the harness), snapshots its memory, and then
//! gives every request a *fresh instance* of that snapshot. A request is one JSON document
//! with a list of items; the harness (`python/harness.py`) evaluates them one by one.
//!
//! ABI (all integers are i32 on wasm32):
//! - export `azr_init()`: wizer's initialisation function; never called after the snapshot.
//! - export `azr_alloc(len) -> ptr`: a buffer for the host to write the request into.
//! - export `azr_call(ptr, len) -> status`: runs the request; 0 when every item was answered,
//!   1 when the harness itself failed (its message went through `item_done` as a fault).
//! - import `azr.item_start(index)`: before each item, so the host can reset the item's fuel
//!   and wall-clock budget and knows which item was running if the instance traps.
//! - import `azr.item_done(ptr, len)`: one JSON result per item, in order.

use std::cell::RefCell;

use rustpython::InterpreterBuilderExt;
use rustpython_vm::{
    AsObject, Interpreter, PyObjectRef, PyResult, Settings, VirtualMachine,
    builtins::PyBaseExceptionRef,
    scope::Scope,
};
use serde::Serialize;

mod host {
    #[link(wasm_import_module = "azr")]
    unsafe extern "C" {
        pub fn item_start(index: u32);
        pub fn item_done(ptr: *const u8, len: usize);
    }
}

/// Modules imported at initialisation so that their import cost lands in the snapshot.
const PRELOAD: &str = "\
import collections, itertools, math, re, functools, heapq, string, operator, bisect, copy
import typing, json, fractions, decimal, statistics, dataclasses, random, enum, array, struct
import unicodedata, base64, textwrap, cmath, abc, contextlib, os
import posix
posix._lock_down_files()
";

const POSIX_SHIM: &str = include_str!("../python/posix.py");
const HARNESS: &str = include_str!("../python/harness.py");

struct Guest {
    interpreter: Interpreter,
    dispatch: PyObjectRef,
}

thread_local! {
    static GUEST: RefCell<Option<Guest>> = const { RefCell::new(None) };
}

/// One item's answer as the host reads it.
#[derive(Serialize)]
struct ItemResult {
    verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    passed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    stdout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
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
    emit(&ItemResult {
        verdict: "fault".to_owned(),
        passed: None,
        value: None,
        stdout: String::new(),
        error_type: Some("GuestError".to_owned()),
        error_message: Some(message),
    });
}

fn describe(vm: &VirtualMachine, exc: &PyBaseExceptionRef) -> String {
    let name = exc.class().name().to_string();
    let message = exc
        .as_object()
        .str(vm)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{name}: {message}")
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
    let dispatch = interpreter.enter(|vm| -> PyResult<PyObjectRef> {
        let sys = vm.import("sys", 0)?;
        // `os` looks for `posix` among the built-in modules; make ours one.
        let shim_scope = vm.new_scope_with_builtins();
        shim_scope
            .globals
            .set_item("__name__", vm.ctx.new_str("posix").into(), vm)?;
        vm.run_string(shim_scope.clone(), POSIX_SHIM, "<posix>")?;
        let types = vm.import("types", 0)?;
        let module = vm.call_method(&types, "ModuleType", (vm.ctx.new_str("posix"),))?;
        let module_dict = module.get_attr("__dict__", vm)?;
        vm.call_method(&module_dict, "update", (shim_scope.globals.clone(),))?;
        let modules = sys.get_attr("modules", vm)?;
        modules.set_item("posix", module, vm)?;
        let names = sys.get_attr("builtin_module_names", vm)?;
        let posix: PyObjectRef = vm.ctx.new_tuple(vec![vm.ctx.new_str("posix").into()]).into();
        let extended = vm._add(&names, &posix)?;
        sys.set_attr("builtin_module_names", extended, vm)?;

        vm.run_string(vm.new_scope_with_builtins(), PRELOAD, "<preload>")?;

        let scope: Scope = vm.new_scope_with_builtins();
        scope
            .globals
            .set_item("__name__", vm.ctx.new_str("_azr_harness").into(), vm)?;
        vm.run_string(scope.clone(), HARNESS, "<harness>")?;
        let dispatch = scope.globals.get_item("dispatch", vm)?;
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
        Ok(dispatch)
    });
    match dispatch {
        Ok(dispatch) => Ok(Guest {
            interpreter,
            dispatch,
        }),
        Err(exc) => {
            let message = interpreter.enter(|vm| traceback(vm, &exc));
            Err(message)
        }
    }
}

/// Wizer's initialisation function: everything done here is in the snapshot.
#[unsafe(no_mangle)]
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

#[unsafe(no_mangle)]
pub extern "C" fn azr_alloc(len: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(len.max(1));
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

fn tuple_field(vm: &VirtualMachine, obj: &PyObjectRef, index: usize) -> PyResult<PyObjectRef> {
    obj.get_item(&index, vm)
}

fn opt_string(vm: &VirtualMachine, obj: PyObjectRef) -> PyResult<Option<String>> {
    if vm.is_none(&obj) {
        return Ok(None);
    }
    Ok(Some(obj.str(vm)?.to_string_lossy().into_owned()))
}

fn to_result(vm: &VirtualMachine, tuple: &PyObjectRef) -> PyResult<ItemResult> {
    let verdict = tuple_field(vm, tuple, 0)?.str(vm)?.to_string_lossy().into_owned();
    let passed_obj = tuple_field(vm, tuple, 1)?;
    let passed = if vm.is_none(&passed_obj) {
        None
    } else {
        Some(passed_obj.try_to_bool(vm)?)
    };
    let value = opt_string(vm, tuple_field(vm, tuple, 2)?)?;
    let stdout = opt_string(vm, tuple_field(vm, tuple, 3)?)?.unwrap_or_default();
    let error_type = opt_string(vm, tuple_field(vm, tuple, 4)?)?;
    let error_message = opt_string(vm, tuple_field(vm, tuple, 5)?)?;
    Ok(ItemResult {
        verdict,
        passed,
        value,
        stdout,
        error_type,
        error_message,
    })
}

/// Runs one request.
///
/// # Safety
/// `ptr` must point at `len` initialised bytes that the host wrote after `azr_alloc(len)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn azr_call(ptr: *mut u8, len: usize) -> i32 {
    // SAFETY: the host allocated the buffer with `azr_alloc(len)` and filled it.
    let request = unsafe { Vec::from_raw_parts(ptr, len, len.max(1)) };
    let Ok(request) = String::from_utf8(request) else {
        fault("request is not UTF-8".to_owned());
        return 1;
    };
    GUEST.with(|g| {
        let guard = g.borrow();
        let Some(guest) = guard.as_ref() else {
            let message = INIT_ERROR
                .with(|e| e.borrow().clone())
                .unwrap_or_else(|| "guest was not initialised".to_owned());
            fault(format!("interpreter initialisation failed: {message}"));
            return 1;
        };
        guest.interpreter.enter(|vm| {
            let iterator = match guest.dispatch.call((vm.ctx.new_str(request),), vm) {
                Ok(it) => it,
                Err(exc) => {
                    fault(describe(vm, &exc));
                    return 1;
                }
            };
            let mut index: u32 = 0;
            loop {
                // SAFETY: a plain host call with an integer argument.
                unsafe { host::item_start(index) };
                match vm.call_method(&iterator, "__next__", ()) {
                    Ok(tuple) => match to_result(vm, &tuple) {
                        Ok(result) => emit(&result),
                        Err(exc) => {
                            fault(describe(vm, &exc));
                            return 1;
                        }
                    },
                    Err(exc) if exc.fast_isinstance(vm.ctx.exceptions.stop_iteration) => {
                        return 0;
                    }
                    Err(exc) => {
                        fault(describe(vm, &exc));
                        return 1;
                    }
                }
                index += 1;
            }
        })
    })
}
