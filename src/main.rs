//! The `gravity-bff` binary: parse the command line, read the settings, run. All logic lives in
//! the library crate so the tests drive the very same code.

use std::process::ExitCode;

use gravity_bff::cli::{Command, MigrateCommand, USAGE};
use gravity_bff::db::migrate::{MIGRATIONS, Migrator};
use gravity_bff::{App, Config, StartupError, health_check};

/// musl's allocator is slow under concurrency; mimalloc is fast and small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Operator mistakes (bad flags, bad settings) exit with 2, as the contract says.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let command = match Command::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("gravity-bff: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Version => {
            println!("gravity-bff {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Health => health(),
        Command::Serve => serve(),
        Command::Migrate(migrate_command) => migrate(migrate_command),
    }
}

fn health() -> ExitCode {
    // Only API_PORT matters here; the probe must not fail because a database setting is absent.
    let port = match std::env::var("API_PORT") {
        Err(_) => 8080,
        Ok(text) if text.trim().is_empty() => 8080,
        Ok(text) => match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                eprintln!("gravity-bff: API_PORT must be a port number from 1 to 65535, got {text:?}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match health_check::probe(port, health_check::TIMEOUT) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("gravity-bff: unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

fn config_or_exit() -> Result<Config, ExitCode> {
    Config::from_env().map_err(|error| {
        eprintln!("gravity-bff: {error}");
        ExitCode::from(EXIT_USAGE)
    })
}

fn serve() -> ExitCode {
    let config = match config_or_exit() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    runtime.block_on(async {
        let app = match App::build(config).await {
            Ok(app) => app,
            Err(error) => {
                eprintln!("gravity-bff: {error}");
                let code = if matches!(error, StartupError::Config(_)) {
                    EXIT_USAGE
                } else {
                    1
                };
                return ExitCode::from(code);
            }
        };
        match app.run(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("gravity-bff: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGTERM (what a container runtime sends) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn migrate(command: MigrateCommand) -> ExitCode {
    let config = match config_or_exit() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    runtime.block_on(async {
        let outcome = async {
            let mut migrator = Migrator::connect(&config.database).await?;
            match command {
                MigrateCommand::Up => {
                    let applied = migrator.up().await?;
                    for migration in &applied {
                        println!("applied {:04}_{}", migration.version, migration.name);
                    }
                    if applied.is_empty() {
                        println!("no change: the schema is up to date");
                    }
                }
                MigrateCommand::Down(steps) => {
                    for migration in migrator.down(steps).await? {
                        println!("reverted {:04}_{}", migration.version, migration.name);
                    }
                }
                MigrateCommand::Force(version) => {
                    migrator.force(version).await?;
                    println!("forced version {version} (clean)");
                }
                MigrateCommand::Status => {
                    let state = migrator.state().await?;
                    let version = state.version.map_or("none".to_owned(), |version| version.to_string());
                    println!("version: {version}{}", if state.dirty { " (dirty)" } else { "" });
                    for migration in MIGRATIONS {
                        let applied = state.version.is_some_and(|version| migration.version <= version);
                        let mark = if applied { "applied" } else { "pending" };
                        println!("{mark:>8}  {:04}_{}", migration.version, migration.name);
                    }
                }
            }
            Ok::<(), gravity_bff::db::migrate::MigrateError>(())
        }
        .await;
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("gravity-bff: migrate: {error}");
                let config_problem = matches!(error, gravity_bff::db::migrate::MigrateError::Config(_));
                ExitCode::from(if config_problem { EXIT_USAGE } else { 1 })
            }
        }
    })
}
