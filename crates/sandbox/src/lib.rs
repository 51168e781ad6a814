//! Scratch FOSSology sites for the demo, the drills and the tests: not part of a site
//! holdfast runs on.
//!
//! [`cluster::Cluster`] starts a scratch PostgreSQL cluster (as the `postgres` OS user when
//! run as root) and creates FOSSology's role and database in it as FOSSology's installer does
//! ([`holdfast_site::SCHEMA_SQL`]); [`scratch::ScratchSite`] adds a configuration folder and a
//! repository around it; [`standin::StandIn`] is a process tree that behaves like FOSSology's
//! scheduler and its agents, for machines where FOSSology itself cannot run (the only part of
//! FOSSology the tests stand in for). The FOSSology model itself is `holdfast-site`.

pub mod busy;
pub mod cluster;
pub mod sample;
pub mod scratch;
pub mod standin;
