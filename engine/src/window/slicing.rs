//! Window slicing: the arithmetic that cuts event time into *slices*, the
//! smallest intervals that no window boundary crosses, so overlapping windows
//! (`HOP`, `CUMULATE`) can share partial aggregates instead of each window
//! aggregating its rows again (Flink's `SliceAssigners`).
//!
//! A slice is named by its exclusive end. All windows and slices are aligned to
//! the epoch. A window `[start, end)` is the union of the slices whose ends lie
//! in `(start, end]`; a slice contributes to an arithmetic progression of window
//! ends, from [`SliceSpec::first_window_end`] to [`SliceSpec::last_window_end`]
//! in steps of [`SliceSpec::window_stride`].
//!
//! Arithmetic saturates at the ends of the `i64` range instead of overflowing.

use std::fmt;

use crate::error::{EngineError, Result};
use crate::time::Timestamp;
use crate::window::tumble::format_duration_ms;

/// The most slices one window may span (`size / slice width`); beyond it the
/// per-window merge would be unreasonably slow, and the query is refused.
pub const MAX_SLICES_PER_WINDOW: i64 = 10_000;

/// A window kind and its sizes, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SliceSpec {
    /// `TUMBLE(size)`: one slice per window.
    Tumble {
        /// Window length.
        size_ms: i64,
    },
    /// `HOP(slide, size)`: windows `[k*slide, k*slide + size)`. Slices are
    /// `gcd(size, slide)` wide. (Flink's planner only accepts `size` a multiple of
    /// `slide`; the engine supports any `size >= slide`.)
    Hop {
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        slide_ms: i64,
    },
    /// `CUMULATE(step, max_size)`: for each `s = k*max_size`, windows
    /// `[s, s + step)`, `[s, s + 2*step)`, ..., `[s, s + max_size)`. Slices are
    /// `step` wide.
    Cumulate {
        /// Growth of the window per step; must divide `max_size_ms`.
        step_ms: i64,
        /// Length of the largest window of a cycle.
        max_size_ms: i64,
    },
}

impl SliceSpec {
    /// Checks the sizes, returning the spec when they describe valid windows.
    pub fn validated(self) -> Result<Self> {
        let invalid = |msg: String| Err(EngineError::Config(msg));
        match self {
            SliceSpec::Tumble { size_ms } if size_ms <= 0 => invalid(format!(
                "TUMBLE window size must be positive, got {size_ms} ms"
            )),
            SliceSpec::Hop { size_ms, slide_ms } if size_ms <= 0 || slide_ms <= 0 => {
                invalid(format!(
                    "HOP window slide and size must be positive, got slide {slide_ms} ms \
                     and size {size_ms} ms"
                ))
            }
            SliceSpec::Hop { size_ms, slide_ms } if size_ms < slide_ms => invalid(format!(
                "HOP window size must be at least its slide (rows between windows would \
                 belong to no window), got slide {slide_ms} ms and size {size_ms} ms"
            )),
            SliceSpec::Cumulate {
                step_ms,
                max_size_ms,
            } if step_ms <= 0 || max_size_ms <= 0 => invalid(format!(
                "CUMULATE window step and max size must be positive, got step {step_ms} ms \
                 and max size {max_size_ms} ms"
            )),
            SliceSpec::Cumulate {
                step_ms,
                max_size_ms,
            } if max_size_ms % step_ms != 0 => invalid(format!(
                "CUMULATE requires the max size to be an integral multiple of the step, \
                 got max size {max_size_ms} ms and step {step_ms} ms"
            )),
            spec if spec.slices_per_window() > MAX_SLICES_PER_WINDOW => invalid(format!(
                "{spec} spans {} slices of {} ms per window (at most {MAX_SLICES_PER_WINDOW}); \
                 choose a size that is a multiple of the slide",
                spec.slices_per_window(),
                spec.slice_width()
            )),
            spec => Ok(spec),
        }
    }

    /// The width of every slice.
    pub fn slice_width(&self) -> i64 {
        match *self {
            SliceSpec::Tumble { size_ms } => size_ms,
            SliceSpec::Hop { size_ms, slide_ms } => gcd(size_ms, slide_ms),
            SliceSpec::Cumulate { step_ms, .. } => step_ms,
        }
    }

    /// How many slices the largest window spans.
    pub fn slices_per_window(&self) -> i64 {
        let width = self.slice_width().max(1);
        match *self {
            SliceSpec::Tumble { .. } => 1,
            SliceSpec::Hop { size_ms, .. } => size_ms / width,
            SliceSpec::Cumulate { max_size_ms, .. } => max_size_ms / width,
        }
    }

    /// The end (exclusive) of the slice holding a row at time `ts`.
    pub fn slice_end(&self, ts: Timestamp) -> Timestamp {
        floor_to(ts, self.slice_width()).saturating_add(self.slice_width())
    }

    /// The end of the earliest window the slice ending at `slice_end` belongs to.
    pub fn first_window_end(&self, slice_end: Timestamp) -> Timestamp {
        match *self {
            SliceSpec::Tumble { .. } | SliceSpec::Cumulate { .. } => slice_end,
            // Window ends are `k*slide + size`: the first one at or after the slice end.
            SliceSpec::Hop { size_ms, slide_ms } => {
                slice_end.saturating_add(size_ms.saturating_sub(slice_end).rem_euclid(slide_ms))
            }
        }
    }

    /// The end of the latest window the slice ending at `slice_end` belongs to:
    /// once that window has fired, the slice is no longer needed.
    pub fn last_window_end(&self, slice_end: Timestamp) -> Timestamp {
        match *self {
            SliceSpec::Tumble { .. } => slice_end,
            // The latest window start at or before the slice start.
            SliceSpec::Hop { size_ms, slide_ms } => {
                let slice_start = slice_end.saturating_sub(self.slice_width());
                floor_to(slice_start, slide_ms).saturating_add(size_ms)
            }
            // The end of the cycle the slice is in.
            SliceSpec::Cumulate { max_size_ms, .. } => {
                floor_to(slice_end.saturating_sub(1), max_size_ms).saturating_add(max_size_ms)
            }
        }
    }

    /// The distance between consecutive window ends a slice belongs to.
    pub fn window_stride(&self) -> i64 {
        match *self {
            SliceSpec::Tumble { size_ms } => size_ms,
            SliceSpec::Hop { slide_ms, .. } => slide_ms,
            SliceSpec::Cumulate { step_ms, .. } => step_ms,
        }
    }

    /// The start of the window ending at `window_end`. The window is made of the
    /// slices whose ends lie in `(window_start, window_end]`.
    pub fn window_start(&self, window_end: Timestamp) -> Timestamp {
        match *self {
            SliceSpec::Tumble { size_ms } | SliceSpec::Hop { size_ms, .. } => {
                window_end.saturating_sub(size_ms)
            }
            SliceSpec::Cumulate { max_size_ms, .. } => {
                floor_to(window_end.saturating_sub(1), max_size_ms)
            }
        }
    }

    /// The window ends the slice ending at `slice_end` belongs to, restricted to
    /// `(after, up_to]`, in increasing order.
    pub fn window_ends_between(
        &self,
        slice_end: Timestamp,
        after: Timestamp,
        up_to: Timestamp,
    ) -> impl Iterator<Item = Timestamp> + use<> {
        let first = self.first_window_end(slice_end);
        let last = self.last_window_end(slice_end).min(up_to);
        let stride = self.window_stride();
        // The first end in the progression that is greater than `after`.
        let start = if first > after {
            Some(first)
        } else {
            let steps = (after.saturating_sub(first) / stride).saturating_add(1);
            steps.checked_mul(stride).and_then(|d| first.checked_add(d))
        };
        std::iter::successors(start, move |e| e.checked_add(stride)).take_while(move |e| *e <= last)
    }

    /// True for CUMULATE: every window of a cycle contains the previous one, so
    /// once a window has fired, its merged state can replace its slices.
    pub fn windows_nest(&self) -> bool {
        matches!(self, SliceSpec::Cumulate { .. })
    }
}

impl fmt::Display for SliceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SliceSpec::Tumble { size_ms } => write!(f, "TUMBLE({})", format_duration_ms(size_ms)),
            SliceSpec::Hop { size_ms, slide_ms } => write!(
                f,
                "HOP(slide {}, size {})",
                format_duration_ms(slide_ms),
                format_duration_ms(size_ms)
            ),
            SliceSpec::Cumulate {
                step_ms,
                max_size_ms,
            } => write!(
                f,
                "CUMULATE(step {}, max size {})",
                format_duration_ms(step_ms),
                format_duration_ms(max_size_ms)
            ),
        }
    }
}

/// The largest multiple of `m` (positive) at or below `x`.
fn floor_to(x: i64, m: i64) -> i64 {
    x.saturating_sub(x.rem_euclid(m))
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(slide_ms: i64, size_ms: i64) -> SliceSpec {
        SliceSpec::Hop { size_ms, slide_ms }.validated().unwrap()
    }

    fn cumulate(step_ms: i64, max_size_ms: i64) -> SliceSpec {
        SliceSpec::Cumulate {
            step_ms,
            max_size_ms,
        }
        .validated()
        .unwrap()
    }

    /// Every window end of `ts`, by brute force over aligned window starts.
    fn brute_force_windows(spec: SliceSpec, ts: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        match spec {
            SliceSpec::Tumble { size_ms } => {
                let s = ts.div_euclid(size_ms) * size_ms;
                out.push((s, s + size_ms));
            }
            SliceSpec::Hop { size_ms, slide_ms } => {
                let mut s = (ts - size_ms).div_euclid(slide_ms) * slide_ms;
                while s <= ts {
                    if s <= ts && ts < s + size_ms {
                        out.push((s, s + size_ms));
                    }
                    s += slide_ms;
                }
            }
            SliceSpec::Cumulate {
                step_ms,
                max_size_ms,
            } => {
                let s = ts.div_euclid(max_size_ms) * max_size_ms;
                let mut e = s + step_ms;
                while e <= s + max_size_ms {
                    if ts < e {
                        out.push((s, e));
                    }
                    e += step_ms;
                }
            }
        }
        out
    }

    /// The windows of `ts` as the slice arithmetic sees them.
    fn sliced_windows(spec: SliceSpec, ts: i64) -> Vec<(i64, i64)> {
        let slice_end = spec.slice_end(ts);
        assert!(slice_end - spec.slice_width() <= ts && ts < slice_end);
        spec.window_ends_between(slice_end, i64::MIN, i64::MAX)
            .map(|e| {
                let start = spec.window_start(e);
                // The slice lies inside the window.
                assert!(
                    start < slice_end && slice_end <= e,
                    "{spec} ts {ts} end {e}"
                );
                (start, e)
            })
            .collect()
    }

    #[test]
    fn slices_reproduce_every_window_of_a_row() {
        let specs = [
            SliceSpec::Tumble { size_ms: 1000 },
            hop(1000, 3000),
            hop(2000, 5000),
            hop(3000, 3000),
            hop(4000, 6000),
            cumulate(1000, 4000),
            cumulate(4000, 4000),
        ];
        for spec in specs {
            for ts in -13_001..13_001 {
                let expected = brute_force_windows(spec, ts);
                assert!(!expected.is_empty());
                assert_eq!(sliced_windows(spec, ts), expected, "{spec} at {ts}");
                let first = spec.first_window_end(spec.slice_end(ts));
                let last = spec.last_window_end(spec.slice_end(ts));
                assert_eq!(first, expected[0].1);
                assert_eq!(last, expected[expected.len() - 1].1);
            }
        }
    }

    #[test]
    fn hop_slices_by_gcd() {
        let spec = hop(2000, 5000);
        assert_eq!(spec.slice_width(), 1000);
        assert_eq!(spec.slices_per_window(), 5);
        assert_eq!(spec.slice_end(-1), 0);
        assert_eq!(spec.slice_end(0), 1000);
        assert_eq!(spec.slice_end(-1001), -1000);
        // Window ends are 2k*1000 + 5000 (odd seconds): [-4000, 1000), [-2000, 3000), [0, 5000).
        assert_eq!(spec.first_window_end(1000), 1000);
        assert_eq!(spec.last_window_end(1000), 5000);
        assert_eq!(spec.window_start(5000), 0);
    }

    #[test]
    fn cumulate_windows_grow_within_a_cycle() {
        let spec = cumulate(1000, 3000);
        assert_eq!(spec.slice_end(-1), 0);
        assert_eq!(spec.last_window_end(0), 0);
        assert_eq!(spec.window_start(0), -3000);
        assert_eq!(spec.window_start(-1000), -3000);
        assert_eq!(spec.window_start(1000), 0);
        assert_eq!(spec.window_start(3000), 0);
        assert_eq!(
            spec.window_ends_between(1000, i64::MIN, i64::MAX)
                .collect::<Vec<_>>(),
            vec![1000, 2000, 3000]
        );
        assert_eq!(
            spec.window_ends_between(1000, 1000, 2500)
                .collect::<Vec<_>>(),
            vec![2000]
        );
        assert!(spec.windows_nest());
    }

    #[test]
    fn window_ends_between_respects_bounds() {
        let spec = hop(1000, 4000);
        assert_eq!(
            spec.window_ends_between(1000, 1500, 3000)
                .collect::<Vec<_>>(),
            vec![2000, 3000]
        );
        assert_eq!(spec.window_ends_between(1000, 4000, i64::MAX).count(), 0);
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        for spec in [hop(2000, 5000), cumulate(1000, 3000)] {
            for ts in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
                let end = spec.slice_end(ts);
                let _ = spec.last_window_end(end);
                let _ = spec.window_start(end);
                let _ = spec.window_ends_between(end, i64::MIN, i64::MAX).count();
            }
        }
    }

    #[test]
    fn invalid_sizes_are_refused_with_a_reason() {
        let err = |spec: SliceSpec| spec.validated().unwrap_err().to_string();
        assert!(
            err(SliceSpec::Cumulate {
                step_ms: 25,
                max_size_ms: 60
            })
            .contains("integral multiple of the step")
        );
        assert!(
            err(SliceSpec::Hop {
                size_ms: 1000,
                slide_ms: 2000
            })
            .contains("at least its slide")
        );
        assert!(
            err(SliceSpec::Hop {
                size_ms: 0,
                slide_ms: 2000
            })
            .contains("positive")
        );
        assert!(
            err(SliceSpec::Hop {
                size_ms: 3_600_001,
                slide_ms: 60_000
            })
            .contains("slices")
        );
        assert_eq!(
            hop(2000, 5000).to_string(),
            "HOP(slide 2 s, size 5 s)".to_string()
        );
    }
}
