//! Run with
//!
//! ```not_rust
//! cargo run --release -p crosscut-demo
//! ```
//!
//! `crosscut-demo --help` lists the configuration flags; `crosscut-demo token --sub NAME --perm
//! read,write` prints a bearer token for the configured secret.

use std::process::ExitCode;

use clap::Parser;
use crosscut_demo::config::{Cli, Command, Config, LogFormat};
use crosscut_demo::log_format::{log_access_directly, AccessLines, PlainText};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.flags, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("crosscut-demo: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Token { sub, perm, ttl }) => token(&config, &sub, &perm, ttl),
        None => run(config),
    }
}

/// Prints a token for the configured secret on stdout; without a secret, exit 2 (a token for a
/// random secret would be useless).
fn token(config: &Config, sub: &str, perm: &str, ttl: u64) -> ExitCode {
    let ttl = std::time::Duration::from_secs(ttl);
    match crosscut_demo::auth::issue_token(config, sub, perm, ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crosscut-demo: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(config: Config) -> ExitCode {
    // Log lines go to a buffer a background thread writes out a few times a second: a slow stdout
    // never stalls a request, and a burst of lines costs one system call (see `log_writer`).
    let (writer, _guard) = crosscut_demo::log_writer::batch_writer(std::io::stdout());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal; a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(ansi);
    // The access log's lines, as the subscriber would write them, are written without the event
    // (see `log_format::AccessLines`); a person at a terminal gets the stock coloured events.
    match config.log_format {
        LogFormat::Json => {
            builder.json().flatten_event(true).init();
            log_access_directly(AccessLines::json(writer));
        }
        // The stock format's line, written several times faster (see `log_format`).
        LogFormat::Text if !ansi => {
            builder.event_format(PlainText).init();
            log_access_directly(AccessLines::text(writer));
        }
        LogFormat::Text => builder.init(),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crosscut-demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let running = match crosscut_demo::spawn(config, true).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("crosscut-demo: cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(addr = %running.addr, "listening on http://{}", running.addr);
        if running.wait().await {
            tracing::info!("stopped cleanly");
        }
        ExitCode::SUCCESS
    })
}
