//! The `mirrorgate` command line: parse, load config, call the library, map
//! the result to an exit code (0 ok, 1 failure, 2 usage or config error).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use mirrorgate::config::{self, Config, DEFAULT_CONFIG_PATH};

#[derive(Parser)]
#[command(
    name = "mirrorgate",
    version,
    about = "Watch news mirrors and send readers to a live, faithful copy"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ConfigPath {
    /// Config file.
    #[arg(long, env = "MIRRORGATE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: probe in rounds, serve redirects and status.
    Run {
        #[command(flatten)]
        config: ConfigPath,
        /// Listen here instead of the config's server.listen (e.g. 0.0.0.0:8080 in a container).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Probe everything once and report; exit 1 if any article has no live faithful copy.
    Check {
        #[command(flatten)]
        config: ConfigPath,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Validate the config; print every problem as FILE:LINE:COL: message.
    Validate(ConfigPath),
    /// Ask a running daemon's /healthz: exit 0 if healthy, 1 if not (for container HEALTHCHECKs).
    Healthcheck {
        #[command(flatten)]
        config: ConfigPath,
        /// Ask this URL instead of the config's listen address.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Probe the bases from this network for a daemon (a vantage point in a country).
    Agent {
        /// The daemon's URL, e.g. https://mirrorgate.example.org/
        #[arg(long, env = "MIRRORGATE_SERVER")]
        server: String,
        /// File holding this agent's bearer token (its first line).
        #[arg(long, env = "MIRRORGATE_TOKEN_FILE")]
        token_file: PathBuf,
        /// This agent's name in the daemon's [[vantage.agents]] (checked by the daemon).
        #[arg(long)]
        name: Option<String>,
    },
    /// Work on a store directly (the daemon need not run).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Run the daemon against built-in loopback origins (nothing else needed).
    Demo {
        /// Address for the daemon; a free port is used if it is taken.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a whole store: every table, with row counts (SQLite to PostgreSQL and back).
    Copy {
        /// An SQLite file, or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// An SQLite file (created if absent), or a postgres:// URL.
        #[arg(long)]
        to: String,
        /// Empty a target that already holds rows, then copy.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(path) => match load(&path) {
            Ok(config) => {
                let articles: usize = config.sites.iter().map(|s| s.articles.len()).sum();
                let bases: usize = config.sites.iter().map(|s| s.bases().count()).sum();
                println!(
                    "{}: ok ({} sites, {articles} articles, {bases} bases)",
                    path.config.display(),
                    config.sites.len()
                );
                for warning in config::warnings(&config) {
                    eprintln!("{}: warning: {warning}", path.config.display());
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config: path, listen } => {
            let mut config = match load(&path) {
                Ok(config) => config,
                Err(code) => return code,
            };
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            let set_log_level = init_logging(cli.log_format, config.log.level.as_deref(), "info");
            let reload = mirrorgate::cmd::run::Reload {
                path: Some(path.config),
                listen_override: listen,
                set_log_level: Some(set_log_level),
            };
            runtime(config.server.workers, run(config, reload))
        }
        Command::Check { config: path, format } => {
            let config = match load(&path) {
                Ok(config) => config,
                Err(code) => return code,
            };
            // The report says what the engine found (state changes and all);
            // the log is for problems with the run itself.
            init_logging(cli.log_format, None, "warn,mirrorgate::state::engine=error");
            runtime(config.server.workers, check(config, format))
        }
        Command::Healthcheck {
            config: path,
            url,
            timeout,
        } => {
            // Docker reserves exit code 2 for health checks: every failure here is 1.
            let url = match url {
                Some(url) => url,
                None => match config::load(&path.config) {
                    Ok(config) => mirrorgate::cmd::healthcheck::healthz_url(config.server.listen),
                    Err(errors) => return fail(format!("unhealthy: {errors}")),
                },
            };
            let checked = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(mirrorgate::cmd::healthcheck::check(&url, timeout)));
            match checked {
                Ok(()) => ExitCode::SUCCESS,
                Err(why) => fail(format!("unhealthy: {why}")),
            }
        }
        Command::Agent {
            server,
            token_file,
            name,
        } => {
            let options = match mirrorgate::cmd::agent::options(&server, &token_file, name) {
                Ok(options) => options,
                Err(message) => {
                    eprintln!("mirrorgate agent: {message}");
                    return ExitCode::from(2);
                }
            };
            init_logging(cli.log_format, None, "info");
            runtime(None, agent(options))
        }
        Command::Store {
            command: StoreCommand::Copy { from, to, force },
        } => store_copy(&from, &to, force),
        Command::Demo { listen } => {
            init_logging(cli.log_format, None, "info");
            match tokio::runtime::Runtime::new() {
                Ok(rt) => rt.block_on(demo(listen)),
                Err(e) => fail(format!("cannot start the runtime: {e}")),
            }
        }
    }
}

fn store_copy(from: &str, to: &str, force: bool) -> ExitCode {
    use mirrorgate::cmd::store::{CopyError, Location, copy};
    let (from, to) = match (Location::parse(from), Location::parse(to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) => return usage(format!("mirrorgate store copy: --from {e}")),
        (_, Err(e)) => return usage(format!("mirrorgate store copy: --to {e}")),
    };
    match copy(&from, &to, force, &mut std::io::stdout()) {
        Ok(copied) => {
            let rows: u64 = copied.iter().map(|(_, n)| n).sum();
            println!("copied {rows} rows from {} to {}", from.shown(), to.shown());
            ExitCode::SUCCESS
        }
        Err(CopyError::Usage(message)) => usage(format!("mirrorgate store copy: {message}")),
        Err(e) => fail(format!("store copy: {e}")),
    }
}

fn usage(message: String) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

fn load(path: &ConfigPath) -> Result<Config, ExitCode> {
    config::load(&path.config).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })
}

fn runtime(workers: Option<usize>, work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => fail(format!("cannot start the runtime: {e}")),
    }
}

async fn run(config: Config, reload: mirrorgate::cmd::run::Reload) -> ExitCode {
    let shutdown = CancellationToken::new();
    let daemon = match mirrorgate::cmd::run::Daemon::start(config, reload, shutdown.clone()).await {
        Ok(daemon) => daemon,
        Err(e) => return fail(e.to_string()),
    };
    tokio::spawn(stop_on_signal(shutdown));
    match daemon.finished().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("server error: {e}")),
    }
}

async fn check(config: Config, format: ReportFormat) -> ExitCode {
    let report = match mirrorgate::cmd::check::check(&config).await {
        Ok(report) => report,
        Err(e) => return fail(e.to_string()),
    };
    match format {
        ReportFormat::Text => print!("{}", report.text()),
        ReportFormat::Json => println!("{}", report.json()),
    }
    if report.all_served() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn agent(options: mirrorgate::vantage::agent::AgentOptions) -> ExitCode {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    tracing::info!(server = %options.server, name = options.name.as_deref().unwrap_or(""), "agent starting");
    match mirrorgate::vantage::agent::run(options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn demo(listen: std::net::SocketAddr) -> ExitCode {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    match mirrorgate::cmd::demo::run(listen, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.to_string()),
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "stopping");
    shutdown.cancel();
}

/// Sets up logging to stderr and returns what changes its level later
/// (`log.level` on reload). Colour only on a terminal, and never with
/// `NO_COLOR` set (no-color.org): the journal, files and pipes get plain text.
fn init_logging(format: LogFormat, configured: Option<&str>, default: &str) -> mirrorgate::cmd::reload::LevelSetter {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    // RUST_LOG wins over the config so an operator can turn up one run.
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = from_env
        .ok_or(())
        .and_then(|v| EnvFilter::try_new(v).map_err(|_| ()))
        .or_else(|_| EnvFilter::try_new(configured.unwrap_or(default)))
        .unwrap_or_else(|_| EnvFilter::new(default));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(text).init(),
        LogFormat::Json => registry.with(text.json()).init(),
    }
    std::sync::Arc::new(move |level: &str| {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

fn fail(message: String) -> ExitCode {
    eprintln!("mirrorgate: {message}");
    ExitCode::from(1)
}
