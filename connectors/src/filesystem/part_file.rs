//! Names of the filesystem sink's part files, following Flink:
//! `part-<run id>-<subtask>-<counter>` when committed (`subtask` is the sink
//! instance's index, so parallel instances never write the same name), and the hidden
//! `.part-<run id>-<subtask>-<counter>.inprogress` while being written.
//!
//! The run id is unique per sink instance: it mixes the wall-clock time, the
//! process id and a process-wide counter, formatted like a UUID.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Distinguishes sink instances created within the same clock tick.
static INSTANCE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// SplitMix64 finalizer: spreads the bits of its input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A new UUID-shaped id (`8-4-4-4-12` hex digits), unique per call.
pub fn unique_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let counter = INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = u64::from(std::process::id());
    let hi = mix((nanos as u64) ^ mix(pid) ^ mix(counter.rotate_left(32)));
    let lo = mix(((nanos >> 64) as u64) ^ hi ^ mix(pid.rotate_left(17) ^ counter));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// The names of one sink instance's part files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFileNames {
    run_id: String,
    subtask: usize,
}

impl PartFileNames {
    /// Names for sink instance `subtask` (its split index) with a fresh run id.
    pub fn new(subtask: usize) -> Self {
        PartFileNames {
            run_id: unique_run_id(),
            subtask,
        }
    }

    /// The committed (visible) name of part `counter`.
    pub fn visible(&self, counter: u64) -> String {
        format!("part-{}-{}-{counter}", self.run_id, self.subtask)
    }

    /// The hidden name of part `counter` while it is written.
    pub fn in_progress(&self, counter: u64) -> String {
        format!(".{}.inprogress", self.visible(counter))
    }

    /// True when `name` is an in-progress part file of instance `subtask`, of
    /// any run.
    pub fn is_in_progress_of(name: &str, subtask: usize) -> bool {
        let Some(stem) = name
            .strip_prefix(".part-")
            .and_then(|n| n.strip_suffix(".inprogress"))
        else {
            return false;
        };
        // `<run id: 5 dash-separated groups>-<subtask>-<counter>`
        let mut tail = stem.rsplitn(3, '-');
        let counter = tail.next();
        let owner = tail.next();
        counter.is_some_and(|c| c.parse::<u64>().is_ok())
            && owner.is_some_and(|o| o.parse::<usize>() == Ok(subtask))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_uuid_shaped() {
        let a = unique_run_id();
        let b = unique_run_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(
            a.split('-').map(str::len).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
    }

    #[test]
    fn names_follow_flink() {
        let names = PartFileNames {
            run_id: "abc".into(),
            subtask: 0,
        };
        assert_eq!(names.visible(3), "part-abc-0-3");
        assert_eq!(names.in_progress(3), ".part-abc-0-3.inprogress");
    }

    #[test]
    fn instances_have_distinct_names() {
        let a = PartFileNames::new(0);
        let b = PartFileNames::new(1);
        assert!(a.visible(0).ends_with("-0-0"), "{}", a.visible(0));
        assert!(b.visible(0).ends_with("-1-0"), "{}", b.visible(0));
        assert_ne!(a.visible(0), b.visible(0));
        assert_ne!(a.in_progress(0), b.in_progress(0));
    }
}
