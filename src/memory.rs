//! Process-wide memory settings for programs that run jobs: the `watershed`
//! command and the benches call [`avoid_transparent_huge_pages`] first thing.
//!
//! Transparent huge pages (THP) make the kernel back memory in 2 MiB pages,
//! zeroed whole on first touch. mimalloc asks for them on every region it maps.
//! On the 2-vCPU VM this project is measured on, that cost Nexmark q7 (which
//! holds a window's 9.2M bids) half its throughput and 40% more RSS (1.75 GiB
//! instead of 1.24 GiB for 1.33 GiB of state), and the first window of a window
//! join paid ~50 ms of page faults in its emit latency. With THP off, q7 runs
//! twice as fast; a large random-access hash state (q16) is about 10% slower.
//! Databases with large heaps (Redis, MongoDB) recommend THP off for the same
//! reasons: memory bloat and latency spikes.
//!
//! An embedding program decides for itself: this is a setting of the whole
//! process, so the library never changes it on its own.

/// The environment variable that keeps transparent huge pages on when set to
/// `1` (to measure with them).
pub const KEEP_THP_VAR: &str = "WATERSHED_THP";

/// Turns transparent huge pages off for this process (Linux
/// `prctl(PR_SET_THP_DISABLE)`), unless `WATERSHED_THP=1`. Returns whether
/// they are now off; on other systems, or when the call fails, it changes
/// nothing and returns false.
pub fn avoid_transparent_huge_pages() -> bool {
    if std::env::var(KEEP_THP_VAR).is_ok_and(|v| v == "1") {
        return false;
    }
    disable_thp()
}

#[cfg(target_os = "linux")]
fn disable_thp() -> bool {
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and only sets a
    // flag on this process's memory map; no memory is passed to the kernel.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn disable_thp() -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The flag is set for the process (read back with PR_GET_THP_DISABLE).
    #[test]
    fn turns_transparent_huge_pages_off() {
        if std::env::var(KEEP_THP_VAR).is_ok_and(|v| v == "1") {
            return;
        }
        assert!(avoid_transparent_huge_pages());
        // SAFETY: as above; PR_GET_THP_DISABLE only reads the flag.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }
}
