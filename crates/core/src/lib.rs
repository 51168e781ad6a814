//! The small things every holdfast crate needs and must do the same way.
//!
//! * [`interrupt`]: Ctrl-C, SIGTERM and SIGHUP become one process-wide flag (via
//!   `signal-hook`) that long work polls, and one [`Interrupted`] error to return when it is
//!   set, so every way out runs its clean-up (restarting FOSSology's scheduler) and the exit
//!   code is 130.
//! * [`fs`]: [`fs::write_atomic`] (temporary file, fsync, rename, fsync of the folder; every
//!   error returned), [`fs::sync_dir`] and [`fs::syncfs`], private folders and files.
//! * [`lock`]: `flock` locks in the root-owned `/run/holdfast/`, refused when others could
//!   write that folder (a lock anyone can take is a way to stop every backup).
//! * [`bytes`]: one unit style for sizes (`1.5 MiB`).
//! * [`progress`]: a bar with rate and ETA on a terminal, a log line every few seconds off it.
//! * [`child`]: child processes (rsync, psql, pg_dumpall, ssh) that die with holdfast.
//! * [`gzip`]: gzip members written with libdeflate (dumps, file lists).
//! * [`threads`]: one shared pool for work that waits on the disk.
//! * [`shell`]: one way to quote a word for a shell (ssh commands, cron lines).
//! * [`tree`]: descriptor-relative directory walks that never follow a symlink, and a
//!   parallel [`tree::remove_tree`].

pub mod bytes;
pub mod child;
pub mod fs;
pub mod gzip;
pub mod interrupt;
pub mod lock;
pub mod progress;
pub mod shell;
pub mod threads;
pub mod tree;

pub use bytes::human_bytes;
pub use interrupt::Interrupted;
pub use lock::{Lock, LockError};
