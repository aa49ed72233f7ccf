//! `azr-sandbox client`: talk to a running daemon by hand.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use azr_sandbox_client::{BlockingClient, RetryPolicy, v1};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ClientArgs {
    /// The daemon's socket (default: `server.socket` of the config).
    #[arg(long)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Is the daemon up, and with which limits?
    Health,
    /// Counters since the daemon started.
    Stats,
    /// Run a program; with --input, print repr(f(<input>)).
    Run {
        #[command(flatten)]
        program: ProgramArgs,
        /// Arguments of `f`, as Python source.
        #[arg(long, short)]
        input: Option<String>,
        /// Validate as AZR does (rules + determinism re-run).
        #[arg(long, requires = "input")]
        validate: bool,
    },
    /// Check a solver's answer against a gold output.
    Check {
        #[command(flatten)]
        program: ProgramArgs,
        /// repr of the true output.
        #[arg(long)]
        gold: String,
        /// Deduction: the predicted output, as Python source.
        #[arg(
            long,
            conflicts_with = "abduction",
            required_unless_present = "abduction"
        )]
        deduction: Option<String>,
        /// Abduction: a proposed input, as Python source.
        #[arg(long)]
        abduction: Option<String>,
    },
    /// Run one test case of a whole program: stdin/stdout (the default), a function call
    /// (--call), or assert-style test code (--asserts).
    Test {
        #[command(flatten)]
        program: ProgramArgs,
        /// Text on the program's stdin (`-` reads this command's own stdin).
        #[arg(long, default_value = "")]
        stdin: String,
        /// Expected stdout: the case passes when it matches (by lines, trailing whitespace
        /// ignored) and the exit status is 0.
        #[arg(long)]
        expect: Option<String>,
        /// Call this function of the program instead (with --arguments and --expected).
        #[arg(long, requires_all = ["arguments", "expected"], conflicts_with_all = ["asserts", "expect"])]
        call: Option<String>,
        /// The call's arguments, as a Python argument list.
        #[arg(long)]
        arguments: Option<String>,
        /// The call's expected value, as a Python expression.
        #[arg(long)]
        expected: Option<String>,
        /// Run this assert-style test code after the program instead.
        #[arg(long, conflicts_with = "expect")]
        asserts: Option<String>,
    },
}

#[derive(Args)]
struct ProgramArgs {
    /// The program's source text.
    #[arg(long, short, conflicts_with = "file", required_unless_present = "file")]
    code: Option<String>,
    /// The program's source file.
    #[arg(long)]
    file: Option<PathBuf>,
}

impl ProgramArgs {
    fn program(&self) -> Result<v1::Program> {
        let source = match (&self.code, &self.file) {
            (Some(code), _) => code.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            (None, None) => bail!("give --code or --file"),
        };
        Ok(v1::Program {
            source,
            imports: vec![],
            ..Default::default()
        })
    }
}

pub fn run(default_socket: PathBuf, args: ClientArgs) -> Result<()> {
    let socket = args.socket.unwrap_or(default_socket);
    let client = BlockingClient::connect([&socket])
        .with_context(|| format!("connecting to {}", socket.display()))?
        .with_retry(RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        });
    let context = || format!("asking the daemon on {}", socket.display());
    let outcome = match args.action {
        Action::Health => {
            let h = client.health().with_context(context)?;
            println!("{h:#?}");
            return Ok(());
        }
        Action::Stats => {
            let s = client.stats().with_context(context)?;
            println!("{s:#?}");
            return Ok(());
        }
        Action::Run {
            program,
            input,
            validate,
        } => {
            let program = Some(program.program()?);
            if validate {
                let input = input.unwrap_or_default();
                client.validate(v1::ValidateTask { program, input }, None)
            } else {
                client.run(v1::RunTask { program, input }, None)
            }
        }
        Action::Check {
            program,
            gold,
            deduction,
            abduction,
        } => {
            use v1::check_task::Kind;
            let kind = match (deduction, abduction) {
                (Some(answer), _) => Kind::Deduction(v1::Deduction {
                    gold_output: gold,
                    answer,
                }),
                (None, Some(answer)) => Kind::Abduction(v1::Abduction {
                    gold_output: gold,
                    answer,
                }),
                (None, None) => bail!("give --deduction or --abduction"),
            };
            client.check(
                v1::CheckTask {
                    program: Some(program.program()?),
                    kind: Some(kind),
                },
                None,
            )
        }
        Action::Test {
            program,
            stdin,
            expect,
            call,
            arguments,
            expected,
            asserts,
        } => {
            use v1::test_task::Kind;
            let kind = match (call, asserts) {
                (Some(function), _) => Kind::Call(v1::CallCase {
                    function,
                    arguments: arguments.unwrap_or_default(),
                    expected: expected.unwrap_or_default(),
                }),
                (None, Some(test)) => Kind::Asserts(v1::AssertCase { test }),
                (None, None) => {
                    let stdin = if stdin == "-" {
                        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
                    } else {
                        stdin
                    };
                    Kind::Stdio(v1::StdioCase {
                        stdin,
                        expected_stdout: expect,
                        output_match: v1::OutputMatch::Lines as i32,
                    })
                }
            };
            let task = v1::TestTask {
                program: Some(program.program()?),
                kind: Some(kind),
            };
            client.test(task, &Default::default())
        }
    }
    .with_context(context)?;
    if !outcome.stderr.is_empty() {
        eprint!("{}", outcome.stderr);
    }
    if let Some(code) = outcome.exit_code {
        eprintln!("exit status {code}");
    }
    let verdict = v1::Verdict::try_from(outcome.verdict)
        .map(|v| {
            v.as_str_name()
                .trim_start_matches("VERDICT_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| outcome.verdict.to_string());
    if !outcome.stdout.is_empty() {
        print!("{}", outcome.stdout);
    }
    match (&outcome.passed, &outcome.value) {
        (Some(passed), _) => println!("{verdict}: passed = {passed}"),
        (None, Some(value)) if verdict == "ok" => println!("{value}"),
        _ => println!("{verdict}"),
    }
    if let (Some(t), m) = (&outcome.error_type, &outcome.error_message) {
        eprintln!("{t}: {}", m.as_deref().unwrap_or(""));
    }
    if verdict != "ok" {
        std::process::exit(2);
    }
    Ok(())
}
