//! The FOSSology site that holdfast backs up, restores and repairs.
//!
//! A [`Site`] is read from FOSSology's own configuration folder: `fossology.conf` gives the
//! repository root, hash depth and the `[REPOSITORY]` host ranges ([`foconf`]), `Db.conf` the
//! libpq connection ([`dbconf`]). [`repo::Repository`] maps a pfile name to its path on disk,
//! [`db`] holds every SQL statement holdfast runs against FOSSology's tables (by topic:
//! uploads, uploadtree, pfiles, jobs, folders and permissions; [`users`] for users), [`mode`]
//! and [`naming`] FOSSology's mode bits and naming rules, [`scheduler`] stops FOSSology's
//! scheduler and proves every agent is gone. Scratch sites, clusters and the scheduler stand-in that the
//! demo, the drills and the tests run on are in `holdfast-sandbox`, not here.
//!
//! FOSSology's database is [`SCHEMA_SQL`]: FOSSology's own `core-schema.dat` at commit
//! [`FOSSOLOGY_COMMIT`], applied as its installer applies it, with the install's rows. Scratch
//! sites create the role `fossy` as the installer does (`LOGIN CREATEDB`, not a superuser).
//!
//! holdfast's own tables in FOSSology's database, all named `holdfast_*`, created on first
//! use and ignored by FOSSology (the guide `docs/full-backup.md` lists them too):
//! - `holdfast_slimmed` ([`db::SLIMMED_TABLE_SQL`], all its statements in [`db`]):
//!   containers repository slimming removed from `files` on purpose, so `verify` tells them
//!   from damage;
//! - `holdfast_recovery` (`holdfast_recover::queue`, whose statements stay with it): the
//!   queue of uploads `holdfast recover` and `holdfast serve` rebuild.
//!
//! holdfast adds no other table and drops none.

pub mod changes;
pub mod db;
pub mod dbconf;
pub mod foconf;
pub mod interrupt;
pub mod mode;
pub mod naming;
pub mod pfile;
pub mod repo;
pub mod restoring;
pub mod scheduler;
pub mod users;

mod site;
pub use site::{Site, SiteError};

/// FOSSology's database as its installer leaves it: `core-schema.dat` applied as
/// `fossinit.php` applies it, plus the install's rows (users `Default User` and `fossy`,
/// their groups, folder 1). Run as the database's owner. The header of
/// `sql/fossology.sql` names the FOSSology commit it matches.
pub const SCHEMA_SQL: &str = include_str!("../sql/fossology.sql");

/// The FOSSology commit whose schema [`SCHEMA_SQL`] is.
pub const FOSSOLOGY_COMMIT: &str = "a4862027524f9bc85613ec07e4c29d5612af5ad4";
