//! Restoring a checkpoint at another parallelism: which of the old instances'
//! state one new instance takes.
//!
//! Keyed state moves by key group, as in Flink: the exchange sends a row to
//! the instance that owns its key's group (`runtime::exchange`), so a new
//! instance takes, from every old instance's state, the rows whose keys hash
//! into its own groups. State that is not keyed (a sink's uncommitted output)
//! goes round-robin: new instance `j` of `n` takes old instances `j`, `j + n`, ...

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::checkpoint::OperatorState;
use crate::error::{EngineError, Result};
use crate::runtime::exchange::{instance_of, key_groups_of};

/// The state one new instance restores from, when the job's parallelism
/// changed since the checkpoint.
#[derive(Debug, Clone)]
pub struct Rescaled {
    /// Parallel instances when the checkpoint was taken.
    pub old_parallelism: usize,
    /// Parallel instances now.
    pub new_parallelism: usize,
    /// The restoring instance, `0..new_parallelism`.
    pub instance: usize,
    /// Per input of the operator, the input columns the exchange hashes its
    /// rows by (`None`: the input is not hash-partitioned).
    pub input_keys: Vec<Option<Vec<usize>>>,
    /// The state of every old instance that had some, by old instance index.
    pub states: Vec<(usize, OperatorState)>,
}

impl Rescaled {
    /// The error of an operator that cannot be restored at another parallelism.
    pub fn unsupported(&self, what: &str) -> EngineError {
        EngineError::Config(format!(
            "{what} cannot be restored at another parallelism (the checkpoint ran {} \
             instances, this job {}): SET 'parallelism.default' = '{}'",
            self.old_parallelism, self.new_parallelism, self.old_parallelism
        ))
    }

    /// The columns input `input` is hashed by; an error when it is not
    /// hash-partitioned (its state is not split by key).
    pub fn keys_of_input(&self, input: usize, what: &str) -> Result<&[usize]> {
        self.input_keys
            .get(input)
            .and_then(Option::as_deref)
            .ok_or_else(|| self.unsupported(&format!("{what} (its input is not keyed)")))
    }

    /// True when this instance owns key group `group`.
    pub fn owns(&self, group: usize) -> bool {
        instance_of(group, self.new_parallelism) == self.instance
    }

    /// The rows of `batch` whose key (columns `key_columns`) this instance owns.
    pub fn owned_rows(&self, batch: &RecordBatch, key_columns: &[usize]) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = key_columns
            .iter()
            .map(|&c| batch.column(c).clone())
            .collect();
        let groups = key_groups_of(&columns, batch.num_rows())?;
        let mask: BooleanArray = groups.into_iter().map(|g| Some(self.owns(g))).collect();
        Ok(filter_record_batch(batch, &mask)?)
    }

    /// Every old state with only the rows this instance owns, their keys in
    /// the columns named `key_names` of each state batch.
    pub fn owned_states(&self, key_names: &[String]) -> Result<Vec<OperatorState>> {
        self.states
            .iter()
            .map(|(_, state)| {
                let key_columns = key_names
                    .iter()
                    .map(|name| {
                        state.schema.index_of(name).map_err(|_| {
                            EngineError::Config(format!(
                                "malformed checkpoint state: no key column '{name}'"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let batches = state
                    .batches
                    .iter()
                    .map(|b| self.owned_rows(b, &key_columns))
                    .collect::<Result<Vec<_>>>()?;
                Ok(OperatorState {
                    schema: state.schema.clone(),
                    batches,
                })
            })
            .collect()
    }

    /// [`Rescaled::owned_states`] as one state: every owned row, in the first
    /// state's schema, with the lowest watermark (keyed instances share one at
    /// an aligned barrier).
    pub fn owned_state(&self, key_names: &[String]) -> Result<OperatorState> {
        let owned = self.owned_states(key_names)?;
        let Some(first) = owned.first() else {
            return Err(EngineError::Config(
                "malformed checkpoint state: no instance had state".into(),
            ));
        };
        let watermark = owned.iter().map(|s| s.watermark().ok()).min().flatten();
        let schema = first.schema.clone();
        let batches = owned
            .iter()
            .flat_map(|s| &s.batches)
            .map(|b| {
                let options = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
                RecordBatch::try_new_with_options(schema.clone(), b.columns().to_vec(), &options)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Config(format!("malformed checkpoint state: {e}")))?;
        let merged = OperatorState { schema, batches };
        match watermark {
            Some(watermark) => merged.with_watermark(watermark),
            None => Ok(merged),
        }
    }

    /// The old states this instance inherits whole (state that is not keyed):
    /// those of old instances `instance`, `instance + new_parallelism`, ...
    pub fn inherited(&self) -> impl Iterator<Item = &(usize, OperatorState)> {
        self.states
            .iter()
            .filter(|(old, _)| old % self.new_parallelism == self.instance)
    }

    /// The old instance indices this instance inherits (with or without state).
    pub fn inherited_instances(&self) -> impl Iterator<Item = usize> + '_ {
        (self.instance..self.old_parallelism).step_by(self.new_parallelism.max(1))
    }
}

/// What a task restores one node from.
#[derive(Debug, Clone)]
pub enum RestoredState {
    /// The state its own instance wrote (same parallelism).
    Same(OperatorState),
    /// The states of a checkpoint taken at another parallelism.
    Rescaled(Rescaled),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::runtime::exchange::partition_by_hash;

    fn batch(keys: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k0", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]));
        let values: Vec<String> = keys.iter().map(|k| format!("v{k}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(keys.to_vec())),
                Arc::new(StringArray::from(values)),
            ],
        )
        .unwrap()
    }

    fn keys(batches: &[RecordBatch]) -> Vec<i64> {
        let mut keys: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        keys.sort();
        keys
    }

    /// Keyed state written by `old` instances (split as the exchange split the
    /// rows), restored by `new` instances: each key lands where the exchange
    /// now sends it, exactly once.
    #[test]
    fn keyed_state_moves_to_where_the_exchange_sends_its_key() {
        let all: Vec<i64> = (0..5_000).map(|k| k * 7919 % 100_003).collect();
        for (old, new) in [(2, 3), (3, 2), (1, 4), (4, 1), (2, 2)] {
            let states: Vec<(usize, OperatorState)> = partition_by_hash(&batch(&all), &[0], old)
                .unwrap()
                .into_iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    b.map(|b| {
                        (
                            i,
                            OperatorState {
                                schema: b.schema(),
                                batches: vec![b],
                            },
                        )
                    })
                })
                .collect();
            let now = partition_by_hash(&batch(&all), &[0], new).unwrap();
            let mut restored = Vec::new();
            for (instance, expected) in now.iter().enumerate() {
                let rescaled = Rescaled {
                    old_parallelism: old,
                    new_parallelism: new,
                    instance,
                    input_keys: vec![Some(vec![0])],
                    states: states.clone(),
                };
                let owned: Vec<RecordBatch> = rescaled
                    .owned_states(&["k0".to_string()])
                    .unwrap()
                    .into_iter()
                    .flat_map(|s| s.batches)
                    .collect();
                let expected: Vec<RecordBatch> = expected.iter().cloned().collect();
                assert_eq!(keys(&owned), keys(&expected), "{old} -> {new} #{instance}");
                restored.extend(owned);
            }
            let mut everything = all.clone();
            everything.sort();
            assert_eq!(keys(&restored), everything, "{old} -> {new}");
        }
    }

    #[test]
    fn unkeyed_state_goes_round_robin_and_errors_name_the_parallelism() {
        let state = |i: i64| OperatorState {
            schema: batch(&[i]).schema(),
            batches: vec![batch(&[i])],
        };
        let rescaled = |instance| Rescaled {
            old_parallelism: 5,
            new_parallelism: 2,
            instance,
            input_keys: vec![None],
            states: (0..5).map(|i| (i, state(i as i64))).collect(),
        };
        let taken: Vec<usize> = rescaled(1).inherited().map(|(i, _)| *i).collect();
        assert_eq!(taken, vec![1, 3]);
        assert_eq!(
            rescaled(0).inherited_instances().collect::<Vec<_>>(),
            [0, 2, 4]
        );
        let err = rescaled(0)
            .keys_of_input(0, "operator 'x'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("SET 'parallelism.default' = '5'"), "{err}");
        assert!(err.contains("not keyed"), "{err}");
    }
}
