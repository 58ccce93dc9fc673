//! The `watershed` command line: run or explain a Flink SQL script.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use watershed::StreamContext;
use watershed::engine::runtime::JobHandle;
use watershed::engine::sink::SinkFactory;
use watershed::script::{Restore, ScriptMode, ScriptOutput, run_script};

/// mimalloc instead of glibc's allocator: window state is allocated and freed in
/// large vectors, which glibc returns to the kernel and faults in again (about a
/// tenth of the time of a keyed window aggregate in a profile); the throughput
/// bench uses it too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use watershed::summary::{progress_line, summary_text};

/// The bundled example job: a per-card, per-minute velocity aggregate over
/// generated payments. Runs with no data files and no servers.
const BUNDLED_EXAMPLE: &str = include_str!("../examples/sql/card_minute.sql");

#[derive(Parser)]
#[command(
    name = "watershed",
    version,
    about = "Streaming SQL (Flink dialect) over Apache Arrow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the statements of a SQL script; INSERT INTO jobs and queries run until
    /// their sources end. Without FILE, runs the bundled example job.
    Run {
        /// The SQL script. Omit it to run the bundled example (generated payments,
        /// per-card one-minute windows, results under out/card_minute).
        file: Option<PathBuf>,
        /// Seconds between progress lines (0 turns progress off).
        #[arg(long, default_value_t = 1.0)]
        progress: f64,
        /// Start from a checkpoint: `latest` (the newest completed one in
        /// 'execution.checkpointing.dir'), a checkpoint id, or a checkpoint
        /// directory `<dir>/chk-<id>`.
        #[arg(long)]
        restore: Option<String>,
    },
    /// Print the operator graph of every INSERT INTO and query of a script
    /// without running it. Without FILE, explains the bundled example.
    Explain {
        /// The SQL script.
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Before any job allocates its state (see `watershed::memory`).
    watershed::memory::avoid_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WATERSHED_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read_script(file: &Option<PathBuf>) -> Result<(String, String), String> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(|sql| (path.display().to_string(), sql))
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        None => Ok(("bundled example".to_string(), BUNDLED_EXAMPLE.to_string())),
    }
}

async fn execute(command: Command) -> Result<(), String> {
    let (mode, file, progress, restore) = match command {
        Command::Run {
            file,
            progress,
            restore,
        } => (ScriptMode::Run, file, progress, restore),
        Command::Explain { file } => (ScriptMode::Explain, file, 0.0, None),
    };
    let (origin, sql) = read_script(&file)?;
    if mode == ScriptMode::Run {
        eprintln!("running {origin}");
    }
    let ctx = StreamContext::new();
    ctx.on_restart(|event| {
        let from = event.checkpoint.map_or_else(
            || "from the start".to_string(),
            |id| format!("from checkpoint {id}"),
        );
        eprintln!(
            "restart {}/{} in {:.1} s {from} after: {}",
            event.attempt,
            event.attempts,
            event.delay.as_secs_f64(),
            event.cause
        );
    });
    // Where checkpoints go unless the script says: a directory named after the
    // script, under the working directory.
    let stem = file.as_ref().and_then(|f| f.file_stem()).map_or_else(
        || "bundled-example".into(),
        |s| s.to_string_lossy().into_owned(),
    );
    let default_dir = std::env::current_dir()
        .map_err(|e| format!("cannot read the working directory: {e}"))?
        .join("watershed-checkpoints")
        .join(stem);
    ctx.sql(&format!(
        "SET '{}' = 'file://{}'",
        watershed::context::settings::CHECKPOINT_DIR,
        default_dir.display()
    ))
    .await
    .map_err(|e| e.to_string())?;
    let restore = restore.map(|text| Restore::parse(&text)).transpose()?;
    let print_sink = || -> Arc<dyn SinkFactory> {
        Arc::new(watershed::connectors::print::PrintSinkFactory::with_target(
            None,
            watershed::connectors::print::PrintTarget::Stdout,
        ))
    };
    let outputs = run_script(&ctx, &sql, mode, &print_sink, restore)
        .await
        .map_err(|e| e.to_string())?;
    if mode == ScriptMode::Run
        && ctx.checkpointing_enabled()
        && let Some(dir) = ctx
            .catalog()
            .setting(watershed::context::settings::CHECKPOINT_DIR)
    {
        eprintln!("checkpoints go to {dir}");
    }
    let mut jobs = Vec::new();
    for output in outputs {
        match output {
            ScriptOutput::Message(m) => {
                if mode == ScriptMode::Run {
                    eprintln!("{m}");
                }
            }
            ScriptOutput::Plan(text) => println!("{text}"),
            ScriptOutput::Job(job) => jobs.push(*job),
        }
    }
    let mut failed = Vec::new();
    let script_arg = file
        .as_ref()
        .map(|f| format!("{} ", f.display()))
        .unwrap_or_default();
    let waits = jobs
        .into_iter()
        .map(|job| watch(job, progress, script_arg.clone()));
    for outcome in futures::future::join_all(waits).await {
        if let Err(e) = outcome {
            failed.push(e);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
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

/// Shows progress while a job runs, then its summary. On SIGTERM or Ctrl-C a
/// job with checkpoints takes a savepoint, commits it and stops (exit code 0).
async fn watch(job: JobHandle, progress_every: f64, script_arg: String) -> Result<(), String> {
    let started = Instant::now();
    let name = job.name().to_string();
    let metrics = job.metrics().clone();
    let checkpoints = job.checkpoint_log();
    let terminal = std::io::stderr().is_terminal();
    let reporter = (progress_every > 0.0).then(|| {
        let name = name.clone();
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(progress_every);
            loop {
                tokio::time::sleep(period).await;
                let mut line = progress_line(&name, &metrics.summary(), started.elapsed());
                if let Some(last) = checkpoints.as_ref().and_then(|log| log.completed().pop()) {
                    line.push_str(&format!(" | checkpoint #{}", last.id));
                }
                if terminal {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
            }
        })
    });
    let controller = job.controller();
    let wait = job.wait();
    tokio::pin!(wait);
    let result = tokio::select! {
        result = &mut wait => result,
        () = stop_signal() => {
            if let Some(reporter) = &reporter {
                reporter.abort();
            }
            eprintln!("\nstop requested: taking a savepoint of '{name}'");
            let saved = controller.savepoint().await;
            controller.cancel();
            let _ = wait.await;
            return match saved {
                Ok(stats) => {
                    eprintln!(
                        "savepoint {} written to {} ({} ms, {} bytes) and committed; \
                         continue with: watershed run {script_arg}--restore latest",
                        stats.id,
                        stats.location,
                        stats.duration.as_millis(),
                        stats.bytes
                    );
                    Ok(())
                }
                Err(e) => Err(format!("job '{name}' stopped without a savepoint: {e}")),
            };
        }
    };
    if let Some(reporter) = reporter {
        reporter.abort();
        if terminal && started.elapsed().as_secs_f64() >= progress_every {
            eprintln!();
        }
    }
    match result {
        Ok(result) => {
            eprintln!("{}", summary_text(&result, started.elapsed()));
            Ok(())
        }
        Err(e) => Err(format!("job '{name}' failed: {e}")),
    }
}
