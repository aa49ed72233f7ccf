//! The judge: values reduced to plain data by native code and compared by native code.
//!
//! A check's verdict must not depend on anything the judged code can reach. Model-written
//! code runs in the same interpreter as the check, so every Python-level means of comparing
//! (`==`, `__eq__`, `repr`, the harness's own functions, builtins) is in its reach. This
//! module never calls one: [`Value::of`] walks an object graph by reading the payloads of
//! the built-in types directly (the list's vector, the dict's entries, the int's digits), and
//! [`equal`] compares two such values in Rust with the rules of CPython's `==` on plain data.
//! The gold value is reduced before any answer runs, and the reduced value lives in Rust
//! memory, which no Python object refers to.
//!
//! The rules, as SECURITY.md states them for users:
//! - `bool`, `int`, `float`, `complex` compare by numeric value across types (`1 == 1.0 ==
//!   True`), exactly (a float equals an int only if it is that integer); NaN (and a complex
//!   with a NaN part) never equals anything at the top level, and inside containers only the
//!   same object (CPython's identity shortcut).
//! - `str` by code points; `bytes` and `bytearray` by bytes, with each other; `list` with
//!   `list`, `tuple` with `tuple`, element-wise; `dict` by keys and values, ignoring order, each
//!   key of one side matched with a different key of the other; two `OrderedDict`s in order;
//!   `set` and `frozenset` by elements, matched one to one, and `dict.keys()`/`dict.items()`
//!   as sets of keys and pairs; `range` as CPython compares ranges.
//! - Subclasses of these built-in types compare by their built-in content (what `==` does
//!   unless the subclass overrides `__eq__`; an override is not called).
//! - An instance of a class written in Python on `object` compares equal to an instance of
//!   the same class whose `__dict__` and declared slots (slot by slot, unset as unset) compare
//!   equal (a `@dataclass`'s `==`); a custom `__eq__` is not called. `collections.deque` and
//!   its subclasses compare element-wise; a subclass of another native type equals itself.
//! - Every other object (functions, modules, types, ...) equals only itself.
//! - A value nested deeper than [`MAX_DEPTH`] or larger than [`MAX_NODES`] cannot be judged:
//!   the check fails, as CPython's comparison would raise `RecursionError` or run out of time.
//! - A value that contains itself is compared by identity where it recurs.
//!
//! An answer is reduced in an instance where the program never ran ([`Value::portable`]
//! carries it to the program's instance): only identities of objects made before the
//! snapshot mean the same in both.
//!
//! The guest is not built for the host, so these rules are tested from outside, against
//! CPython itself: `sandbox/tests/judge_rules.rs`.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use malachite_bigint::BigInt;
use num_traits::{FromPrimitive, Signed, Zero};
use rustpython_vm::{
    AsObject, Py, PyObject, PyObjectRef, PyPayload, PyResult, VirtualMachine,
    builtins::descriptor::PyMemberDescriptor,
    builtins::{
        DictViewKind, PyByteArray, PyBytes, PyComplex, PyDict, PyFloat, PyFrozenSet, PyInt, PyList,
        PyRange, PySet, PyStr, PyTuple, PyType, dict_view_parts,
    },
    types::{GetDescriptor, PyTypeFlags},
};
use serde::{Deserialize, Serialize};

/// Deepest nesting a value may have (CPython's default recursion limit bounds `==` alike).
pub const MAX_DEPTH: usize = 1000;
/// Most objects one value may hold (and most element comparisons one check may make).
pub const MAX_NODES: usize = 1 << 22;

/// A value as plain data. Identities (`usize`) are object addresses in this instance's
/// memory: meaningful only within one instance state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Value {
    None,
    Ellipsis,
    NotImplemented,
    Bool(bool),
    /// Decimal digits (serde); compared as an integer.
    Int(#[serde(with = "bigint_text")] BigInt),
    Float {
        bits: u64,
        id: usize,
    },
    /// `id` as for floats: recorded only when a part is NaN.
    Complex {
        re: u64,
        im: u64,
        id: usize,
    },
    /// WTF-8 (a Python `str` may hold lone surrogates).
    Str(Vec<u8>),
    Bytes {
        data: Vec<u8>,
        mutable: bool,
    },
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// In insertion order.
    Dict(Vec<(Value, Value)>),
    /// A `collections.OrderedDict` (or subclass), in order: against another one, `==`
    /// compares the order too.
    OrderedDict(Vec<(Value, Value)>),
    /// In iteration order.
    Set {
        items: Vec<Value>,
        frozen: bool,
    },
    Range {
        #[serde(with = "bigint_text")]
        start: BigInt,
        #[serde(with = "bigint_text")]
        stop: BigInt,
        #[serde(with = "bigint_text")]
        step: BigInt,
    },
    /// An instance of a class written in Python (or a deque): its class and what it holds.
    Instance {
        class: usize,
        parts: Vec<Value>,
    },
    /// Any other object: equal only to itself.
    Object(usize),
    /// A container met again inside itself.
    Cycle(usize),
    /// A slot of an instance that holds no value (`__slots__` entry never assigned).
    Unset,
}

mod bigint_text {
    use malachite_bigint::BigInt;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &BigInt, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BigInt, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// Why a value could not be reduced or compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unjudgeable {
    TooDeep,
    TooLarge,
}

impl Unjudgeable {
    pub fn message(self) -> String {
        match self {
            Unjudgeable::TooDeep => {
                format!("value nested deeper than {MAX_DEPTH} levels cannot be compared")
            }
            Unjudgeable::TooLarge => {
                format!("value with more than {MAX_NODES} parts cannot be compared")
            }
        }
    }
}

fn addr(obj: &PyObject) -> usize {
    obj as *const PyObject as usize
}

/// Types whose instances are compared by content though they are not heap types.
#[derive(Clone)]
pub struct KnownTypes {
    pub deque: Option<PyObjectRef>,
    pub ordered_dict: Option<PyObjectRef>,
    /// Objects made before the snapshot that every instance shares at the same address:
    /// the classes, builtins and NaNs of the modules loaded then. Held here so that none is
    /// ever freed and its address reused. An answer's `math.nan`, `Fraction` or `int` is
    /// then the gold's, as in CPython.
    pub snapshot: std::rc::Rc<Snapshot>,
}

/// See [`KnownTypes::snapshot`].
#[derive(Default)]
pub struct Snapshot {
    /// Never read: holding them is the point.
    #[allow(dead_code)]
    objects: Vec<PyObjectRef>,
    addresses: HashSet<usize>,
}

impl Snapshot {
    pub fn new(objects: Vec<PyObjectRef>) -> Snapshot {
        let addresses = objects.iter().map(|o| addr(o)).collect();
        Snapshot { objects, addresses }
    }
}

impl KnownTypes {
    fn in_snapshot_id(&self, id: usize) -> bool {
        id != 0 && self.snapshot.addresses.contains(&id)
    }

    /// Whether `object` was made before the snapshot and is shared by every instance.
    pub fn in_snapshot(&self, object: &PyObject) -> bool {
        self.in_snapshot_id(addr(object))
    }

    fn is_subclass(class: &Py<PyType>, known: Option<&PyObjectRef>) -> Option<usize> {
        let known = known?.downcast_ref::<PyType>()?;
        class
            .fast_issubclass(known.as_object())
            .then(|| addr(known.as_object()))
    }
}

struct Walker<'a> {
    vm: &'a VirtualMachine,
    known: &'a KnownTypes,
    nodes: usize,
    open: HashSet<usize>,
    /// The objects whose identity the value records (NaNs, classes, opaque objects).
    identities: Vec<PyObjectRef>,
}

impl Value {
    /// Reduces `obj` to plain data without running any Python code. The identities it
    /// records are only meaningful while `obj` is alive: see [`Value::of_kept`].
    pub fn of(
        obj: &PyObject,
        vm: &VirtualMachine,
        known: &KnownTypes,
    ) -> Result<Value, Unjudgeable> {
        Value::of_kept(obj, vm, known).map(|(value, _)| value)
    }

    /// [`Value::of`], with the objects whose identities the value records. Whoever keeps the
    /// value past the object's life keeps these alive with it, so that no later object can
    /// take one of their addresses and pass for it.
    pub fn of_kept(
        obj: &PyObject,
        vm: &VirtualMachine,
        known: &KnownTypes,
    ) -> Result<(Value, Vec<PyObjectRef>), Unjudgeable> {
        let mut walker = Walker {
            vm,
            known,
            nodes: 0,
            open: HashSet::new(),
            identities: Vec::new(),
        };
        let value = walker.walk(obj, 0)?;
        Ok((value, walker.identities))
    }

    /// Whether [`Value::build`] can make an object of it (no identities).
    pub fn is_plain(&self) -> bool {
        match self {
            Value::Instance { .. }
            | Value::Object(_)
            | Value::Cycle(_)
            | Value::Unset
            | Value::OrderedDict(_) => false,
            Value::List(v) | Value::Tuple(v) => v.iter().all(Value::is_plain),
            Value::Set { items, .. } => items.iter().all(Value::is_plain),
            Value::Dict(kv) => kv.iter().all(|(k, v)| k.is_plain() && v.is_plain()),
            _ => true,
        }
    }

    /// The value as data that means the same in another instance of the guest: an answer
    /// evaluated where the program never ran is compared, in the program's instance, with
    /// the program's gold value. Both instances start from one snapshot, so an identity
    /// means the same in both only for an object that was in the snapshot and is kept
    /// alive ([`KnownTypes::snapshot`]: library classes, builtins, `math.nan`). A value
    /// holding any other identity (an instance of the program's class, a function it made,
    /// a value inside itself) is refused, with what it holds; a NaN made by the answer
    /// loses its identity (it is never the gold's NaN object).
    pub fn portable(&self, known: &KnownTypes) -> Result<Value, String> {
        let kept = |id: usize| if known.in_snapshot_id(id) { id } else { 0 };
        Ok(match self {
            Value::Float { bits, id } => Value::Float {
                bits: *bits,
                id: kept(*id),
            },
            Value::Complex { re, im, id } => Value::Complex {
                re: *re,
                im: *im,
                id: kept(*id),
            },
            Value::List(items) => Value::List(portable_all(items, known)?),
            Value::Tuple(items) => Value::Tuple(portable_all(items, known)?),
            Value::Set { items, frozen } => Value::Set {
                items: portable_all(items, known)?,
                frozen: *frozen,
            },
            Value::Dict(pairs) => Value::Dict(portable_pairs(pairs, known)?),
            Value::OrderedDict(pairs) => Value::OrderedDict(portable_pairs(pairs, known)?),
            Value::Instance { class, parts } if known.in_snapshot_id(*class) => Value::Instance {
                class: *class,
                parts: portable_all(parts, known)?,
            },
            Value::Instance { .. } => {
                return Err("an instance of a class the program defines".into());
            }
            Value::Object(id) if known.in_snapshot_id(*id) => Value::Object(*id),
            Value::Object(_) => {
                return Err(
                    "an object that equals only itself (a function, a generator, \
                            an iterator, ...)"
                        .into(),
                );
            }
            Value::Cycle(_) => return Err("a container that holds itself".into()),
            other => other.clone(),
        })
    }

    /// Makes a new object of this value with built-in types only (no Python code runs but
    /// the hashing of built-in keys).
    pub fn build(&self, vm: &VirtualMachine) -> PyResult<PyObjectRef> {
        let ctx = &vm.ctx;
        Ok(match self {
            Value::None => ctx.none(),
            Value::Ellipsis => ctx.ellipsis.clone().into(),
            Value::NotImplemented => ctx.not_implemented(),
            Value::Bool(b) => ctx.new_bool(*b).into(),
            Value::Int(i) => ctx.new_int(i.clone()).into(),
            Value::Float { bits, .. } => ctx.new_float(f64::from_bits(*bits)).into(),
            Value::Complex { re, im, .. } => ctx
                .new_complex(num_complex::Complex64::new(
                    f64::from_bits(*re),
                    f64::from_bits(*im),
                ))
                .into(),
            Value::Str(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => ctx.new_str(s).into(),
                Err(_) => {
                    return Err(vm.new_value_error(
                        "a string with lone surrogates cannot be passed as an argument",
                    ));
                }
            },
            Value::Bytes {
                data,
                mutable: false,
            } => ctx.new_bytes(data.clone()).into(),
            Value::Bytes {
                data,
                mutable: true,
            } => PyByteArray::from(data.clone()).into_ref(ctx).into(),
            Value::List(items) => ctx
                .new_list(items.iter().map(|v| v.build(vm)).collect::<PyResult<_>>()?)
                .into(),
            Value::Tuple(items) => ctx
                .new_tuple(items.iter().map(|v| v.build(vm)).collect::<PyResult<_>>()?)
                .into(),
            Value::Dict(items) => {
                let dict = ctx.new_dict();
                for (k, v) in items {
                    dict.set_item(&*k.build(vm)?, v.build(vm)?, vm)?;
                }
                dict.into()
            }
            Value::Set {
                items,
                frozen: false,
            } => {
                let set = PySet::default().into_ref(ctx);
                for v in items {
                    set.add(v.build(vm)?, vm)?;
                }
                set.into()
            }
            Value::Set {
                items,
                frozen: true,
            } => {
                let built = items
                    .iter()
                    .map(|v| v.build(vm))
                    .collect::<PyResult<Vec<_>>>()?;
                PyFrozenSet::from_iter(vm, built)?.into_ref(ctx).into()
            }
            Value::Range { start, stop, step } => PyRange {
                start: ctx.new_int(start.clone()),
                stop: ctx.new_int(stop.clone()),
                step: ctx.new_int(step.clone()),
            }
            .into_ref(ctx)
            .into(),
            Value::Instance { .. }
            | Value::Object(_)
            | Value::Cycle(_)
            | Value::Unset
            | Value::OrderedDict(_) => {
                return Err(vm.new_type_error(
                    "only plain data (numbers, strings, bytes, None and the built-in \
                     containers of them) can be passed as an argument",
                ));
            }
        })
    }
}

fn portable_all(items: &[Value], known: &KnownTypes) -> Result<Vec<Value>, String> {
    items.iter().map(|v| v.portable(known)).collect()
}

fn portable_pairs(
    pairs: &[(Value, Value)],
    known: &KnownTypes,
) -> Result<Vec<(Value, Value)>, String> {
    pairs
        .iter()
        .map(|(k, v)| Ok((k.portable(known)?, v.portable(known)?)))
        .collect()
}

impl Walker<'_> {
    fn count(&mut self) -> Result<(), Unjudgeable> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Unjudgeable::TooLarge);
        }
        Ok(())
    }

    fn walk(&mut self, obj: &PyObject, depth: usize) -> Result<Value, Unjudgeable> {
        self.count()?;
        if depth > MAX_DEPTH {
            return Err(Unjudgeable::TooDeep);
        }
        let vm = self.vm;
        let ctx = &vm.ctx;
        let class = obj.class();
        if obj.is(&ctx.none) {
            return Ok(Value::None);
        }
        if obj.is(&ctx.ellipsis) {
            return Ok(Value::Ellipsis);
        }
        if obj.is(&ctx.not_implemented) {
            return Ok(Value::NotImplemented);
        }
        if class.is(ctx.types.bool_type) {
            let truth = obj
                .downcast_ref::<PyInt>()
                .is_some_and(|i| !i.as_bigint().is_zero());
            return Ok(Value::Bool(truth));
        }
        if let Some(i) = obj.downcast_ref::<PyInt>() {
            return Ok(Value::Int(i.as_bigint().clone()));
        }
        if let Some(f) = obj.downcast_ref::<PyFloat>() {
            let value = f.to_f64();
            if value.is_nan() {
                self.identities.push(obj.to_owned());
            }
            return Ok(Value::Float {
                bits: value.to_bits(),
                id: addr(obj),
            });
        }
        if let Some(c) = obj.downcast_ref::<PyComplex>() {
            let c = c.to_complex();
            let id = if c.re.is_nan() || c.im.is_nan() {
                self.identities.push(obj.to_owned());
                addr(obj)
            } else {
                0
            };
            return Ok(Value::Complex {
                re: c.re.to_bits(),
                im: c.im.to_bits(),
                id,
            });
        }
        if let Some(s) = obj.downcast_ref::<PyStr>() {
            return Ok(Value::Str(s.as_wtf8().as_bytes().to_vec()));
        }
        if let Some(b) = obj.downcast_ref::<PyBytes>() {
            return Ok(Value::Bytes {
                data: b.as_bytes().to_vec(),
                mutable: false,
            });
        }
        if let Some(b) = obj.downcast_ref::<PyByteArray>() {
            return Ok(Value::Bytes {
                data: b.borrow_buf().to_vec(),
                mutable: true,
            });
        }
        if let Some(r) = obj.downcast_ref::<PyRange>() {
            return Ok(Value::Range {
                start: r.start.as_bigint().clone(),
                stop: r.stop.as_bigint().clone(),
                step: r.step.as_bigint().clone(),
            });
        }
        let id = addr(obj);
        if self.open.contains(&id) {
            self.identities.push(obj.to_owned());
            return Ok(Value::Cycle(id));
        }
        // Containers: the children are copied out (new references) before any is walked, so
        // no lock is held while walking and nothing is freed under the walk.
        let container = if let Some(l) = obj.downcast_ref::<PyList>() {
            Some(Container::List(l.borrow_vec().to_vec()))
        } else if let Some(t) = obj.downcast_ref::<PyTuple>() {
            Some(Container::Tuple(t.as_slice().to_vec()))
        } else if let Some(d) = obj.downcast_ref::<PyDict>() {
            let ordered =
                KnownTypes::is_subclass(class, self.known.ordered_dict.as_ref()).is_some();
            Some(Container::Dict(d.items_vec(), ordered))
        } else if let Some(s) = obj.downcast_ref::<PySet>() {
            Some(Container::Set(s.elements(), false))
        } else if let Some(s) = obj.downcast_ref::<PyFrozenSet>() {
            Some(Container::Set(s.elements(), true))
        } else if let Some((kind, dict)) = dict_view_parts(obj)
            && kind != DictViewKind::Values
        {
            // `d.keys()` and `d.items()` compare as sets (of keys, of pairs); `d.values()`
            // only with itself.
            Some(Container::View(kind, dict.items_vec()))
        } else {
            if let Some(deque) = KnownTypes::is_subclass(class, self.known.deque.as_ref()) {
                // A deque (or a subclass: its attributes do not take part, as in `==`).
                if let Some(d) = &self.known.deque {
                    self.identities.push(d.clone());
                }
                let own = obj.dict();
                let items: Vec<PyObjectRef> = referents(obj, class)
                    .into_iter()
                    .filter(|r| !own.as_ref().is_some_and(|d| r.is(d.as_object())))
                    .collect();
                Some(Container::Instance(
                    deque,
                    items.into_iter().map(Some).collect(),
                ))
            } else if class.slots.flags.has_feature(PyTypeFlags::HEAPTYPE)
                && native_base(class).is(vm.ctx.types.object_type)
            {
                // A class written in Python on `object`: compared by what it holds. A
                // subclass of another native type (`array.array`, an exception) keeps its
                // content where only that type's code reads it: it equals only itself.
                self.identities.push(class.as_object().to_owned());
                Some(Container::Instance(
                    addr(class.as_object()),
                    instance_state(obj, class, vm),
                ))
            } else {
                None
            }
        };
        let Some(container) = container else {
            self.identities.push(obj.to_owned());
            return Ok(Value::Object(id));
        };
        self.open.insert(id);
        let walk_all = |this: &mut Self, items: Vec<PyObjectRef>| {
            items
                .iter()
                .map(|o| this.walk(o, depth + 1))
                .collect::<Result<Vec<_>, _>>()
        };
        let value = match container {
            Container::List(items) => walk_all(self, items).map(Value::List),
            Container::Tuple(items) => walk_all(self, items).map(Value::Tuple),
            Container::Set(items, frozen) => {
                walk_all(self, items).map(|items| Value::Set { items, frozen })
            }
            Container::Dict(items, ordered) => items
                .iter()
                .map(|(k, v)| Ok((self.walk(k, depth + 1)?, self.walk(v, depth + 1)?)))
                .collect::<Result<Vec<_>, _>>()
                .map(|pairs| {
                    if ordered {
                        Value::OrderedDict(pairs)
                    } else {
                        Value::Dict(pairs)
                    }
                }),
            Container::Instance(class, parts) => parts
                .iter()
                .map(|part| match part {
                    Some(o) => self.walk(o, depth + 1),
                    None => Ok(Value::Unset),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|parts| Value::Instance { class, parts }),
            Container::View(kind, items) => items
                .iter()
                .map(|(k, v)| {
                    let key = self.walk(k, depth + 1)?;
                    Ok(if kind == DictViewKind::Items {
                        Value::Tuple(vec![key, self.walk(v, depth + 1)?])
                    } else {
                        key
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|items| Value::Set {
                    items,
                    frozen: true,
                }),
        };
        self.open.remove(&id);
        value
    }
}

enum Container {
    List(Vec<PyObjectRef>),
    Tuple(Vec<PyObjectRef>),
    Dict(Vec<(PyObjectRef, PyObjectRef)>, bool),
    Set(Vec<PyObjectRef>, bool),
    /// A class identity and what the instance holds (`None`: a slot with no value).
    Instance(usize, Vec<Option<PyObjectRef>>),
    View(DictViewKind, Vec<(PyObjectRef, PyObjectRef)>),
}

/// The first class in `class`'s bases that is not written in Python.
fn native_base(class: &Py<PyType>) -> &Py<PyType> {
    let mut class = class;
    while class.slots.flags.has_feature(PyTypeFlags::HEAPTYPE) {
        match class.base.deref() {
            Some(base) => class = base,
            None => break,
        }
    }
    class
}

/// What an instance of a class written in Python holds, in a fixed layout: its `__dict__`
/// (`None` without one), then every slot its classes declare, in method resolution order,
/// each read by the slot's own native descriptor (`None` when unset). Two instances whose
/// different slots are set therefore differ, as their attributes do.
fn instance_state(
    obj: &PyObject,
    class: &Py<PyType>,
    vm: &VirtualMachine,
) -> Vec<Option<PyObjectRef>> {
    let mut parts = vec![obj.dict().map(Into::into)];
    let mut classes = class.mro_collect();
    if !classes.first().is_some_and(|c| c.is(class)) {
        classes.insert(0, class.to_owned());
    }
    for cls in classes {
        if !cls.slots.flags.has_feature(PyTypeFlags::HEAPTYPE) {
            continue;
        }
        for (_, attribute) in cls.attributes.entries() {
            if attribute.downcast_ref::<PyMemberDescriptor>().is_some() {
                let value = <PyMemberDescriptor as GetDescriptor>::descr_get(
                    &attribute,
                    Some(obj),
                    None,
                    vm,
                );
                parts.push(value.ok());
            }
        }
    }
    parts
}

/// What an instance holds (a container's items), without its class.
fn referents(obj: &PyObject, class: &Py<PyType>) -> Vec<PyObjectRef> {
    obj.gc_get_referents()
        .into_iter()
        .filter(|r| !r.is(class.as_object()))
        .collect()
}

// ------------------------------------------------------------------------ comparing

/// `a == b` with CPython's rules for plain data (see the module's documentation).
pub fn equal(a: &Value, b: &Value) -> Result<bool, Unjudgeable> {
    let mut budget = MAX_NODES;
    eq(a, b, true, &mut budget)
}

/// A number as `==` sees it.
enum Num {
    Int(BigInt),
    Float(f64, usize),
    Complex(f64, f64, usize),
}

fn num(v: &Value) -> Option<Num> {
    Some(match v {
        Value::Bool(b) => Num::Int(BigInt::from(*b as u8)),
        Value::Int(i) => Num::Int(i.clone()),
        Value::Float { bits, id } => Num::Float(f64::from_bits(*bits), *id),
        Value::Complex { re, im, id } => {
            let (re, im) = (f64::from_bits(*re), f64::from_bits(*im));
            if im == 0.0 {
                Num::Float(re, *id)
            } else {
                Num::Complex(re, im, *id)
            }
        }
        _ => return None,
    })
}

/// The integer a finite, integral float is exactly.
fn integral(f: f64) -> Option<BigInt> {
    (f.is_finite() && f.fract() == 0.0)
        .then(|| BigInt::from_f64(f))
        .flatten()
}

fn num_eq(a: Num, b: Num, top: bool) -> bool {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x == y,
        (Num::Int(i), Num::Float(f, _)) | (Num::Float(f, _), Num::Int(i)) => {
            integral(f).is_some_and(|g| g == i)
        }
        (Num::Float(x, ix), Num::Float(y, iy)) => {
            if x.is_nan() && y.is_nan() {
                // CPython compares container elements with an identity shortcut first.
                !top && ix == iy && ix != 0
            } else {
                x == y
            }
        }
        (Num::Complex(r1, i1, id1), Num::Complex(r2, i2, id2)) => {
            if [r1, i1, r2, i2].iter().any(|x| x.is_nan()) {
                // As for floats: only the same object, and only inside a container.
                !top && id1 == id2 && id1 != 0
            } else {
                r1 == r2 && i1 == i2
            }
        }
        _ => false,
    }
}

fn spend(budget: &mut usize) -> Result<(), Unjudgeable> {
    if *budget == 0 {
        return Err(Unjudgeable::TooLarge);
    }
    *budget -= 1;
    Ok(())
}

fn eq(a: &Value, b: &Value, top: bool, budget: &mut usize) -> Result<bool, Unjudgeable> {
    spend(budget)?;
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return Ok(num_eq(x, y, top));
    }
    Ok(match (a, b) {
        (Value::None, Value::None)
        | (Value::Ellipsis, Value::Ellipsis)
        | (Value::NotImplemented, Value::NotImplemented) => true,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bytes { data: x, .. }, Value::Bytes { data: y, .. }) => x == y,
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            seq_eq(x, y, budget)?
        }
        (
            Value::Instance {
                class: c1,
                parts: x,
            },
            Value::Instance {
                class: c2,
                parts: y,
            },
        ) => c1 == c2 && seq_eq(x, y, budget)?,
        (Value::Dict(x), Value::Dict(y)) => dict_eq(x, y, budget)?,
        (Value::OrderedDict(x), Value::OrderedDict(y)) => {
            // `OrderedDict == OrderedDict` is order-sensitive (against a dict it is not).
            if x.len() != y.len() {
                return Ok(false);
            }
            for ((k1, v1), (k2, v2)) in x.iter().zip(y) {
                if !eq(k1, k2, false, budget)? || !eq(v1, v2, false, budget)? {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Dict(x) | Value::OrderedDict(x), Value::Dict(y) | Value::OrderedDict(y)) => {
            dict_eq(x, y, budget)?
        }
        (Value::Set { items: x, .. }, Value::Set { items: y, .. }) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            let index = index_of(y.iter());
            let mut used = vec![false; y.len()];
            for k in x {
                let mut found = false;
                for &j in index.get(&key_hash(k)).map(Vec::as_slice).unwrap_or(&[]) {
                    if !used[j] && eq(k, &y[j], false, budget)? {
                        used[j] = true;
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Ok(false);
                }
            }
            true
        }
        (
            Value::Range {
                start: s1,
                stop: e1,
                step: t1,
            },
            Value::Range {
                start: s2,
                stop: e2,
                step: t2,
            },
        ) => {
            let (n1, n2) = (range_len(s1, e1, t1), range_len(s2, e2, t2));
            n1 == n2 && (n1.is_zero() || (s1 == s2 && (n1 == BigInt::from(1u8) || t1 == t2)))
        }
        (Value::Object(x), Value::Object(y)) | (Value::Cycle(x), Value::Cycle(y)) => x == y,
        (Value::Unset, Value::Unset) => true,
        _ => false,
    })
}

/// Dicts as `==` compares them: the same keys with equal values, in any order.
fn dict_eq(
    x: &[(Value, Value)],
    y: &[(Value, Value)],
    budget: &mut usize,
) -> Result<bool, Unjudgeable> {
    if x.len() != y.len() {
        return Ok(false);
    }
    // Each entry of one side pairs with a different entry of the other: two keys
    // that are equal by value (instances) cannot both match one key.
    let index = index_of(y.iter().map(|(k, _)| k));
    let mut used = vec![false; y.len()];
    for (k, v) in x {
        let mut found = false;
        for &j in index.get(&key_hash(k)).map(Vec::as_slice).unwrap_or(&[]) {
            if !used[j] && eq(k, &y[j].0, false, budget)? {
                if !eq(v, &y[j].1, false, budget)? {
                    return Ok(false);
                }
                used[j] = true;
                found = true;
                break;
            }
        }
        if !found {
            return Ok(false);
        }
    }
    Ok(true)
}

fn seq_eq(x: &[Value], y: &[Value], budget: &mut usize) -> Result<bool, Unjudgeable> {
    if x.len() != y.len() {
        return Ok(false);
    }
    for (a, b) in x.iter().zip(y) {
        if !eq(a, b, false, budget)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn range_len(start: &BigInt, stop: &BigInt, step: &BigInt) -> BigInt {
    let zero = BigInt::from(0u8);
    let one = BigInt::from(1u8);
    if step.is_positive() {
        if start >= stop {
            zero
        } else {
            (stop - start - &one) / step + one
        }
    } else if step.is_negative() {
        if start <= stop {
            zero
        } else {
            (start - stop - &one) / (-step) + one
        }
    } else {
        zero
    }
}

fn index_of<'a>(keys: impl Iterator<Item = &'a Value>) -> HashMap<u64, Vec<usize>> {
    let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
    for (j, k) in keys.enumerate() {
        index.entry(key_hash(k)).or_default().push(j);
    }
    index
}

/// A hash consistent with [`eq`]: values that compare equal hash alike.
fn key_hash(v: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_into(v, &mut h);
    h.finish()
}

/// An integer's hash from its binary digits: linear in its size (a decimal string is
/// quadratic, and a set of big integers would run out of fuel being compared).
fn hash_int(i: &BigInt, h: &mut impl Hasher) {
    0u8.hash(h);
    i.is_negative().hash(h);
    i.to_u64_digits().1.hash(h);
}

fn hash_into(v: &Value, h: &mut impl Hasher) {
    if let Some(n) = num(v) {
        match n {
            Num::Int(i) => hash_int(&i, h),
            Num::Float(f, id) => match integral(f) {
                Some(i) => hash_int(&i, h),
                None if f.is_nan() => {
                    1u8.hash(h);
                    id.hash(h);
                }
                None => {
                    2u8.hash(h);
                    f.to_bits().hash(h);
                }
            },
            Num::Complex(re, im, _) => {
                // `+ 0.0` makes -0.0 hash as 0.0, which it equals.
                3u8.hash(h);
                (re + 0.0).to_bits().hash(h);
                (im + 0.0).to_bits().hash(h);
            }
        }
        return;
    }
    match v {
        Value::Str(s) => {
            4u8.hash(h);
            s.hash(h);
        }
        Value::Bytes { data, .. } => {
            5u8.hash(h);
            data.hash(h);
        }
        Value::Tuple(items) => {
            6u8.hash(h);
            items.len().hash(h);
            for i in items {
                hash_into(i, h);
            }
        }
        Value::Set { items, .. } => {
            // Order-independent: the sum of the elements' hashes.
            7u8.hash(h);
            let sum = items.iter().map(key_hash).fold(0u64, u64::wrapping_add);
            sum.hash(h);
        }
        Value::Instance { class, .. } => {
            8u8.hash(h);
            class.hash(h);
        }
        Value::Object(id) | Value::Cycle(id) => {
            9u8.hash(h);
            id.hash(h);
        }
        Value::Range { start, stop, step } => {
            10u8.hash(h);
            let n = range_len(start, stop, step);
            hash_int(&n, h);
            if !n.is_zero() {
                hash_int(start, h);
                if n != BigInt::from(1u8) {
                    hash_int(step, h);
                }
            }
        }
        Value::None => 11u8.hash(h),
        Value::Ellipsis => 12u8.hash(h),
        Value::NotImplemented => 13u8.hash(h),
        // Unhashable in Python: never a dict key or set element, but be consistent anyway.
        Value::List(items) => {
            14u8.hash(h);
            items.len().hash(h);
        }
        Value::Dict(items) | Value::OrderedDict(items) => {
            15u8.hash(h);
            items.len().hash(h);
        }
        Value::Unset => 16u8.hash(h),
        Value::Bool(_) | Value::Int(_) | Value::Float { .. } | Value::Complex { .. } => {}
    }
}
