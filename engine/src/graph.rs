//! `JobGraph`: the operator graph of one job, and its deterministic EXPLAIN text.
//!
//! Nodes are sources, operators and sinks, each built from a factory so that the
//! runtime can create fresh instances per parallel slot or after a restart. Edges
//! say how rows move between nodes: `Forward` edges are chained into one task.

use std::fmt;
use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::late_rows::DeadLetterTable;
use crate::metrics::NodeRole;
use crate::operator::OperatorFactoryRef;
use crate::sink::SinkFactory;
use crate::source::SourceFactory;

/// Index of a node in its graph.
pub type NodeId = usize;

/// What a node does.
#[derive(Clone)]
pub enum NodeKind {
    /// Reads a table.
    Source(Arc<dyn SourceFactory>),
    /// Transforms messages.
    Operator(OperatorFactoryRef),
    /// Writes a table.
    Sink(Arc<dyn SinkFactory>),
}

/// A node of a job graph.
#[derive(Clone)]
pub struct Node {
    /// Position in [`JobGraph::nodes`].
    pub id: NodeId,
    /// Display name, e.g. `Source: payments` or `Filter`.
    pub name: String,
    /// The factory behind the node.
    pub kind: NodeKind,
    /// Number of parallel instances.
    pub parallelism: usize,
    /// For sources: after this long without a batch, a split declares itself
    /// idle ([`crate::message::Message::Idle`]) so it stops holding back the
    /// watermark. `None` (the default) never declares a split idle.
    pub idle_timeout: Option<std::time::Duration>,
}

impl Node {
    /// How the node's counts enter the job summary.
    pub fn role(&self) -> NodeRole {
        match &self.kind {
            NodeKind::Source(_) => NodeRole::Source,
            NodeKind::Operator(op) => op.role(),
            NodeKind::Sink(_) => NodeRole::Sink,
        }
    }

    /// The node's id in checkpoints: its position and name, stable across runs
    /// of the same query (planning is deterministic).
    pub fn operator_id(&self) -> String {
        let name: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("n{}-{}", self.id, name.trim_matches('-'))
    }

    fn explain(&self) -> Vec<String> {
        match &self.kind {
            NodeKind::Source(s) => {
                let mut lines = s.explain();
                lines.push(if s.is_bounded() {
                    "bounded".into()
                } else {
                    "unbounded".into()
                });
                if let Some(timeout) = self.idle_timeout {
                    lines.push(format!("idle-timeout: {} ms", timeout.as_millis()));
                }
                lines
            }
            NodeKind::Operator(op) => op.explain(),
            NodeKind::Sink(s) => s.explain(),
        }
    }
}

/// How rows travel along an edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// One-to-one to the same parallel instance; chained into one task.
    Forward,
    /// By hash of the named key columns.
    Hash(Vec<String>),
    /// To every instance.
    Broadcast,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioning::Forward => write!(f, "FORWARD"),
            Partitioning::Hash(keys) => write!(f, "HASH[{}]", keys.join(", ")),
            Partitioning::Broadcast => write!(f, "BROADCAST"),
        }
    }
}

/// A directed edge between two nodes.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Upstream node.
    pub from: NodeId,
    /// Downstream node.
    pub to: NodeId,
    /// How rows are distributed.
    pub partitioning: Partitioning,
}

/// The operator graph of one job.
#[derive(Clone)]
pub struct JobGraph {
    /// What the job does, e.g. `INSERT INTO card_minute`.
    pub name: String,
    /// Nodes in creation order (sources first in each pipeline).
    pub nodes: Vec<Node>,
    /// Edges between nodes.
    pub edges: Vec<Edge>,
    /// Where operators write the late rows they drop, if anywhere.
    pub dead_letter: Option<DeadLetterTable>,
}

impl JobGraph {
    /// Per node: whether it emits results rather than source rows (an
    /// aggregate or join, or anything downstream of one). Nodes are in
    /// creation order, inputs first.
    pub fn emits_results(&self) -> Vec<bool> {
        let mut results = vec![false; self.nodes.len()];
        for node in &self.nodes {
            let upstream = self
                .edges
                .iter()
                .any(|e| e.to == node.id && results.get(e.from).copied().unwrap_or(false));
            let stateful = matches!(node.role(), NodeRole::Aggregate | NodeRole::Join);
            if let Some(r) = results.get_mut(node.id) {
                *r = upstream || stateful;
            }
        }
        results
    }

    /// Per node: whether every row it receives is a result of an aggregate or
    /// join upstream (see [`JobGraph::emits_results`]).
    pub fn fed_by_results(&self) -> Vec<bool> {
        let results = self.emits_results();
        self.nodes
            .iter()
            .map(|node| {
                let mut inputs = self.edges.iter().filter(|e| e.to == node.id).peekable();
                inputs.peek().is_some()
                    && inputs.all(|e| results.get(e.from).copied().unwrap_or(false))
            })
            .collect()
    }

    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Self {
        JobGraph {
            name: name.into(),
            nodes: Vec::new(),
            edges: Vec::new(),
            dead_letter: None,
        }
    }

    fn add(&mut self, name: String, kind: NodeKind, input: Option<NodeId>) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            id,
            name,
            kind,
            parallelism: 1,
            idle_timeout: None,
        });
        if let Some(from) = input {
            self.edges.push(Edge {
                from,
                to: id,
                partitioning: Partitioning::Forward,
            });
        }
        id
    }

    /// Adds a source node.
    pub fn add_source(&mut self, table: &str, factory: Arc<dyn SourceFactory>) -> NodeId {
        self.add(format!("Source: {table}"), NodeKind::Source(factory), None)
    }

    /// Adds an operator fed by `input` over a forward edge.
    pub fn add_operator(&mut self, factory: OperatorFactoryRef, input: NodeId) -> NodeId {
        self.add(factory.name(), NodeKind::Operator(factory), Some(input))
    }

    /// Adds a sink fed by `input` over a forward edge.
    pub fn add_sink(
        &mut self,
        table: &str,
        factory: Arc<dyn SinkFactory>,
        input: NodeId,
    ) -> NodeId {
        self.add(
            format!("Sink: {table}"),
            NodeKind::Sink(factory),
            Some(input),
        )
    }

    /// Adds an edge.
    pub fn add_edge(&mut self, from: NodeId, to: NodeId, partitioning: Partitioning) {
        self.edges.push(Edge {
            from,
            to,
            partitioning,
        });
    }

    /// Adds an operator fed by several inputs (input `i` is `inputs[i]`).
    pub fn add_operator_with_inputs(
        &mut self,
        factory: OperatorFactoryRef,
        inputs: &[(NodeId, Partitioning)],
    ) -> NodeId {
        let id = self.add(factory.name(), NodeKind::Operator(factory), None);
        for (from, partitioning) in inputs {
            self.add_edge(*from, id, partitioning.clone());
        }
        id
    }

    /// Declares a source's splits idle after `timeout` without a batch (Flink's
    /// `scan.watermark.idle-timeout`); fails when `source` is not a source.
    pub fn set_idle_timeout(&mut self, source: NodeId, timeout: std::time::Duration) -> Result<()> {
        match self.nodes.get_mut(source) {
            Some(node) if matches!(node.kind, NodeKind::Source(_)) => {
                node.idle_timeout = Some(timeout);
                Ok(())
            }
            _ => Err(EngineError::InvalidGraph(format!(
                "node {source} is not a source; only sources have an idle timeout"
            ))),
        }
    }

    /// Sets the parallelism of every node.
    pub fn set_parallelism(&mut self, parallelism: usize) {
        for node in &mut self.nodes {
            node.parallelism = parallelism.max(1);
        }
    }

    /// The schema of the batches a node emits (sinks emit nothing).
    pub fn output_schema(&self, node: NodeId) -> Result<datafusion::arrow::datatypes::SchemaRef> {
        match self.nodes.get(node).map(|n| &n.kind) {
            Some(NodeKind::Source(s)) => Ok(s.schema()),
            Some(NodeKind::Operator(op)) => Ok(op.output_schema()),
            _ => Err(EngineError::InvalidGraph(format!(
                "node {node} has no output"
            ))),
        }
    }

    /// Checks the graph can run: sources have no inputs, sinks no outputs, every
    /// other node has inputs, forward edges join equal parallelisms.
    pub fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(EngineError::InvalidGraph("the graph has no nodes".into()));
        }
        for node in &self.nodes {
            let inputs = self.edges.iter().filter(|e| e.to == node.id).count();
            let outputs = self.edges.iter().filter(|e| e.from == node.id).count();
            let problem = match node.kind {
                NodeKind::Source(_) if inputs > 0 => Some("a source cannot have inputs"),
                NodeKind::Sink(_) if outputs > 0 => Some("a sink cannot have outputs"),
                NodeKind::Sink(_) | NodeKind::Operator(_) if inputs == 0 => Some("it has no input"),
                NodeKind::Source(_) | NodeKind::Operator(_) if outputs == 0 => {
                    Some("its output goes nowhere")
                }
                _ => None,
            };
            if let Some(problem) = problem {
                return Err(EngineError::InvalidGraph(format!(
                    "{}: {problem}",
                    node.name
                )));
            }
        }
        for edge in &self.edges {
            let (from, to) = (&self.nodes[edge.from], &self.nodes[edge.to]);
            if edge.partitioning == Partitioning::Forward && from.parallelism != to.parallelism {
                return Err(EngineError::InvalidGraph(format!(
                    "forward edge {} -> {} joins parallelism {} and {}",
                    from.name, to.name, from.parallelism, to.parallelism
                )));
            }
        }
        Ok(())
    }

    /// Groups of node ids that run in one task: maximal runs of forward edges
    /// between nodes of equal parallelism (a hash edge between two single
    /// instances is one too). Sinks run in a task of their own so a slow
    /// external system applies backpressure through a bounded channel.
    pub fn chains(&self) -> Vec<Vec<NodeId>> {
        let mut chains: Vec<Vec<NodeId>> = Vec::new();
        for node in &self.nodes {
            let chained_to = self.edges.iter().find(|e| {
                e.to == node.id
                    && self.is_forward(e)
                    && !matches!(node.kind, NodeKind::Sink(_))
                    && self.edges.iter().filter(|o| o.from == e.from).count() == 1
                    && self.edges.iter().filter(|i| i.to == node.id).count() == 1
            });
            match chained_to.and_then(|e| chains.iter_mut().find(|c| c.last() == Some(&e.from))) {
                Some(chain) => chain.push(node.id),
                None => chains.push(vec![node.id]),
            }
        }
        chains
    }
}

impl JobGraph {
    /// True when `edge` sends each instance's output to the same instance
    /// downstream: a forward edge, or a hash edge between single instances.
    pub fn is_forward(&self, edge: &Edge) -> bool {
        let (from, to) = (&self.nodes[edge.from], &self.nodes[edge.to]);
        match edge.partitioning {
            Partitioning::Forward => from.parallelism == to.parallelism,
            Partitioning::Hash(_) => from.parallelism == 1 && to.parallelism == 1,
            Partitioning::Broadcast => false,
        }
    }

    /// A digest of what the job computes: every node's id, name and EXPLAIN
    /// lines and every edge, without parallelism or partitioning (which follow
    /// from the nodes). Checkpoints record it; a restore into a graph with
    /// another fingerprint is refused.
    pub fn fingerprint(&self) -> String {
        // FNV-1a, 64 bits: stable across builds and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |text: &str| {
            for byte in text.bytes().chain(std::iter::once(0)) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for node in &self.nodes {
            feed(&node.operator_id());
            for line in node.explain() {
                feed(&line);
            }
        }
        for edge in &self.edges {
            feed(&format!("{} -> {}", edge.from, edge.to));
        }
        format!("{hash:016x}")
    }
}

impl fmt::Display for JobGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Job: {}", self.name)?;
        for node in &self.nodes {
            writeln!(
                f,
                "[{}] {} (parallelism {})",
                node.id, node.name, node.parallelism
            )?;
            for line in node.explain() {
                writeln!(f, "      {line}")?;
            }
            for edge in self.edges.iter().filter(|e| e.from == node.id) {
                writeln!(f, "      -> [{}] {}", edge.to, edge.partitioning)?;
            }
        }
        let chains = self
            .chains()
            .iter()
            .map(|c| {
                let ids: Vec<String> = c.iter().map(|id| id.to_string()).collect();
                format!("[{}]", ids.join(" -> "))
            })
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(dead_letter) = &self.dead_letter {
            writeln!(f, "Late rows -> {}", dead_letter.table)?;
        }
        writeln!(f, "Tasks: {chains}")
    }
}
