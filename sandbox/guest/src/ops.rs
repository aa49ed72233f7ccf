//! The AZR operations, in two stages that the host separates with a memory reset.
//!
//! `prepare` runs once per program: it compiles the program, applies the validation rules,
//! runs the program's definitions and reduces every gold output to plain data
//! ([`crate::judge`]). Nothing model-written by a solver has run yet. The host then records
//! the instance's memory, and before every item puts it back: each item starts from the
//! prepared state, whatever an earlier item did (patched builtins, modules, hooks, the heap).
//!
//! `item` runs one item: it compiles and evaluates the item's own text (an answer, an input),
//! reduces the result to plain data and compares it with the gold value in Rust. After an
//! answer has run, no Python code decides anything; what Python computes afterwards (`repr`
//! of the value, the captured output, an exception's message) only informs.
//!
//! An abduction answer that is more than literals (`[1] * 3`, a name) could patch `f` or what
//! `f` uses before `f` runs on it; its arguments are therefore evaluated in one item call,
//! returned to the host as plain data, and `f` runs on a rebuilt copy in a second call,
//! from the prepared state.

use std::{collections::HashMap, rc::Rc};

use azr_guest_contract::{AnswerRole, GuestVerdict, ItemResult, ItemSpec, Request, SentFile};
use num_traits::ToPrimitive;
use ruff_python_ast::{Expr, Operator, Stmt, UnaryOp};
use rustpython_vm::{
    AsObject, PyObjectRef, PyRef, PyResult, VirtualMachine,
    builtins::{PyBaseExceptionRef, PyCode, PyDict, PyDictRef, PyInt, PyStr, PyType},
    compiler::Mode,
    function::FuncArgs,
    scope::Scope,
};
use serde::{Deserialize, Serialize};

use crate::{
    capture,
    judge::{self, KnownTypes, Unjudgeable, Value},
};

/// An answer as its first stage leaves it for the check (JSON between the two stages).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Evaluated {
    /// Only literals: evaluated in the program's namespace, where a literal reaches nothing.
    Literal,
    /// A deduction answer's value.
    Value(Value),
    /// An abduction answer's positional and keyword arguments.
    Arguments(Value, Value),
}

/// A failure as an item reports it.
#[derive(Clone, Debug)]
pub struct Failure {
    verdict: GuestVerdict,
    kind: String,
    message: String,
}

impl Failure {
    fn error(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            verdict: GuestVerdict::Error,
            kind: kind.into(),
            message: message.into(),
        }
    }

    fn rejected(kind: &str, message: impl Into<String>) -> Self {
        Failure {
            verdict: GuestVerdict::Rejected,
            kind: kind.to_owned(),
            message: message.into(),
        }
    }

    fn unjudgeable(u: Unjudgeable) -> Self {
        Failure::error("ValueError", u.message())
    }
}

/// The Python side the operations use (held from start-up, before any program ran).
pub struct Harness {
    /// `_azr_files.install` and `_azr_files.fetch` (files.py).
    pub install_files: PyObjectRef,
    pub fetch_files: PyObjectRef,
    pub begin: PyObjectRef,
    pub make_stdin: PyObjectRef,
    pub restart_capture: PyObjectRef,
    pub banned_import: PyObjectRef,
    pub compile_program: PyObjectRef,
    pub output_limit: PyObjectRef,
    pub default_banned: Vec<String>,
    pub known: KnownTypes,
}

/// What `prepare` leaves for the items: all of it is in linear memory, which the host puts
/// back to this state before every item.
pub struct Prepared {
    request: Request,
    /// Why the request's files could not be put in place (every item then fails with it).
    files: Result<(), Failure>,
    /// The program's code (imports prepended), or why it does not compile.
    code: Result<PyRef<PyCode>, Failure>,
    /// The validation rules' verdict on the program.
    rules: Option<Failure>,
    /// The namespace after the program's definitions ran, or why they failed.
    namespace: Result<PyDictRef, Failure>,
    /// Deduction/abduction gold values by text, reduced in the program's namespace.
    golds: HashMap<String, Result<Value, Failure>>,
    /// Induction gold values and expected call results by text, reduced where only the
    /// imports ran.
    import_golds: HashMap<String, Result<Value, Failure>>,
    /// Call arguments by text, `(args, kwargs)` as plain data, reduced where only the imports
    /// ran: every call gets a new copy built natively.
    call_args: HashMap<String, Result<(Value, Value), Failure>>,
    /// Builtins and module namespaces as they were before the program ran, for assert tests.
    pristine: Option<Rc<Pristine>>,
    /// The objects whose identities the gold values record, kept alive so that no object an
    /// answer makes can take one of their addresses. Never read: holding them is the point.
    #[allow(dead_code)]
    gold_identities: Vec<PyObjectRef>,
    /// What the program printed while it was prepared (every item's output starts with it).
    stdout: String,
    stdout_overflow: bool,
    /// The names the program binds at its top level, for requests of `evaluate_answer`
    /// items (which never run it): an answer that needs one is told so.
    program_names: Vec<String>,
}

fn failure_of(vm: &VirtualMachine, exc: &PyBaseExceptionRef, harness: &Harness) -> Failure {
    let kind = exc.class().name().to_string();
    if exc.fast_isinstance(
        harness
            .output_limit
            .downcast_ref::<rustpython_vm::builtins::PyType>()
            .expect("OutputLimit is a class"),
    ) {
        return Failure {
            verdict: GuestVerdict::OutputLimit,
            kind: "OutputLimit".into(),
            message: crate::exception_message(vm, exc),
        };
    }
    Failure::error(kind, crate::exception_message(vm, exc))
}

fn full_source(program: &str, imports: &[String]) -> String {
    if imports.is_empty() {
        program.to_owned()
    } else {
        format!("{}\n{}", imports.join("\n"), program)
    }
}

fn truncate(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(n).collect();
        format!("{head:?}...")
    }
}

fn scope(namespace: &PyDictRef, vm: &VirtualMachine) -> Scope {
    Scope::with_builtins(None, namespace.clone(), vm)
}

/// Compiles model-written text natively (no Python-level `compile` that code could patch).
fn compile(
    vm: &VirtualMachine,
    text: &str,
    what: &str,
    mode: Mode,
) -> Result<PyRef<PyCode>, Failure> {
    vm.compile(text, mode, format!("<{what}>")).map_err(|_| {
        Failure::error(
            "SyntaxError",
            format!("{what} is not valid Python: {}", truncate(text, 200)),
        )
    })
}

fn compile_value(vm: &VirtualMachine, text: &str, what: &str) -> Result<PyRef<PyCode>, Failure> {
    vm.compile(text, Mode::Eval, format!("<{what}>"))
        .map_err(|_| {
            Failure::error(
                "SyntaxError",
                format!("{what} is not a Python expression: {}", truncate(text, 200)),
            )
        })
}

/// An argument list as the AZR templates splice it, `f(<text>)`: refused unless the whole of
/// it is one call of `f`. Returns whether every argument is a literal.
fn argument_list(text: &str) -> Result<bool, Failure> {
    let source = format!("f({text})");
    let refuse = |why: &str| {
        Failure::error(
            "SyntaxError",
            format!("input is not {why}: {}", truncate(text, 200)),
        )
    };
    let parsed = ruff_python_parser::parse_expression(&source)
        .map_err(|_| refuse("a valid argument list"))?;
    let Expr::Call(call) = parsed.expr() else {
        return Err(refuse("a plain argument list"));
    };
    let Expr::Name(name) = &*call.func else {
        return Err(refuse("a plain argument list"));
    };
    if name.id.as_str() != "f" {
        return Err(refuse("a plain argument list"));
    }
    let args = &call.arguments;
    Ok(args.args.iter().all(literal)
        && args
            .keywords
            .iter()
            .all(|k| k.arg.is_some() && literal(&k.value)))
}

/// Whether an expression only builds built-in values from constants: evaluating it runs no
/// code that anything model-written could have defined or patched.
fn literal(e: &Expr) -> bool {
    match e {
        Expr::StringLiteral(_)
        | Expr::BytesLiteral(_)
        | Expr::NumberLiteral(_)
        | Expr::BooleanLiteral(_)
        | Expr::NoneLiteral(_)
        | Expr::EllipsisLiteral(_) => true,
        Expr::List(l) => l.elts.iter().all(literal),
        Expr::Tuple(t) => t.elts.iter().all(literal),
        Expr::Set(s) => s.elts.iter().all(literal),
        Expr::Dict(d) => d
            .items
            .iter()
            .all(|i| i.key.as_ref().is_some_and(literal) && literal(&i.value)),
        Expr::UnaryOp(u) => matches!(u.op, UnaryOp::USub | UnaryOp::UAdd) && number(&u.operand),
        Expr::BinOp(b) => {
            matches!(b.op, Operator::Add | Operator::Sub) && number(&b.left) && number(&b.right)
        }
        _ => false,
    }
}

fn number(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::UnaryOp(u) => matches!(u.op, UnaryOp::USub | UnaryOp::UAdd) && number(&u.operand),
        _ => false,
    }
}

impl Prepared {
    /// Runs the program and reduces the gold values. Python helpers of the harness run here
    /// only before the program does.
    pub fn new(vm: &VirtualMachine, harness: &Harness, request: Request) -> Prepared {
        let o = &request.options;
        capture::reset(o.stdout_cap);
        let _ = harness.begin.call((o.recursion_limit,), vm);
        let files = install_files(vm, harness, &o.files);
        if request
            .items
            .first()
            .is_some_and(|i| matches!(i, ItemSpec::EvaluateAnswer { .. }))
        {
            return Prepared::for_answers(vm, harness, request, files);
        }
        let (program, imports) = request
            .items
            .first()
            .map(|i| i.program())
            .unwrap_or(("", &[]));
        let source = full_source(program, imports);
        let any_validation = request
            .items
            .iter()
            .any(|i| matches!(i, ItemSpec::Validate { .. }));
        let rules = if any_validation {
            let banned = o
                .banned_words
                .clone()
                .unwrap_or_else(|| harness.default_banned.clone());
            let call = harness.banned_import.call(
                (
                    vm.ctx.new_str(source.as_str()),
                    vm.ctx.new_list(
                        banned
                            .iter()
                            .map(|w| vm.ctx.new_str(w.as_str()).into())
                            .collect(),
                    ),
                    vm.ctx.new_list(
                        o.banned_keywords
                            .iter()
                            .map(|w| vm.ctx.new_str(w.as_str()).into())
                            .collect(),
                    ),
                ),
                vm,
            );
            match call {
                Ok(word) if vm.is_none(&word) => None,
                Ok(word) => Some(Failure::rejected(
                    "BannedImport",
                    format!(
                        "program uses banned word {}",
                        word.repr(vm)
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ),
                )),
                Err(exc) => Some(failure_of(vm, &exc, harness)),
            }
        } else {
            None
        };

        // Induction gold values and test-case data (expected results, call arguments),
        // before the candidate program has run: in a namespace where only the task's imports
        // did. The program can then neither see nor change them.
        let mut import_golds = HashMap::new();
        let mut call_args = HashMap::new();
        let mut gold_identities = Vec::new();
        let mut expected: Vec<&String> = Vec::new();
        let mut arguments: Vec<&String> = Vec::new();
        for item in &request.items {
            match item {
                ItemSpec::Induction { outputs, .. } => expected.extend(outputs),
                ItemSpec::Call {
                    arguments: a,
                    expected: e,
                    ..
                } => {
                    expected.push(e);
                    arguments.push(a);
                }
                _ => {}
            }
        }
        if !expected.is_empty() || !arguments.is_empty() {
            let imports_ns = fresh_namespace(vm, harness).and_then(|ns| {
                if !imports.is_empty() {
                    let code = compile(vm, &imports.join("\n"), "imports", Mode::Exec)?;
                    vm.run_code_obj(code, scope(&ns, vm))
                        .map_err(|e| failure_of(vm, &e, harness))?;
                }
                Ok(ns)
            });
            for text in expected {
                if import_golds.contains_key(text) {
                    continue;
                }
                let gold = match &imports_ns {
                    Ok(ns) => reduce_gold(vm, harness, ns, text, &mut gold_identities),
                    Err(f) => Err(f.clone()),
                };
                import_golds.insert(text.clone(), gold);
            }
            for text in arguments {
                if call_args.contains_key(text) {
                    continue;
                }
                let args = match &imports_ns {
                    Ok(ns) => {
                        reduce_arguments(vm, harness, ns, text, |e| failure_of(vm, e, harness))
                    }
                    Err(f) => Err(f.clone()),
                };
                call_args.insert(text.clone(), args);
            }
        }
        // Assert tests: hooks refused before the program runs, and what it may not change
        // recorded then.
        let pristine = request
            .items
            .iter()
            .any(|i| matches!(i, ItemSpec::Assert { .. }))
            .then(|| {
                refuse_hooks(vm);
                Rc::new(Pristine::record(vm))
            });

        let code = harness
            .compile_program
            .call((vm.ctx.new_str(source.as_str()),), vm)
            .map_err(|e| failure_of(vm, &e, harness))
            .and_then(|c| {
                c.downcast::<PyCode>()
                    .map_err(|_| Failure::error("SystemError", "compile() gave no code"))
            });
        // A rejected program is not run for validation; checks of it (which the reference
        // does not screen) still need its definitions. Scripts run whole in their items.
        let run = (rules.is_none() || request.items.iter().any(ItemSpec::is_check))
            && request
                .items
                .iter()
                .any(|i| !matches!(i, ItemSpec::Script { .. }));
        let namespace = match (&code, run) {
            (Ok(code), true) => fresh_namespace(vm, harness).and_then(|ns| {
                vm.run_code_obj(code.clone(), scope(&ns, vm))
                    .map_err(|e| failure_of(vm, &e, harness))?;
                Ok(ns)
            }),
            (Err(f), _) => Err(f.clone()),
            (Ok(_), false) => Err(rules
                .clone()
                .unwrap_or_else(|| Failure::error("SystemError", "the program was not run"))),
        };

        let mut golds = HashMap::new();
        for item in &request.items {
            let (ItemSpec::Deduction { gold, .. } | ItemSpec::Abduction { gold, .. }) = item else {
                continue;
            };
            if golds.contains_key(gold) {
                continue;
            }
            let value = match &namespace {
                Ok(ns) => reduce_gold(vm, harness, ns, gold, &mut gold_identities),
                Err(f) => Err(f.clone()),
            };
            golds.insert(gold.clone(), value);
        }
        let (stdout, stdout_overflow) = capture::taken();
        restart_capture(vm, harness, o.stdout_cap);
        Prepared {
            request,
            files,
            code,
            rules,
            namespace,
            golds,
            import_golds,
            call_args,
            pristine,
            gold_identities,
            stdout,
            stdout_overflow,
            program_names: Vec::new(),
        }
    }

    /// The state answers are evaluated in: the task's imports and the program's own
    /// top-level import statements have run, nothing else of the program has. Its
    /// definitions (functions, classes, constants) do not exist in this instance at all, so
    /// no route (`globals()`, `__main__`, `sys.modules`, frames, `gc`, `eval` of a string)
    /// leads to them.
    fn for_answers(
        vm: &VirtualMachine,
        harness: &Harness,
        request: Request,
        files: Result<(), Failure>,
    ) -> Prepared {
        let (program, imports) = request
            .items
            .first()
            .map(|i| i.program())
            .unwrap_or(("", &[]));
        let (statements, program_names) = program_outline(program);
        let namespace = fresh_namespace(vm, harness).and_then(|ns| {
            if !imports.is_empty() {
                let code = compile(vm, &imports.join("\n"), "imports", Mode::Exec)?;
                vm.run_code_obj(code, scope(&ns, vm))
                    .map_err(|e| failure_of(vm, &e, harness))?;
            }
            // One by one: an import the program makes but cannot use fails it there too.
            for statement in &statements {
                if let Ok(code) = compile(vm, statement, "program imports", Mode::Exec) {
                    let _ = vm.run_code_obj(code, scope(&ns, vm));
                }
            }
            Ok(ns)
        });
        let (stdout, stdout_overflow) = capture::taken();
        restart_capture(vm, harness, request.options.stdout_cap);
        Prepared {
            request,
            files,
            code: Err(Failure::error(
                "GuestError",
                "answers never run the program",
            )),
            rules: None,
            namespace,
            golds: HashMap::new(),
            import_golds: HashMap::new(),
            call_args: HashMap::new(),
            pristine: None,
            gold_identities: Vec::new(),
            stdout,
            stdout_overflow,
            program_names,
        }
    }

    /// Runs item `index` (for an abduction answer's second stage, with its arguments), and
    /// carries back the files the request asked for.
    pub fn run_item(
        &self,
        vm: &VirtualMachine,
        harness: &Harness,
        index: usize,
        arguments: Option<&str>,
    ) -> ItemResult {
        let mut result = self.run_item_alone(vm, harness, index, arguments);
        self.fetch_files(vm, harness, &mut result);
        result
    }

    /// Item `index`'s own result.
    fn run_item_alone(
        &self,
        vm: &VirtualMachine,
        harness: &Harness,
        index: usize,
        arguments: Option<&str>,
    ) -> ItemResult {
        if let Err(f) = &self.files {
            return ItemResult {
                passed: self.request.items.get(index).and_then(|i| i.is_check().then_some(false)),
                error_type: Some(f.kind.clone()),
                error_message: Some(format!("the request's files: {}", f.message)),
                ..ItemResult::new(f.verdict)
            };
        }
        let Some(item) = self.request.items.get(index) else {
            return ItemResult {
                error_type: Some("GuestError".into()),
                error_message: Some(format!("no item {index}")),
                ..ItemResult::new(GuestVerdict::Fault)
            };
        };
        if let ItemSpec::Script { stdin, .. } = item {
            return self.run_script(vm, harness, stdin);
        }
        let outcome = self.operate(vm, harness, item, arguments);
        let (printed, overflow) = capture::taken();
        let stdout = format!("{}{}", self.stdout, printed);
        let mut result = match outcome {
            Ok(Done::Value(passed, value)) => ItemResult {
                passed,
                value,
                ..ItemResult::new(GuestVerdict::Ok)
            },
            Ok(Done::Evaluated(text)) => ItemResult {
                evaluated: Some(text),
                ..ItemResult::new(GuestVerdict::Ok)
            },
            Ok(Done::NeedsEvaluation) => ItemResult {
                needs_evaluation: true,
                ..ItemResult::new(GuestVerdict::Ok)
            },
            Err(f) => ItemResult {
                passed: None,
                error_type: Some(f.kind),
                error_message: Some(f.message),
                ..ItemResult::new(f.verdict)
            },
        };
        let cap = self.request.options.stdout_cap;
        if overflow || self.stdout_overflow {
            result.verdict = GuestVerdict::OutputLimit;
            result.error_type = Some("OutputLimit".into());
            result.error_message = Some(format!("output limit of {cap} characters exceeded"));
            result.evaluated = None;
            result.needs_evaluation = false;
        }
        let value_cap = self.request.options.value_cap as usize;
        if result.verdict == GuestVerdict::Ok
            && result
                .value
                .as_ref()
                .is_some_and(|v| v.chars().count() > value_cap)
        {
            result.verdict = GuestVerdict::OutputLimit;
            result.error_type = Some("OutputLimit".into());
            result.error_message = Some(format!(
                "repr of the result is longer than {value_cap} characters"
            ));
            result.value = None;
        }
        if result.verdict != GuestVerdict::Ok && item.is_check() {
            result.passed = Some(false);
        }
        result.stdout = stdout.chars().take(cap as usize).collect();
        result
    }

    /// The files of `fetch_files` that exist now, into the result; those past the cap are
    /// named on its stderr.
    fn fetch_files(&self, vm: &VirtualMachine, harness: &Harness, result: &mut ItemResult) {
        let o = &self.request.options;
        if o.fetch_files.is_empty() {
            return;
        }
        let paths = vm.ctx.new_list(
            o.fetch_files
                .iter()
                .map(|p| vm.ctx.new_str(p.as_str()).into())
                .collect(),
        );
        let fetched = harness
            .fetch_files
            .call((paths, o.fetch_cap), vm)
            .and_then(|json| json.str(vm))
            .map_err(|e| crate::exception_message(vm, &e))
            .and_then(|json| {
                serde_json::from_str::<(Vec<(String, String)>, Vec<String>)>(&json.to_string_lossy())
                    .map_err(|e| e.to_string())
            });
        match fetched {
            Ok((found, over)) => {
                result.files = found
                    .into_iter()
                    .map(|(path, base64)| SentFile { path, base64 })
                    .collect();
                for path in over {
                    result.stderr.push_str(&format!(
                        "azr-sandbox: {path:?} not fetched: the fetched files would pass {} bytes\n",
                        o.fetch_cap
                    ));
                }
            }
            Err(e) => result
                .stderr
                .push_str(&format!("azr-sandbox: the files could not be fetched: {e}\n")),
        }
    }

    fn namespace(&self) -> Result<&PyDictRef, Failure> {
        self.namespace.as_ref().map_err(Clone::clone)
    }

    fn operate(
        &self,
        vm: &VirtualMachine,
        harness: &Harness,
        item: &ItemSpec,
        arguments: Option<&str>,
    ) -> Result<Done, Failure> {
        let known = &harness.known;
        let err = |e: PyBaseExceptionRef| failure_of(vm, &e, harness);
        match item {
            ItemSpec::Run { input, .. } => {
                let ns = self.namespace()?;
                let Some(text) = input else {
                    return Ok(Done::Value(None, None));
                };
                argument_list(text)?;
                let code = compile_value(vm, &format!("f({text})"), "input")?;
                let value = vm.run_code_obj(code, scope(ns, vm)).map_err(err)?;
                Ok(Done::Value(None, Some(output_repr(vm, harness, &value)?)))
            }
            ItemSpec::Validate { input, .. } => {
                if let Some(rejected) = &self.rules {
                    return Err(rejected.clone());
                }
                let ns = self.namespace()?;
                if self.request.options.require_f
                    && !ns
                        .get_item_opt("f", vm)
                        .ok()
                        .flatten()
                        .is_some_and(|f| f.is_callable())
                {
                    return Err(Failure::rejected(
                        "MissingFunction",
                        "program does not define a function f",
                    ));
                }
                argument_list(input)?;
                let code = compile_value(vm, &format!("f({input})"), "input")?;
                let first = vm.run_code_obj(code.clone(), scope(ns, vm)).map_err(err)?;
                // Reduced before the second call, which could change a value it shares.
                let once = Value::of(&first, vm, known).map_err(Failure::unjudgeable)?;
                // A deduction answer may not use the program, so it can only state what
                // exists without it: a task whose output holds something the program made
                // (an instance of its class, a function, a generator) could never be solved.
                if let Err(what) = once.portable(known) {
                    return Err(Failure::rejected(
                        "UnanswerableOutput",
                        format!(
                            "f(input) returns {what}, which an answer cannot state without \
                             the program"
                        ),
                    ));
                }
                let second = vm.run_code_obj(code, scope(ns, vm)).map_err(err)?;
                let twice = Value::of(&second, vm, known).map_err(Failure::unjudgeable)?;
                if !judge::equal(&once, &twice).map_err(Failure::unjudgeable)? {
                    return Err(Failure::rejected(
                        "NonDeterministic",
                        "f(input) gave different results on two calls",
                    ));
                }
                Ok(Done::Value(None, Some(output_repr(vm, harness, &first)?)))
            }
            ItemSpec::Deduction { gold, answer, .. } => {
                let gold = self.gold(gold)?;
                let ns = self.namespace()?;
                let value = match evaluated(arguments)? {
                    Some(Evaluated::Value(value)) => {
                        let passed = judge::equal(gold, &value).map_err(Failure::unjudgeable)?;
                        return Ok(Done::Value(Some(passed), None));
                    }
                    Some(Evaluated::Arguments(..)) => {
                        return Err(Failure::error("GuestError", "arguments for a deduction"));
                    }
                    Some(Evaluated::Literal) | None if value_is_literal(answer) => {
                        // A literal looks up no name: the program's namespace is harmless.
                        let code = compile_value(vm, answer, "answer")?;
                        vm.run_code_obj(code, scope(ns, vm)).map_err(err)?
                    }
                    _ => return Ok(Done::NeedsEvaluation),
                };
                let passed = judged(&value, gold, vm, known)?;
                Ok(Done::Value(Some(passed), repr(vm, &value)))
            }
            ItemSpec::Abduction { gold, answer, .. } => {
                let gold = self.gold(gold)?;
                let ns = self.namespace()?;
                let literal = argument_list(answer)?;
                let value = match evaluated(arguments)? {
                    Some(Evaluated::Arguments(args, kwargs)) => {
                        let f = ns.get_item_opt("f", vm).ok().flatten().ok_or_else(|| {
                            Failure::error("NameError", "name 'f' is not defined")
                        })?;
                        let call = build_call(vm, &args, &kwargs).map_err(err)?;
                        f.call_with_args(call, vm).map_err(err)?
                    }
                    Some(Evaluated::Value(_)) => {
                        return Err(Failure::error("GuestError", "a value for an abduction"));
                    }
                    Some(Evaluated::Literal) | None if literal => {
                        // Literals run no code: `f` is called as the template writes it.
                        let code = compile_value(vm, &format!("f({answer})"), "input")?;
                        vm.run_code_obj(code, scope(ns, vm)).map_err(err)?
                    }
                    _ => return Ok(Done::NeedsEvaluation),
                };
                let passed = judged(&value, gold, vm, known)?;
                Ok(Done::Value(Some(passed), repr(vm, &value)))
            }
            ItemSpec::EvaluateAnswer { answer, role, .. } => {
                let ns = self.namespace()?;
                let outcome = match role {
                    AnswerRole::Deduction if value_is_literal(answer) => Evaluated::Literal,
                    AnswerRole::Abduction if argument_list(answer)? => Evaluated::Literal,
                    AnswerRole::Deduction => {
                        let code = compile_value(vm, answer, "answer")?;
                        let value = vm
                            .run_code_obj(code, scope(ns, vm))
                            .map_err(|e| self.answer_failure(vm, harness, &e))?;
                        let reduced = Value::of(&value, vm, known).map_err(Failure::unjudgeable)?;
                        Evaluated::Value(reduced.portable(known).map_err(|what| {
                            Failure::error(
                                "TypeError",
                                format!(
                                    "the answer evaluates to {what}: an answer must be \
                                         plain data"
                                ),
                            )
                        })?)
                    }
                    AnswerRole::Abduction => {
                        let (args, kwargs) = reduce_arguments(vm, harness, ns, answer, |e| {
                            self.answer_failure(vm, harness, e)
                        })?;
                        Evaluated::Arguments(args, kwargs)
                    }
                };
                let text = serde_json::to_string(&outcome)
                    .map_err(|e| Failure::error("GuestError", e.to_string()))?;
                Ok(Done::Evaluated(text))
            }
            ItemSpec::Script { .. } => Err(Failure::error(
                "GuestError",
                "a script runs as a whole, not as an operation",
            )),
            ItemSpec::Call {
                function,
                arguments,
                expected,
                ..
            } => {
                let expected = self.import_gold(expected)?;
                let (args, kwargs) = match self.call_args.get(arguments) {
                    Some(Ok(pair)) => pair,
                    Some(Err(f)) => return Err(f.clone()),
                    None => return Err(Failure::error("GuestError", "arguments missing")),
                };
                let target = find_function(vm, self.namespace()?, function).map_err(err)?;
                let call = build_call(vm, args, kwargs).map_err(err)?;
                let value = target.call_with_args(call, vm).map_err(err)?;
                let passed = judged(&value, expected, vm, known)?;
                Ok(Done::Value(Some(passed), repr(vm, &value)))
            }
            ItemSpec::Assert { test, .. } => {
                let ns = self.namespace()?;
                if let Some(pristine) = &self.pristine {
                    pristine.restore(vm);
                }
                clear_hooks(vm);
                let test_ns = test_namespace(vm, ns, known, self.pristine.clone()).map_err(err)?;
                let code = compile(vm, test, "test", Mode::Exec)?;
                vm.run_code_obj(code, scope(&test_ns, vm)).map_err(err)?;
                Ok(Done::Value(Some(true), None))
            }
            ItemSpec::Induction {
                inputs, outputs, ..
            } => {
                if inputs.len() != outputs.len() {
                    return Err(Failure::error(
                        "ValueError",
                        "induction check needs as many outputs as inputs",
                    ));
                }
                let code = self.code.as_ref().map_err(Clone::clone)?;
                let mut values = Vec::new();
                let mut passed = true;
                for (n, (input, output)) in inputs.iter().zip(outputs).enumerate() {
                    let gold = self
                        .import_golds
                        .get(output)
                        .cloned()
                        .unwrap_or_else(|| Err(Failure::error("GuestError", "gold missing")))?;
                    // The first pair uses the prepared namespace; later ones a fresh run.
                    let ns = if n == 0 {
                        self.namespace()?.clone()
                    } else {
                        let ns = fresh_namespace(vm, harness)?;
                        vm.run_code_obj(code.clone(), scope(&ns, vm)).map_err(err)?;
                        ns
                    };
                    argument_list(input)?;
                    let call = compile_value(vm, &format!("f({input})"), "input")?;
                    let value = vm.run_code_obj(call, scope(&ns, vm)).map_err(err)?;
                    let ok = judged(&value, &gold, vm, known)?;
                    values.push(value);
                    if !ok {
                        passed = false;
                        break;
                    }
                }
                let list: PyObjectRef = vm.ctx.new_list(values).into();
                Ok(Done::Value(Some(passed), repr(vm, &list)))
            }
        }
    }

    /// Runs a script item as `python3 program.py < stdin` would: as `__main__`, the test
    /// case's input on `sys.stdin`, stdout and stderr apart, the exit status from
    /// `SystemExit` or from an uncaught exception (whose traceback goes to stderr).
    fn run_script(&self, vm: &VirtualMachine, harness: &Harness, stdin: &str) -> ItemResult {
        let ended = self.script(vm, harness, stdin);
        let (stdout, mut stderr, overflow) = capture::taken_apart();
        let cap = self.request.options.stdout_cap;
        let mut result = ItemResult {
            exit_code: Some(0),
            ..ItemResult::new(GuestVerdict::Ok)
        };
        match ended {
            Ok(0) => {}
            Ok(code) => {
                result.verdict = GuestVerdict::Error;
                result.error_type = Some("SystemExit".into());
                result.error_message = Some(format!("exit status {code}"));
                result.exit_code = Some(code);
            }
            Err(f) => {
                if !self.code.is_ok() {
                    // Never ran: what python3 prints for a program that does not compile.
                    stderr.push_str(&format!("{}: {}\n", f.kind, f.message));
                }
                result.verdict = f.verdict;
                result.error_type = Some(f.kind);
                result.error_message = Some(f.message);
                result.exit_code = Some(1);
            }
        }
        if overflow {
            result.verdict = GuestVerdict::OutputLimit;
            result.error_type = Some("OutputLimit".into());
            result.error_message = Some(format!("output limit of {cap} characters exceeded"));
            result.exit_code = None;
        }
        result.stdout = stdout.chars().take(cap as usize).collect();
        result.stderr = stderr.chars().take(cap as usize).collect();
        result
    }

    /// The exit status of a script, or the failure that ended it.
    fn script(&self, vm: &VirtualMachine, harness: &Harness, stdin: &str) -> Result<i32, Failure> {
        let code = self.code.as_ref().map_err(Clone::clone)?;
        let err = |e: PyBaseExceptionRef| failure_of(vm, &e, harness);
        let stream = harness
            .make_stdin
            .call((vm.ctx.new_bytes(stdin.as_bytes().to_vec()),), vm)
            .map_err(err)?;
        vm.sys_module.set_attr("stdin", stream, vm).map_err(err)?;
        let ns = fresh_namespace(vm, harness)?;
        let ended = match vm.run_code_obj(code.clone(), scope(&ns, vm)) {
            Ok(_) => Ok(0),
            Err(exc) if exc.fast_isinstance(vm.ctx.exceptions.system_exit) => {
                Ok(exit_status(vm, &exc))
            }
            Err(exc) => {
                let failure = failure_of(vm, &exc, harness);
                if failure.verdict != GuestVerdict::OutputLimit {
                    // The traceback, through `sys.excepthook`, to the captured stderr.
                    vm.print_exception(&exc);
                }
                Err(failure)
            }
        };
        // As the interpreter does when it exits: the `atexit` handlers run last, whatever
        // ended the program (an exception in one is reported on stderr and ignored).
        rustpython_vm::stdlib::atexit::_run_exitfuncs(vm);
        ended
    }

    /// Why an answer's first stage failed; a name the program defines (the answer called
    /// `f`, used a helper or a constant of the program) is said to be that.
    fn answer_failure(
        &self,
        vm: &VirtualMachine,
        harness: &Harness,
        exc: &PyBaseExceptionRef,
    ) -> Failure {
        let failure = failure_of(vm, exc, harness);
        if !exc.fast_isinstance(vm.ctx.exceptions.name_error) {
            return failure;
        }
        let name = exc
            .as_object()
            .get_attr("name", vm)
            .ok()
            .and_then(|n| n.str(vm).ok())
            .map(|n| n.to_string_lossy().into_owned());
        match name {
            Some(name) if self.program_names.contains(&name) => Failure::error(
                "AnswerUsesProgram",
                format!(
                    "the answer uses `{name}`, which the program defines: an answer must \
                     state its value without running the program, and is evaluated where \
                     the program's definitions do not exist"
                ),
            ),
            _ => failure,
        }
    }

    fn gold(&self, text: &str) -> Result<&Value, Failure> {
        match self.golds.get(text) {
            Some(Ok(v)) => Ok(v),
            Some(Err(f)) => Err(f.clone()),
            None => Err(Failure::error("GuestError", "gold value missing")),
        }
    }

    fn import_gold(&self, text: &str) -> Result<&Value, Failure> {
        match self.import_golds.get(text) {
            Some(Ok(v)) => Ok(v),
            Some(Err(f)) => Err(f.clone()),
            None => Err(Failure::error("GuestError", "expected value missing")),
        }
    }
}

/// A script's exit status from its `SystemExit`, as the process would end: `None` is 0, an
/// integer its low 8 bits (`2**64`, past a C `long`: 255), anything else is printed to
/// stderr and gives 1.
fn exit_status(vm: &VirtualMachine, exc: &PyBaseExceptionRef) -> i32 {
    let code = exc
        .as_object()
        .get_attr("code", vm)
        .unwrap_or_else(|_| vm.ctx.none());
    if vm.is_none(&code) {
        return 0;
    }
    if let Some(int) = code.downcast_ref::<PyInt>() {
        // As CPython: the code as a C `long` (one past its range is -1), of which the
        // operating system keeps the low 8 bits.
        let status = int.as_bigint().to_i64().unwrap_or(-1);
        return (status & 0xff) as i32;
    }
    if let (Ok(text), Ok(stderr)) = (code.str(vm), vm.sys_module.get_attr("stderr", vm)) {
        let _ = vm.call_method(&stderr, "write", (text,));
        let _ = vm.call_method(&stderr, "write", ("\n",));
    }
    1
}

/// `function` in the program's namespace, or else a method of a `Solution` instance (the
/// LeetCode convention that test-case datasets follow).
fn find_function(vm: &VirtualMachine, ns: &PyDictRef, function: &str) -> PyResult {
    if let Some(f) = ns.get_item_opt(function, vm)? {
        return Ok(f);
    }
    if let Some(class) = ns.get_item_opt("Solution", vm)? {
        let instance = class.call((), vm)?;
        return instance.get_attr(&vm.ctx.new_str(function), vm);
    }
    Err(vm.new_name_error(
        format!("name '{function}' is not defined"),
        vm.ctx.new_str(function),
    ))
}

/// Builtins and the namespaces of the modules that were loaded before the program ran. Assert
/// tests run against these, so that a program cannot patch what test code calls
/// (`builtins.abs`, `math.isclose`, an entry of `sys.modules`).
struct Pristine {
    dicts: Vec<Recorded>,
}

/// A dict as it was, and its write count when it last was so.
struct Recorded {
    dict: PyDictRef,
    entries: Vec<(PyObjectRef, PyObjectRef)>,
    writes: std::cell::Cell<u64>,
}

impl Recorded {
    fn new(dict: PyDictRef, entries: Vec<(PyObjectRef, PyObjectRef)>) -> Recorded {
        let writes = std::cell::Cell::new(dict.write_count());
        Recorded {
            dict,
            entries,
            writes,
        }
    }
}

impl Pristine {
    fn record(vm: &VirtualMachine) -> Pristine {
        let mut dicts = Vec::new();
        let builtins = vm.builtins.dict();
        dicts.push(Recorded::new(builtins.clone(), builtins.items_vec()));
        if let Ok(modules) = vm.sys_module.get_attr("modules", vm)
            && let Ok(modules) = modules.downcast::<PyDict>()
        {
            let entries = modules.items_vec();
            for (_, module) in &entries {
                if let Some(dict) = module.dict() {
                    let items = dict.items_vec();
                    dicts.push(Recorded::new(dict, items));
                }
            }
            dicts.push(Recorded::new(modules, entries));
        }
        Pristine { dicts }
    }

    /// Puts back the dicts that changed. A dict not written since it was last known to be
    /// as recorded is skipped without a look at its entries (most are, in most cases); one
    /// written to is compared by identity, and rebuilt only if it differs.
    fn restore(&self, vm: &VirtualMachine) {
        for recorded in &self.dicts {
            let dict = &recorded.dict;
            if dict.write_count() == recorded.writes.get() {
                continue;
            }
            let now = dict.items_vec();
            let unchanged = now.len() == recorded.entries.len()
                && now
                    .iter()
                    .zip(&recorded.entries)
                    .all(|((k, v), (k0, v0))| k.is(k0) && v.is(v0));
            if !unchanged {
                dict.clear();
                for (key, value) in &recorded.entries {
                    let _ = dict.set_item(&**key, value.clone(), vm);
                }
            }
            recorded.writes.set(dict.write_count());
        }
    }
}

/// The namespace assert tests run in: the program's, with every callable the program's
/// namespace holds (its functions, however they were made: `def`, `exec`, a decorator, a
/// callable object) replaced by a native wrapper that lets only plain data out, as a new
/// copy. Test code then only ever compares built-in values, whose `==` a program cannot
/// redefine. Classes are not wrapped (`Solution().f(...)` works, unguarded). Calls between
/// the program's own functions go through their own globals and are not wrapped.
fn test_namespace(
    vm: &VirtualMachine,
    ns: &PyDictRef,
    known: &KnownTypes,
    pristine: Option<Rc<Pristine>>,
) -> PyResult<PyDictRef> {
    let test_ns = vm.ctx.new_dict();
    for (key, value) in ns.items_vec() {
        let wrap = value.is_callable()
            && value.downcast_ref::<PyType>().is_none()
            && !known.in_snapshot(&value);
        let value = if wrap {
            let name = key
                .downcast_ref::<PyStr>()
                .map(|k| k.as_wtf8().to_string_lossy().into_owned())
                .unwrap_or_else(|| "function".to_owned());
            plain_results(vm, value, name, known, &test_ns, pristine.clone())
        } else {
            value
        };
        test_ns.set_item(&*key, value, vm)?;
    }
    Ok(test_ns)
}

/// Assert tests refuse trace and profile hooks (a hook could rewrite the test's frame while
/// it runs): `sys.settrace` and `sys.setprofile` raise, `sys.monitoring` is gone. Done before
/// the program runs, in requests with assert tests only.
fn refuse_hooks(vm: &VirtualMachine) {
    let sys = vm.sys_module.clone();
    for name in ["settrace", "setprofile"] {
        let refusing = vm.new_function(
            name,
            move |_args: FuncArgs, vm: &VirtualMachine| -> PyResult {
                Err(vm.new_exception_msg(
                    vm.ctx.exceptions.permission_error.to_owned(),
                    format!("sys.{name}() is refused in assert tests").into(),
                ))
            },
        );
        let _ = sys.set_attr(name, refusing, vm);
    }
    let _ = sys.dict().del_item("monitoring", vm);
}

/// Removes any trace or profile function (natively, whatever installed it).
fn clear_hooks(vm: &VirtualMachine) {
    vm.trace_func.replace(vm.ctx.none());
    vm.profile_func.replace(vm.ctx.none());
    vm.use_tracing.set(false);
}

/// A wrapper of `function` for assert tests. After each call, before the test goes on, it
/// undoes what the call could have done to the test's surroundings: hooks are cleared,
/// builtins and the modules loaded before the program are put back, and the test's own
/// namespace is put back as it was when the call started (so a call cannot rebind a name
/// the test uses next, through a frame's globals).
fn plain_results(
    vm: &VirtualMachine,
    function: PyObjectRef,
    name: String,
    known: &KnownTypes,
    test_ns: &PyDictRef,
    pristine: Option<Rc<Pristine>>,
) -> PyObjectRef {
    let known = known.clone();
    let test_ns = test_ns.clone();
    // The test namespace's write count and entries when last recorded (none yet).
    let seen = std::cell::RefCell::new((u64::MAX, Vec::new()));
    // Leaked into the guest heap, which the host puts back after the item.
    let name: &'static str = Box::leak(name.into_boxed_str());
    vm.new_function(
        name,
        move |args: FuncArgs, vm: &VirtualMachine| -> PyResult {
            // The namespace as the call found it: recorded again only when the test wrote
            // it since the last call (a `check` function's calls leave it alone).
            let writes = test_ns.write_count();
            if seen.borrow().0 != writes {
                *seen.borrow_mut() = (writes, test_ns.items_vec());
            }
            let called = function.call_with_args(args, vm);
            clear_hooks(vm);
            if let Some(pristine) = &pristine {
                pristine.restore(vm);
            }
            if test_ns.write_count() != writes {
                test_ns.clear();
                for (key, value) in &seen.borrow().1 {
                    test_ns.set_item(&**key, value.clone(), vm)?;
                }
                seen.borrow_mut().0 = test_ns.write_count();
            }
            let result = called?;
            let value =
                Value::of(&result, vm, &known).map_err(|u| vm.new_value_error(u.message()))?;
            if !value.is_plain() {
                return Err(vm.new_type_error(format!(
                    "{name}() returned a {} under test: only plain data (numbers, strings, \
                     bytes, None and the built-in containers) can be checked",
                    result.class().name()
                )));
            }
            value.build(vm)
        },
    )
    .into()
}

enum Done {
    Value(Option<bool>, Option<String>),
    /// An `evaluate_answer` item's [`Evaluated`], as JSON.
    Evaluated(String),
    /// The answer must first be evaluated where the program never ran.
    NeedsEvaluation,
}

/// What the host handed a check from its answer's first stage. Values nest as deep as the
/// judge allows ([`judge::MAX_DEPTH`]), past serde_json's default limit of 128 levels.
fn evaluated(text: Option<&str>) -> Result<Option<Evaluated>, Failure> {
    text.map(|t| {
        let mut reader = serde_json::Deserializer::from_str(t);
        reader.disable_recursion_limit();
        Evaluated::deserialize(&mut reader)
            .map_err(|e| Failure::error("GuestError", format!("evaluated answer: {e}")))
    })
    .transpose()
}

/// Whether a deduction answer is one literal value (see [`literal`]).
fn value_is_literal(text: &str) -> bool {
    ruff_python_parser::parse_expression(text).is_ok_and(|parsed| literal(parsed.expr()))
}

/// A program's top-level import statements (as source) and the names it binds at its top
/// level otherwise (functions, classes, assigned names), read without running it. A
/// program that does not parse has neither.
fn program_outline(program: &str) -> (Vec<String>, Vec<String>) {
    let Ok(parsed) = ruff_python_parser::parse_module(program) else {
        return (Vec::new(), Vec::new());
    };
    let alias = |a: &ruff_python_ast::Alias| match &a.asname {
        Some(name) => format!("{} as {}", a.name.id.as_str(), name.id.as_str()),
        None => a.name.id.as_str().to_owned(),
    };
    let mut imports = Vec::new();
    let mut names = Vec::new();
    let bind = |target: &Expr, names: &mut Vec<String>| {
        if let Expr::Name(n) = target {
            names.push(n.id.as_str().to_owned());
        }
    };
    for statement in &parsed.syntax().body {
        match statement {
            Stmt::Import(i) => imports.push(format!(
                "import {}",
                i.names.iter().map(alias).collect::<Vec<_>>().join(", ")
            )),
            Stmt::ImportFrom(i) if i.level == 0 => {
                if let Some(module) = &i.module {
                    imports.push(format!(
                        "from {} import {}",
                        module.id.as_str(),
                        i.names.iter().map(alias).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Stmt::FunctionDef(d) => names.push(d.name.id.as_str().to_owned()),
            Stmt::ClassDef(c) => names.push(c.name.id.as_str().to_owned()),
            Stmt::Assign(a) => {
                for target in &a.targets {
                    match target {
                        Expr::Tuple(t) => t.elts.iter().for_each(|e| bind(e, &mut names)),
                        Expr::List(l) => l.elts.iter().for_each(|e| bind(e, &mut names)),
                        other => bind(other, &mut names),
                    }
                }
            }
            Stmt::AnnAssign(a) => bind(&a.target, &mut names),
            _ => {}
        }
    }
    (imports, names)
}

fn judged(
    value: &PyObjectRef,
    gold: &Value,
    vm: &VirtualMachine,
    known: &KnownTypes,
) -> Result<bool, Failure> {
    let value = Value::of(value, vm, known).map_err(Failure::unjudgeable)?;
    judge::equal(gold, &value).map_err(Failure::unjudgeable)
}

fn build_call(vm: &VirtualMachine, args: &Value, kwargs: &Value) -> PyResult<FuncArgs> {
    let Value::Tuple(args) = args else {
        return Err(vm.new_type_error("arguments are not a tuple"));
    };
    let Value::Dict(kwargs) = kwargs else {
        return Err(vm.new_type_error("keyword arguments are not a dict"));
    };
    let mut values = args
        .iter()
        .map(|v| v.build(vm))
        .collect::<PyResult<Vec<_>>>()?;
    let mut names = Vec::with_capacity(kwargs.len());
    for (k, v) in kwargs {
        let Value::Str(name) = k else {
            return Err(vm.new_type_error("keywords must be strings"));
        };
        let name = String::from_utf8(name.clone())
            .map_err(|_| vm.new_type_error("keywords must be UTF-8"))?;
        names.push(name);
        values.push(v.build(vm)?);
    }
    Ok(FuncArgs::with_kwargs_names(
        values.into_iter(),
        names.into_iter(),
    ))
}

fn reduce_gold(
    vm: &VirtualMachine,
    harness: &Harness,
    ns: &PyDictRef,
    text: &str,
    identities: &mut Vec<PyObjectRef>,
) -> Result<Value, Failure> {
    let code = compile_value(vm, text, "gold output")?;
    let value = vm
        .run_code_obj(code, scope(ns, vm))
        .map_err(|e| failure_of(vm, &e, harness))?;
    // The object is dropped here: only the plain data stays, out of Python's reach (and
    // the few objects whose identity it records).
    let (value, kept) = Value::of_kept(&value, vm, &harness.known).map_err(Failure::unjudgeable)?;
    identities.extend(kept);
    Ok(value)
}

/// A call's argument list (`1, [2, 3], key='x'`) as plain `(args, kwargs)`; `failed` says
/// what an exception while evaluating it means.
fn reduce_arguments(
    vm: &VirtualMachine,
    harness: &Harness,
    ns: &PyDictRef,
    text: &str,
    failed: impl Fn(&PyBaseExceptionRef) -> Failure,
) -> Result<(Value, Value), Failure> {
    argument_list(text)?;
    let code = compile_value(
        vm,
        &format!("(lambda *a, **k: (a, k))({text})"),
        "arguments",
    )?;
    let pair = vm
        .run_code_obj(code, scope(ns, vm))
        .map_err(|e| failed(&e))?;
    let reduced = Value::of(&pair, vm, &harness.known).map_err(Failure::unjudgeable)?;
    match reduced {
        Value::Tuple(mut parts) if parts.len() == 2 && parts.iter().all(Value::is_plain) => {
            let kwargs = parts.pop().unwrap_or(Value::None);
            let args = parts.pop().unwrap_or(Value::None);
            Ok((args, kwargs))
        }
        _ => Err(Failure::error(
            "TypeError",
            "call arguments must be plain data (numbers, strings, bytes, None and the \
             built-in containers)",
        )),
    }
}

/// A module namespace made natively (what the program's definitions run in).
/// Puts the request's files in the interpreter's tree (files.py), before any program code.
fn install_files(
    vm: &VirtualMachine,
    harness: &Harness,
    files: &[SentFile],
) -> Result<(), Failure> {
    if files.is_empty() {
        return Ok(());
    }
    let entries = vm.ctx.new_list(
        files
            .iter()
            .map(|f| {
                vm.ctx
                    .new_tuple(vec![
                        vm.ctx.new_str(f.path.as_str()).into(),
                        vm.ctx.new_str(f.base64.as_str()).into(),
                    ])
                    .into()
            })
            .collect(),
    );
    harness
        .install_files
        .call((entries,), vm)
        .map(drop)
        .map_err(|e| failure_of(vm, &e, harness))
}

fn fresh_namespace(vm: &VirtualMachine, _harness: &Harness) -> Result<PyDictRef, Failure> {
    let ns = vm.ctx.new_dict();
    let set = |k: &str, v: PyObjectRef| {
        ns.set_item(k, v, vm)
            .map_err(|_| Failure::error("SystemError", "cannot make a namespace"))
    };
    set("__name__", vm.ctx.new_str("__main__").into())?;
    set("__builtins__", vm.builtins.clone().into())?;
    Ok(ns)
}

/// The `repr` of an output, which is what run and validate answer: where `repr` raises (an
/// integer of more digits than CPython converts, a `__repr__` that fails), so does the item.
fn output_repr(
    vm: &VirtualMachine,
    harness: &Harness,
    value: &PyObjectRef,
) -> Result<String, Failure> {
    value
        .repr(vm)
        .map(|s| s.as_wtf8().to_string_lossy().into_owned())
        .map_err(|e| failure_of(vm, &e, harness))
}

fn repr(vm: &VirtualMachine, value: &PyObjectRef) -> Option<String> {
    value
        .repr(vm)
        .ok()
        .map(|s| s.as_wtf8().to_string_lossy().into_owned())
}

/// Empties the capture for the items and points `sys.stdout`/`sys.stderr` at it again
/// (the program may have replaced them while it was prepared).
fn restart_capture(vm: &VirtualMachine, harness: &Harness, cap: u64) {
    capture::reset(cap);
    let _ = harness.restart_capture.call((), vm);
}
