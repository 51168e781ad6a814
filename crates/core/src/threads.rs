//! The thread pool for work that waits on the disk rather than the CPU.

use std::sync::OnceLock;

/// A scoped thread's result; its panic goes on in the caller.
pub fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The pool for disk-bound work (tree walks, cold look-ups, proofs): 4 threads per core (8 to
/// 32), or `HOLDFAST_IO_THREADS`. On a cold cache one thread per core leaves the disk idle
/// between requests; with several, many folder, inode and file reads are in flight at once.
/// Built once and shared: callers in a loop do not start threads again.
pub fn io_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let n = std::env::var("HOLDFAST_IO_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or((4 * cores).clamp(8, 32));
        named_pool(n, "holdfast-io")
    })
}

/// A pool of `n` threads named `<name>-<i>`, or of one when the system refuses more.
pub fn named_pool(n: usize, name: &'static str) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .or_else(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
        .expect("a thread pool of one thread")
}
