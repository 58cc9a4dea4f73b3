//! `aos-server`: composes configuration, tracing, the spine and `aos-api` into a running
//! HTTP server. Nothing here decides anything; it only wires.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::HttpServer;
use anyhow::Context;
use aos_spine::Spine;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use aos_server::config::{self, Config, LogFormat};
use aos_server::{open, start};

#[derive(Parser)]
#[command(name = "aos-server", version, about = "The AOS governance gateway server")]
struct Cli {
    /// A TOML configuration file (optional; `AOS_*` variables override it).
    #[arg(long, short, env = "AOS_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, print a summary (no secrets), and exit.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("aos-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Config {
        command: ConfigCommand::Check,
    }) = cli.command
    {
        println!("configuration OK");
        println!("  server.bind       {}", config.server.bind);
        println!(
            "  database          {} ({})",
            config.database.backend_name(),
            config.database.redacted_url()
        );
        println!("  log.format        {:?}", config.log.format);
        return ExitCode::SUCCESS;
    }
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aos-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Migrate) => migrate(&config).await,
            _ => serve(config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("aos-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match config.log.format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let spine = open(config).await?;
    let applied = spine.migrate().await.context("applying migrations")?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        println!("applied {} migration(s): {}", applied.len(), applied.join(", "));
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let spine: Spine = start(&config).await?;
    let addr = config.bind_addr()?;
    let api = config.http.clone();
    let server_spine = spine.clone();
    let mut server = HttpServer::new(move || aos_api::app(server_spine.clone(), api.clone()))
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout_secs);
    if let Some(workers) = config.server.workers {
        server = server.workers(workers);
    }
    let server = server.bind(addr).with_context(|| format!("binding {addr}"))?.run();
    tracing::info!(url = %format!("http://{addr}"), "AOS is listening");
    println!("AOS is listening on http://{addr}");

    let handle = server.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        handle.stop(true).await;
    });
    server.await.context("running the HTTP server")?;
    // Operations whose clients hung up still finish (and commit) before we exit.
    spine
        .shutdown(Duration::from_secs(config.server.shutdown_timeout_secs))
        .await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
