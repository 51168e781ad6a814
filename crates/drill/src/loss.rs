//! Data lost by a recovery, measured two ways: how old the restored state is (the work done
//! between the snapshot and the moment of loss is gone), and file by file: every file the
//! restored database names that the repository lacks (via `holdfast_site::db::verify`), and
//! every repository file the restored database does not know (stored after the backup was
//! taken: its upload's rows were lost with the database).

use chrono::{DateTime, Utc};
use holdfast_site::db::{self, Reference};
use holdfast_site::pfile::PfileName;
use holdfast_site::Site;
use std::collections::HashSet;
use std::path::Path;

/// Repository `gold` and `files` entries (as `kind/name`) no database reference names.
pub fn unknown_files(
    site: &Site,
    c: &mut postgres::Client,
) -> Result<Vec<String>, postgres::Error> {
    let known: HashSet<(String, String)> = db::references(c, None)?
        .into_iter()
        .map(|r| (r.kind, r.name))
        .collect();
    let mut out = Vec::new();
    for host in site.repo.host_dirs() {
        for kind in ["gold", "files"] {
            let mut names = Vec::new();
            collect(&host.join(kind), site.repo.depth, &mut names);
            for n in names {
                // Only a file that this host is the home of counts (FOSSology's first match).
                let here = site
                    .repo
                    .path(kind, &n)
                    .is_some_and(|p| p.starts_with(&host));
                if here
                    && PfileName::parse(&n).is_some()
                    && !known.contains(&(kind.to_string(), n.clone()))
                {
                    out.push(format!("{kind}/{n}"));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if depth > 0 && ft.is_dir() {
            collect(&e.path(), depth - 1, out);
        } else if depth == 0 && ft.is_file() {
            out.push(e.file_name().to_string_lossy().to_string());
        }
    }
}

/// Every file the database names that the repository lacks (or holds truncated), less the
/// meta files that cannot be made again byte for byte (see [`verify`]).
pub fn missing_files(site: &Site, c: &mut postgres::Client) -> anyhow::Result<Vec<Reference>> {
    Ok(verify(site, c)?.0.missing)
}

/// The site's verification with the meta files set apart that no unpack can make again
/// byte for byte after a restore to other paths (not data lost, as `holdfast restore`,
/// `verify` and `check-repo` say), and how many were set apart.
pub fn verify(site: &Site, c: &mut postgres::Client) -> anyhow::Result<(db::VerifyReport, usize)> {
    let mut v = db::verify(c, &site.repo, None)?;
    let apart = holdfast_recover::explain::set_apart_not_reproducible(c, &mut v)?;
    Ok((v, apart.len()))
}

/// The newest complete snapshot on `target`, and how old it was at `loss`.
pub fn restored_age(
    target: &dyn holdfast_store::Store,
    name: Option<&str>,
    loss: DateTime<Utc>,
) -> Option<(String, f64)> {
    let snap = target.find(name).ok()?;
    let age = (loss - snap.manifest.started).num_milliseconds() as f64 / 1000.0;
    Some((snap.name, age.max(0.0)))
}
