//! Running a SQL script: statements in order, DDL and `SET` applied as they come,
//! each `INSERT INTO` and query started as a job of its own (jobs run
//! concurrently, as separate Flink jobs would).

use std::sync::Arc;

use watershed_engine::runtime::JobHandle;
use watershed_engine::sink::SinkFactory;
use watershed_sql::parser::parse_script;

use crate::context::StreamContext;
use crate::error::{Result, WatershedError};

/// What a script produced, in statement order.
pub enum ScriptOutput {
    /// A DDL or `SET` statement's message.
    Message(String),
    /// An EXPLAIN statement's plan text.
    Plan(String),
    /// A started job (boxed: a handle is large next to a message).
    Job(Box<JobHandle>),
}

/// Whether to run jobs or only show their plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptMode {
    /// Start every job.
    Run,
    /// Plan every job and return its plan text instead of running it.
    Explain,
}

/// Which checkpoint a script's job starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// The newest completed checkpoint in `execution.checkpointing.dir`; a
    /// fresh start when there is none.
    Latest,
    /// Completed checkpoint number `id`, in `dir` when given (else in
    /// `execution.checkpointing.dir`).
    Checkpoint {
        /// The checkpoint's id.
        id: u64,
        /// The checkpoint directory's parent, from a `<dir>/chk-<id>` path.
        dir: Option<String>,
    },
}

impl Restore {
    /// Parses `--restore`: `latest`, a checkpoint id, or the path of a
    /// checkpoint directory (`.../chk-<id>`, which also sets where checkpoints
    /// are).
    pub fn parse(text: &str) -> std::result::Result<Restore, String> {
        let text = text.trim();
        if text == "latest" {
            return Ok(Restore::Latest);
        }
        if let Ok(id) = text.parse() {
            return Ok(Restore::Checkpoint { id, dir: None });
        }
        let trimmed = text.trim_end_matches('/');
        let (dir, last) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
        match last.strip_prefix("chk-").and_then(|id| id.parse().ok()) {
            Some(id) if !dir.is_empty() => Ok(Restore::Checkpoint {
                id,
                dir: Some(dir.to_string()),
            }),
            _ => Err(format!(
                "--restore '{text}': expected 'latest', a checkpoint id or a checkpoint \
                 directory '<dir>/chk-<id>'"
            )),
        }
    }
}

/// Executes a script. `query_sink` builds the sink for bare queries' results
/// (the CLI prints them). With `restore`, the first job starts from that
/// checkpoint; with checkpoints on, a script may start only one job (the
/// checkpoint directory belongs to one job).
pub async fn run_script(
    ctx: &StreamContext,
    sql: &str,
    mode: ScriptMode,
    query_sink: &dyn Fn() -> Arc<dyn SinkFactory>,
    restore: Option<Restore>,
) -> Result<Vec<ScriptOutput>> {
    let mut outputs = Vec::new();
    let mut restore = restore;
    let mut jobs = 0;
    for statement in parse_script(sql)? {
        let frame = ctx.statement(statement).await?;
        if let Some(message) = frame.message() {
            outputs.push(ScriptOutput::Message(message.to_string()));
            continue;
        }
        if frame.graph().is_none() || mode == ScriptMode::Explain {
            if let Some(text) = frame.plan_text() {
                outputs.push(ScriptOutput::Plan(text));
            }
            continue;
        }
        jobs += 1;
        if jobs > 1 && ctx.checkpointing_enabled() {
            return Err(WatershedError::Usage(
                "with 'execution.checkpointing.interval' set, a script runs one INSERT INTO \
                 or query: put the other jobs in scripts of their own, each with its own \
                 'execution.checkpointing.dir'"
                    .into(),
            ));
        }
        let frame = match restore.take() {
            Some(which) => {
                let restored = match which {
                    Restore::Latest => ctx.restore_latest().await?,
                    Restore::Checkpoint { id, dir } => {
                        if let Some(dir) = dir {
                            ctx.sql(&format!(
                                "SET '{}' = '{dir}'",
                                crate::context::settings::CHECKPOINT_DIR
                            ))
                            .await?;
                        }
                        Some(ctx.restore_checkpoint(id).await?)
                    }
                };
                let message = match restored {
                    Some(id) => format!("restoring checkpoint {id}"),
                    None => "no completed checkpoint to restore: starting fresh".to_string(),
                };
                outputs.push(ScriptOutput::Message(message));
                // Planned again so that the job picks up the restored state.
                frame.replanned(ctx)?
            }
            None => frame,
        };
        let sink = frame.is_query().then(query_sink);
        outputs.push(ScriptOutput::Job(Box::new(frame.start_with_sink(sink)?)));
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_argument_forms() {
        assert_eq!(Restore::parse("latest"), Ok(Restore::Latest));
        assert_eq!(
            Restore::parse("7"),
            Ok(Restore::Checkpoint { id: 7, dir: None })
        );
        assert_eq!(
            Restore::parse("file:///tmp/cp/chk-00000000000000000012/"),
            Ok(Restore::Checkpoint {
                id: 12,
                dir: Some("file:///tmp/cp".into())
            })
        );
        let err = Restore::parse("yesterday").unwrap_err();
        assert!(err.contains("expected 'latest'"), "{err}");
        assert!(Restore::parse("chk-3").is_err(), "a directory is needed");
    }
}
