//! What programs print, captured in Rust.
//!
//! `sys.stdout` and `sys.stderr` are Python objects (`harness.Stream`), but their `write`,
//! and their `buffer.write`, are native functions that append to buffers here. Everything
//! the cap and the verdict depend on happens in those functions: the text's length is read
//! from the `str` payload (a subclass's `__len__` is never called), a lone surrogate raises
//! `UnicodeEncodeError` as CPython's UTF-8 stream does, and past the cap the write raises
//! `OutputLimit` and the overflow is recorded. A program can replace `sys.stdout` or its
//! `write`, but then what it prints never reaches the buffers, and nothing it does to the
//! Python objects changes what was captured or whether the cap was passed. The buffers live
//! in linear memory, which the host puts back between items like everything else.

use std::cell::RefCell;

use rustpython_vm::{
    PyObjectRef, PyResult, VirtualMachine,
    builtins::{PyByteArray, PyBytes, PyStr, PyType},
    function::FuncArgs,
};

/// One of the two streams.
#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Default)]
struct Buffers {
    stdout: String,
    stderr: String,
    /// Characters written to both, together (what the cap bounds).
    chars: usize,
    cap: usize,
    overflow: bool,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Empties the buffers; `cap` characters may be written from now on.
pub fn reset(cap: u64) {
    BUFFERS.with(|b| {
        *b.borrow_mut() = Buffers {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            ..Buffers::default()
        }
    });
}

/// stdout then stderr, and whether the cap was passed.
pub fn taken() -> (String, bool) {
    BUFFERS.with(|b| {
        let b = b.borrow();
        (format!("{}{}", b.stdout, b.stderr), b.overflow)
    })
}

/// stdout and stderr apart, and whether the cap was passed.
pub fn taken_apart() -> (String, String, bool) {
    BUFFERS.with(|b| {
        let b = b.borrow();
        (b.stdout.clone(), b.stderr.clone(), b.overflow)
    })
}

/// Appends `text` (of `chars` characters) up to the cap; false when it did not fit.
fn append(stream: Stream, text: &str, chars: usize) -> bool {
    BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        let room = b.cap.saturating_sub(b.chars);
        let (kept, fits) = if chars <= room {
            (text, true)
        } else {
            let end = text.char_indices().nth(room).map_or(text.len(), |(i, _)| i);
            (&text[..end], false)
        };
        match stream {
            Stream::Stdout => b.stdout.push_str(kept),
            Stream::Stderr => b.stderr.push_str(kept),
        }
        if fits {
            b.chars += chars;
        } else {
            b.chars = b.cap;
            b.overflow = true;
        }
        fits
    })
}

fn over_cap(
    vm: &VirtualMachine,
    output_limit: &PyObjectRef,
) -> rustpython_vm::builtins::PyBaseExceptionRef {
    let cap = BUFFERS.with(|b| b.borrow().cap);
    match output_limit.clone().downcast::<PyType>() {
        Ok(class) => vm.new_exception_msg(
            class,
            format!("output limit of {cap} characters exceeded").into(),
        ),
        Err(_) => vm.new_runtime_error("output limit exceeded"),
    }
}

/// The one argument of a `write`.
fn one_argument<'a>(args: &'a FuncArgs, vm: &VirtualMachine) -> PyResult<&'a PyObjectRef> {
    match args.args.as_slice() {
        [one] => Ok(one),
        all => Err(vm.new_type_error(format!(
            "write() takes exactly one argument ({} given)",
            all.len()
        ))),
    }
}

/// `stream.write(s)`: a `str` (or subclass) in, its length in characters out.
pub fn text_writer(vm: &VirtualMachine, stream: Stream, output_limit: PyObjectRef) -> PyObjectRef {
    vm.new_function(
        "write",
        move |args: FuncArgs, vm: &VirtualMachine| -> PyResult {
            let s = one_argument(&args, vm)?;
            let Some(text) = s.downcast_ref::<PyStr>() else {
                return Err(vm.new_type_error(format!(
                    "write() argument must be str, not {}",
                    s.class().name()
                )));
            };
            let Some(utf8) = text.to_str() else {
                let position = text
                    .as_wtf8()
                    .code_points()
                    .position(|c| (0xD800..=0xDFFF).contains(&c.to_u32()))
                    .unwrap_or(0);
                return Err(vm.new_exception(
                    vm.ctx.exceptions.unicode_encode_error.to_owned(),
                    vec![
                        vm.ctx.new_str("utf-8").into(),
                        s.clone(),
                        vm.ctx.new_int(position).into(),
                        vm.ctx.new_int(position + 1).into(),
                        vm.ctx.new_str("surrogates not allowed").into(),
                    ],
                ));
            };
            let chars = text.char_len();
            if !append(stream, utf8, chars) {
                return Err(over_cap(vm, &output_limit));
            }
            Ok(vm.ctx.new_int(chars).into())
        },
    )
    .into()
}

/// `stream.buffer.write(b)`: bytes in (UTF-8; invalid sequences shown as U+FFFD), their
/// count out.
pub fn bytes_writer(vm: &VirtualMachine, stream: Stream, output_limit: PyObjectRef) -> PyObjectRef {
    vm.new_function(
        "write",
        move |args: FuncArgs, vm: &VirtualMachine| -> PyResult {
            let b = one_argument(&args, vm)?;
            let bytes = if let Some(b) = b.downcast_ref::<PyBytes>() {
                b.as_bytes().to_vec()
            } else if let Some(b) = b.downcast_ref::<PyByteArray>() {
                b.borrow_buf().to_vec()
            } else {
                return Err(vm.new_type_error(format!(
                    "a bytes-like object is required, not '{}'",
                    b.class().name()
                )));
            };
            let text = String::from_utf8_lossy(&bytes);
            if !append(stream, &text, text.chars().count()) {
                return Err(over_cap(vm, &output_limit));
            }
            Ok(vm.ctx.new_int(bytes.len()).into())
        },
    )
    .into()
}
