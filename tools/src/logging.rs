//! Logging set-up shared by the CLIs: `tracing` to stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

/// Installs the stderr subscriber; `default_filter` applies when `RUST_LOG` is unset. Colours
/// only when stderr is a terminal, so logs piped into files stay plain text.
pub fn init(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
}
