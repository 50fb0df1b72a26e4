//! The commands layer: each command is a thin function from the parsed command line to an
//! exit code or a [`PaceError`]; this module sets up logging and dispatches. What the
//! commands share is in `common` (so no command imports this module back). Commands use
//! every other module; no other module uses `commands`.
// The command layer is where pace talks to the terminal: data on stdout, the rendered
// error and notes on stderr (everything below reports through values and the printer).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::cli::{Cli, Command};
use crate::env::{self, Env};
use crate::error::PaceError;
use crate::report::printer::{Printer, Verbosity};

mod branch;
mod common;
mod day;
mod doctor;
mod gate;
mod init;
mod next;
mod proxy;
mod validate;

pub(crate) fn init_logging(verbose: u8, quiet: bool, env: &Env) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "pace=debug,info",
        (false, _) => "debug",
    };
    let filter = env
        .get("RUST_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

pub(crate) fn dispatch(cli: Cli, env: Env) -> Result<u8, PaceError> {
    common::install_crypto_provider();
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let printer = Printer::new(verbosity, env.get(env::NO_COLOR).is_some()).with_gitlab_sections(env.in_gitlab_ci());
    let config = cli.config.as_deref();
    match cli.command {
        Some(Command::Validate) => validate::run(config, &env),
        Some(Command::Doctor) => common::runtime()?.block_on(doctor::run(config, &env)),
        Some(Command::Gate { image }) => common::runtime()?.block_on(gate::run(config, image, &env)),
        Some(Command::Init { yes, force }) => init::run(init::Args { yes, force }, config, &env),
        Some(Command::Proxy {
            listen,
            allow,
            log,
            clients,
        }) => common::runtime()?.block_on(proxy::run(&listen, allow, clients, &log)),
        None => day::run(
            day::Args {
                day: cli.day,
                retry: cli.retry,
                dry_run: cli.dry_run,
                config,
            },
            env,
            printer,
        ),
    }
}
