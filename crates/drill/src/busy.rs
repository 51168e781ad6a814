//! The busy-backup drill: FOSSology's agents write and delete repository files and rows all
//! through three nightly backups (stop for everything, pre-copy, online); the operator guide
//! `disaster-recovery/busy-backup.md` then proves each snapshot and restores each into a
//! scratch folder, where holdfast's verification must find every file the database names.

use crate::scenarios::{latest, Drill};
use crate::site::SiteSpec;
use anyhow::{bail, Result};
use holdfast_site::foconf::HostRange;
use std::time::{Duration, Instant};

fn busy_uploads(c: &mut postgres::Client) -> Result<i64> {
    Ok(holdfast_site::db::uploads::count_from_origin(c, "busy")?)
}

pub(crate) fn busy_backup(d: &mut Drill) -> Result<()> {
    let spec: SiteSpec = d.spec("full", vec![HostRange::new("localhost", "*", "00", "ff")]);
    let (site, _ups) = d.build("server", spec, 3)?;
    let rehearsal = d.root.join("rehearsal");
    d.guard.admit_path("rehearsal folder", &rehearsal)?;
    d.step("make FOSSology busy", false, |_| {
        let work = holdfast_sandbox::busy::work_script(site.site(), &site.standin.dir)?;
        site.standin.set_work(&work)?;
        let mut c = site.connect()?;
        let until = Instant::now() + Duration::from_secs(120);
        // Busy enough that the delete agent's work runs too (it starts past four uploads).
        while busy_uploads(&mut c)? < 5 {
            if Instant::now() > until {
                bail!("the busy agents made no uploads in two minutes");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok((
            (),
            "agents add and delete uploads (files, then rows; files, then rows)".into(),
        ))
    })?;
    let kinds: [(&str, &[&str]); 3] = [
        ("stop for everything", &["backup", "--no-precopy"]),
        ("pre-copy", &["backup"]),
        ("online", &["backup", "--online"]),
    ];
    for (kind, args) in kinds {
        let requests = site.standin.requests().len();
        let m = d.step(&format!("nightly backup while busy: {kind}"), false, |_| {
            site.holdfast.ok(args)?;
            let m = latest(&site)?.manifest;
            let detail = format!(
                "{} files, scheduler down {:.1} s of {:.1} s{}",
                m.repository.files,
                m.timings.downtime_secs,
                m.timings.total_secs,
                m.online
                    .as_ref()
                    .map(|o| format!(
                        ", {} job(s) running at the snapshot point, {} file(s) from an earlier snapshot, {} copied again, {} left out",
                        o.running.len(),
                        o.from_earlier.len(),
                        o.recopied.len(),
                        o.left_out.len()
                    ))
                    .unwrap_or_default()
            );
            Ok((m, detail))
        })?;
        if kind == "online" {
            d.report.check(
                "the online backup never stopped the scheduler",
                site.standin.requests().len() == requests && m.timings.downtime_secs == 0.0,
                format!(
                    "stop requests {:?}, downtime {} s",
                    site.standin.requests(),
                    m.timings.downtime_secs
                ),
            );
        }
        d.report.check(
            &format!("the scheduler runs after the {kind} backup"),
            site.standin.is_running(),
            "no scheduler process",
        );
    }
    // Rolling layout: the three snapshots are `current` and two day copies.
    let names: Vec<String> =
        holdfast_store::layout::snapshots(&crate::scenarios::target_of(&site)?)?
            .into_iter()
            .map(|s| s.name)
            .collect();
    d.report.check(
        "three snapshots taken",
        names.len() == 3,
        format!("{names:?}"),
    );
    d.follow_guide(
        &site,
        &[
            ("SNAPSHOTS", names.join(" ")),
            ("REHEARSAL", rehearsal.display().to_string()),
        ],
    )?;
    for n in &names {
        d.report.check(
            &format!("snapshot {n} restored into the rehearsal folder"),
            rehearsal.join(n).join("repository").is_dir(),
            "no restored repository",
        );
    }
    site.standin.clear_work();
    Ok(())
}
