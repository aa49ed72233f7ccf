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
    }
    .with_context(context)?;
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
