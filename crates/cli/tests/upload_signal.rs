//! SIGTERM and SIGINT stop `holdfast upload` in the middle of a large unpack within a
//! second: exit code 130, no temporary files left, and the upload's rows marked the way
//! FOSSology's scheduler marks a failed ununpack agent.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn stop_signals_end_an_upload_within_a_second() {
    let (d, s) = common::scratch();
    // A generous ratio so the bomb runs long enough to be interrupted.
    let cfg = common::config(&d, &s, "", "[unpack]\nmax_ratio = 1000000\n");
    // 40 members of 50 MB of zeros each: 2 GB from a tar of 2 MB.
    let st = Command::new("sh")
        .arg("-c")
        .arg(
            "mkdir b && head -c 50000000 /dev/zero | gzip -1 > b/z0.gz \
             && for i in $(seq 1 39); do cp b/z0.gz b/z$i.gz; done && tar cf bomb.tar b",
        )
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let temp = s.site.repo.root.join(
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
    );
    let temp = temp.join("ununpack");
    let mut c = s.site.connect().unwrap();
    // Two uploads (SIGTERM, SIGINT), then an unpack of the last one again from its gold.
    let mut last = 0;
    for (sig, cmd) in [("TERM", "upload"), ("INT", "upload"), ("TERM", "unpack")] {
        let mut hf = common::command(&cfg);
        if cmd == "upload" {
            hf.args(["upload", "--json"]).arg(d.path().join("bomb.tar"));
        } else {
            hf.args(["unpack", "--json", "--upload", &last.to_string()]);
        }
        let mut child = hf
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the unpack has its temporary folder, then a little into the work.
        let end = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_dir(&temp).is_ok_and(|mut d| d.next().is_some()) {
            assert!(Instant::now() < end, "the unpack never started");
            assert!(child.try_wait().unwrap().is_none(), "upload ended early");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(700));
        assert!(child.try_wait().unwrap().is_none(), "upload ended early");
        let sent = Instant::now();
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if sent.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("SIG{sig}: holdfast still running 10 s after the signal");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = sent.elapsed();
        eprintln!("{cmd} stopped by SIG{sig} in {took:?}");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(130), "SIG{sig}: {err}");
        assert!(took < Duration::from_secs(1), "SIG{sig}: took {took:?}");
        assert!(err.contains("interrupted"), "{err}");
        assert_eq!(
            std::fs::read_dir(&temp).unwrap().count(),
            0,
            "SIG{sig}: temporary files left in {}",
            temp.display()
        );
        // The newest upload: its ununpack row failed, adj2nest failed as a dependency,
        // ununpack_ars has only the start record, and it has no rows (an interrupted
        // unpack of it again changes none of that).
        let up: i32 = c
            .query_one("SELECT max(upload_pk) FROM upload", &[])
            .unwrap()
            .get(0);
        if cmd == "unpack" {
            assert_eq!(up, last);
        }
        last = up;
        let jobs: Vec<(String, i16, String)> = c
            .query(
                "SELECT q.jq_type, q.jq_end_bits, q.jq_endtext FROM jobqueue q
                 JOIN job j ON j.job_pk = q.jq_job_fk WHERE j.job_upload_fk = $1 ORDER BY q.jq_pk",
                &[&up],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!((jobs[0].0.as_str(), jobs[0].1), ("ununpack", 2), "{jobs:?}");
        assert!(jobs[0].2.starts_with("Failed"), "{jobs:?}");
        assert_eq!(
            (jobs[1].0.as_str(), jobs[1].1, jobs[1].2.as_str()),
            ("adj2nest", 2, "dependency failed")
        );
        let ars: Vec<(bool, Option<std::time::SystemTime>)> = c
            .query(
                "SELECT ars_success, ars_endtime FROM ununpack_ars WHERE upload_fk = $1",
                &[&up],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(ars, [(false, None)]);
        let rows: i64 = c
            .query_one(
                "SELECT count(*) FROM uploadtree_a WHERE upload_fk = $1",
                &[&up],
            )
            .unwrap()
            .get(0);
        assert_eq!(rows, 0);
    }
}
