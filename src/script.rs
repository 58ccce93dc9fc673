//! Running a SQL script: statements in order, DDL and `SET` applied as they come,
//! each `INSERT INTO` and query started as a job of its own (jobs run
//! concurrently, as separate Flink jobs would).

use std::sync::Arc;

use watershed_engine::runtime::JobHandle;
use watershed_engine::sink::SinkFactory;
use watershed_sql::parser::parse_script;

use crate::context::StreamContext;
use crate::error::Result;

/// What a script produced, in statement order.
pub enum ScriptOutput {
    /// A DDL or `SET` statement's message.
    Message(String),
    /// An EXPLAIN statement's plan text.
    Plan(String),
    /// A started job.
    Job(JobHandle),
}

/// Whether to run jobs or only show their plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptMode {
    /// Start every job.
    Run,
    /// Plan every job and return its plan text instead of running it.
    Explain,
}

/// Executes a script. `query_sink` builds the sink for bare queries' results
/// (the CLI prints them).
pub async fn run_script(
    ctx: &StreamContext,
    sql: &str,
    mode: ScriptMode,
    query_sink: &dyn Fn() -> Arc<dyn SinkFactory>,
) -> Result<Vec<ScriptOutput>> {
    let mut outputs = Vec::new();
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
        let sink = frame.is_query().then(query_sink);
        outputs.push(ScriptOutput::Job(frame.start_with_sink(sink)?));
    }
    Ok(outputs)
}
