//! The `gravity-bff` binary: parse the command line, read the settings, run. It only wires
//! (ARCHITECTURE.md); how a failure ends the process is decided by `cli::Failure`.

use std::cmp::Ordering;
use std::process::ExitCode;

use gravity_bff::build_info::{REVISION, VERSION};
use gravity_bff::cli::{Command, Failure, MigrateCommand, usage};
use gravity_bff::db::migrate::{MIGRATIONS, Migrator, latest_version};
use gravity_bff::{App, Config, config, health_probe};

/// musl's allocator is slow under concurrency; mimalloc is fast and small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("gravity-bff: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run() -> Result<(), Failure> {
    match Command::parse(std::env::args_os().skip(1)).map_err(Failure::Usage)? {
        Command::Version => println!("gravity-bff {VERSION} (revision {REVISION})"),
        Command::Help => print!("{}", usage()),
        Command::Health { started } => {
            let port = config::probe_port_from_env()?;
            let path = if started { "/health?started" } else { "/health" };
            health_probe::probe(port, path, health_probe::TIMEOUT).map_err(Failure::Unhealthy)?;
        }
        Command::Check => {
            gravity_bff::app::check(&Config::from_env()?)?;
            println!("settings ok");
        }
        Command::Serve => serve(Config::from_env()?)?,
        Command::Migrate(command) => migrate(Config::from_env()?, command)?,
    }
    Ok(())
}

fn serve(config: Config) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    let served = runtime.block_on(async {
        // The handlers first: as PID 1 in a container, a stop that arrives while the app is still
        // being built (waiting for Postgres and Redis) would otherwise be dropped, not kept.
        let stop = shutdown_signal();
        App::build(config).await?.run(stop).await;
        Ok(())
    });
    // Whatever had to end ended within the drain; a blocking call still running (a DNS lookup, a
    // read of a key file on a hung mount) must not hold the exit, as dropping the runtime would.
    runtime.shutdown_background();
    served
}

/// SIGTERM (what a container runtime sends), SIGINT (Ctrl-C) or SIGHUP (the terminal or the
/// supervisor went away) starts the drain; a second one while draining exits at once with code 1,
/// as a second Ctrl-C does elsewhere. Why SIGHUP drains rather than reloads: docs/API.md, Shutdown.
/// The handlers are installed when this is called, not when the future is first polled.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    let mut hang_up = signal(SignalKind::hangup()).expect("SIGHUP can be handled");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT can be handled");
    let mut next = async move || {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = hang_up.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    async move {
        next().await;
        tokio::spawn(async move {
            next().await;
            eprintln!("gravity-bff: a second signal while draining: exiting now, cutting off what is in flight");
            std::process::exit(1);
        });
    }
}

fn migrate(config: Config, command: MigrateCommand) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    let migrated = runtime.block_on(async {
        let mut migrator = match command {
            MigrateCommand::Up { create_database: true } => {
                let (migrator, created) = Migrator::connect_creating_database(&config.database).await?;
                if created {
                    println!("created database {}", config.database.name);
                }
                migrator
            }
            _ => Migrator::connect(&config.database).await?,
        };
        match command {
            MigrateCommand::Up { .. } => {
                let applied = migrator.up().await?;
                for migration in &applied {
                    println!("applied {migration}");
                }
                if applied.is_empty() {
                    match migrator.state().await?.version {
                        Some(version) if version > latest_version() => println!(
                            "no change: the database is at version {version}, newer than this binary's {}",
                            latest_version()
                        ),
                        _ => println!("no change: the schema is up to date"),
                    }
                }
            }
            MigrateCommand::Down(steps) => {
                for migration in migrator.down(steps).await? {
                    println!("reverted {migration}");
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
                    let mark = match state.version.map(|version| migration.version.cmp(&version)) {
                        Some(Ordering::Equal) if state.dirty => "dirty",
                        Some(Ordering::Less | Ordering::Equal) => "applied",
                        _ => "pending",
                    };
                    println!("{mark:>8}  {migration}");
                }
            }
        }
        Ok(())
    });
    // As in `serve`: a DNS lookup a connect timeout gave up on does not hold the exit.
    runtime.shutdown_background();
    migrated
}
