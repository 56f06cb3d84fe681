//! Process-wide memory settings, made first thing in `main`.
//!
//! glibc gives each thread that allocates while another holds the main arena an arena of its
//! own, up to eight per core. roombox runs a few dozen threads (GStreamer streaming threads,
//! the tokio workers, WebRTC), so freed memory sat in several arenas at once. Two arenas took
//! 1.7 to 3.4 MiB (5 to 10 %) off the anonymous RSS of a box in a call, in two runs of
//! `bench_call_memory` (`tests/quality.rs`), which measures the same binary both ways.

/// How many malloc arenas the process may use.
pub const ARENAS: i32 = 2;

/// Limits glibc's malloc arenas to [`ARENAS`], unless `MALLOC_ARENA_MAX` already says how many
/// (glibc reads it itself, before `main`). Call it before any thread exists.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        /// glibc's `M_ARENA_MAX` (malloc.h).
        const M_ARENA_MAX: std::os::raw::c_int = -8;
        // SAFETY: mallopt only changes a malloc tunable; glibc serialises it with allocation.
        let ok = unsafe { mallopt(M_ARENA_MAX, ARENAS) };
        if ok == 0 {
            eprintln!("roombox: could not limit malloc arenas");
        }
    }
}
