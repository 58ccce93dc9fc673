//! `JobGraph`: the operator graph of one job, and its deterministic EXPLAIN text.
//!
//! Nodes are sources, operators and sinks, each built from a factory so that the
//! runtime can create fresh instances per parallel slot or after a restart. Edges
//! say how rows move between nodes: `Forward` edges are chained into one task.

use std::fmt;
use std::sync::Arc;

use crate::error::{EngineError, Result};
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

    fn explain(&self) -> Vec<String> {
        match &self.kind {
            NodeKind::Source(s) => {
                let mut lines = s.explain();
                lines.push(if s.is_bounded() {
                    "bounded".into()
                } else {
                    "unbounded".into()
                });
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
}

impl JobGraph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Self {
        JobGraph {
            name: name.into(),
            nodes: Vec::new(),
            edges: Vec::new(),
        }
    }

    fn add(&mut self, name: String, kind: NodeKind, input: Option<NodeId>) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            id,
            name,
            kind,
            parallelism: 1,
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

    /// The nodes of a linear pipeline (source, operators, sink) in order, or an
    /// error when the graph is not one.
    pub fn pipeline(&self) -> Result<Vec<NodeId>> {
        let first = self
            .nodes
            .first()
            .ok_or_else(|| EngineError::InvalidGraph("the graph has no nodes".into()))?;
        let mut order = vec![first.id];
        let mut current = first.id;
        loop {
            let outs: Vec<&Edge> = self.edges.iter().filter(|e| e.from == current).collect();
            match outs.as_slice() {
                [] => break,
                [edge] => {
                    current = edge.to;
                    order.push(current);
                }
                _ => {
                    return Err(EngineError::InvalidGraph(format!(
                        "node {} fans out; only linear pipelines run in this version",
                        self.nodes[current].name
                    )));
                }
            }
        }
        if order.len() != self.nodes.len() {
            return Err(EngineError::InvalidGraph(
                "the graph is not one linear pipeline".into(),
            ));
        }
        if !matches!(self.nodes[order[0]].kind, NodeKind::Source(_)) {
            return Err(EngineError::InvalidGraph(
                "a pipeline must start with a source".into(),
            ));
        }
        if !matches!(self.nodes[current].kind, NodeKind::Sink(_)) {
            return Err(EngineError::InvalidGraph(
                "a pipeline must end with a sink".into(),
            ));
        }
        Ok(order)
    }

    /// Groups of node ids that run in one task: maximal runs of forward edges
    /// between nodes of equal parallelism. Sinks run in a task of their own so a
    /// slow external system applies backpressure through a bounded channel.
    pub fn chains(&self) -> Vec<Vec<NodeId>> {
        let mut chains: Vec<Vec<NodeId>> = Vec::new();
        for node in &self.nodes {
            let chained_to = self.edges.iter().find(|e| {
                e.to == node.id
                    && e.partitioning == Partitioning::Forward
                    && self.nodes[e.from].parallelism == node.parallelism
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
        writeln!(f, "Tasks: {chains}")
    }
}
