//! The shared foundation against real processes: a scratch PostgreSQL site, the scheduler
//! stand-in, and quiescing it (slow stop, refused stop, restart on every path).

use holdfast_sandbox::scratch::ScratchSite;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use holdfast_site::scheduler::{quiesce, SchedulerError};
use holdfast_site::Site;
use std::time::Instant;

fn tag(n: u32) -> String {
    format!("{:x}{n}", std::process::id() % 0xfff)
}

#[test]
fn scratch_site_has_schema_and_reopens_from_its_conf() {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(dir.path(), "SQL_ASCII").unwrap();
    let site = Site::open(Some(s.conf_dir())).unwrap();
    let mut c = site.connect().unwrap();
    let enc: String = c
        .query_one(
            "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'fossology'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(enc, "SQL_ASCII");
    let n: i64 = c
        .query_one("SELECT count(*) FROM uploadtree_a", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(
        site.repo.host_dirs(),
        vec![s.root.join("repository/localhost")]
    );
    // A wrong password is refused by the real server.
    let bad = site.db.with_dbname("fossology");
    let mut cfg = bad.pg_config();
    cfg.password("wrong");
    let err = cfg
        .connect(postgres::NoTls)
        .err()
        .expect("wrong password refused");
    let err = err
        .as_db_error()
        .expect("a server error")
        .message()
        .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
}

/// The scratch database is FOSSology's as its installer leaves it: the role, every table of
/// core-schema.dat, the real pfile key, sequences starting at 2 and the install's rows.
#[test]
fn scratch_site_is_fossology_as_installed() {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(dir.path(), "UTF8").unwrap();
    let mut c = s.site.connect().unwrap();
    let one = |c: &mut postgres::Client, sql: &str| -> String {
        c.query_one(&format!("SELECT ({sql})::text"), &[])
            .unwrap()
            .get(0)
    };
    // fossy as install/db/fossologyinit.sql creates it: LOGIN CREATEDB, no superuser.
    assert_eq!(
        one(
            &mut c,
            "SELECT rolsuper::text || rolcreatedb::text || rolcanlogin::text || rolcreaterole::text \
             FROM pg_roles WHERE rolname = 'fossy'"
        ),
        "falsetruetruefalse"
    );
    assert_eq!(
        one(
            &mut c,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'fossology'"
        ),
        "fossy"
    );
    // 92 tables of core-schema.dat and instance_uuid.php's `instance`, all fossy's.
    assert_eq!(
        one(
            &mut c,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'fossy'"
        ),
        "93"
    );
    assert_eq!(
        one(
            &mut c,
            "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'ars_master'"
        ),
        "decider_ars,deciderjob_ars,kotoba_ars,monk_ars,nomos_ars,readmeoss_ars,reuser_ars,spasht_ars,ununpack_ars"
    );
    assert_eq!(
        one(
            &mut c,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'pfile'::regclass AND contype = 'u'"
        ),
        "UNIQUE (pfile_md5, pfile_sha1, pfile_sha256, pfile_size)"
    );
    assert_eq!(
        one(
            &mut c,
            "SELECT string_agg(user_pk || ':' || user_name, ',' ORDER BY user_pk) FROM users"
        ),
        "2:Default User,3:fossy"
    );
    assert_eq!(
        one(
            &mut c,
            "SELECT string_agg(g.group_pk || ':' || g.group_name || ':' || m.user_fk, ',' ORDER BY g.group_pk) \
             FROM groups g JOIN group_user_member m ON m.group_fk = g.group_pk"
        ),
        "2:Default User:2,3:fossy:3"
    );
    assert_eq!(
        one(&mut c, "SELECT folder_name FROM folder WHERE folder_pk = 1"),
        "Software Repository"
    );
    // Sequences were set with setval(seq, 1): the first new row of each table is 2.
    for seq in [
        "upload_upload_pk_seq",
        "pfile_pfile_pk_seq",
        "job_job_pk_seq",
        "jobqueue_jq_pk_seq",
        "uploadtree_uploadtree_pk_seq",
        "mimetype_mimetype_pk_seq",
        "agent_agent_pk_seq",
        "perm_upload_perm_upload_pk_seq",
    ] {
        assert_eq!(
            one(&mut c, &format!("SELECT nextval('{seq}')")),
            "2",
            "{seq}"
        );
    }
    assert_eq!(
        one(
            &mut c,
            "SELECT nextval('foldercontents_foldercontents_pk_seq')"
        ),
        "3"
    );
}

#[test]
fn quiesce_waits_for_a_slow_stop_and_restarts_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let si = StandIn::create(
        dir.path(),
        &tag(1),
        Behaviour {
            stop_delay_secs: 2,
            refuse_stop: false,
            agents: 2,
        },
    )
    .unwrap();
    si.start().unwrap();
    // Count by name: a shell's short-lived forks carry their parent's name for a moment.
    let procs = si.processes();
    assert!(
        procs.iter().any(|p| p.name == si.scheduler_name),
        "{procs:?}"
    );
    let agents = procs.iter().filter(|p| p.name == si.agent_name).count();
    assert!(agents >= 2, "two agents expected: {procs:?}");
    let began = Instant::now();
    let q = quiesce(&si.config(30), None).unwrap();
    assert!(
        began.elapsed().as_secs_f64() >= 1.9,
        "returned before the agents were gone"
    );
    assert!(!si.is_running());
    drop(q);
    assert!(
        si.is_running(),
        "dropping the guard starts the scheduler again"
    );
    assert_eq!(si.starts(), 2);
}

#[test]
fn quiesce_gives_up_on_a_scheduler_that_refuses_and_starts_no_second_one() {
    let dir = tempfile::tempdir().unwrap();
    let si = StandIn::create(
        dir.path(),
        &tag(2),
        Behaviour {
            stop_delay_secs: 0,
            refuse_stop: true,
            agents: 1,
        },
    )
    .unwrap();
    si.start().unwrap();
    let err = quiesce(&si.config(2), None).err().expect("must time out");
    let msg = err.to_string();
    assert!(matches!(err, SchedulerError::Timeout { .. }), "{msg}");
    assert!(
        msg.contains(&si.scheduler_name),
        "names what still runs: {msg}"
    );
    // It never stopped: a second one started beside it would die on its port (the real
    // fo_scheduler), so none is, and it still runs.
    assert_eq!(
        si.starts(),
        1,
        "a scheduler was started beside the running one"
    );
    assert!(si.is_running());
}

#[test]
fn running_queue_rows_hold_the_backup_until_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let mut c = s.site.connect().unwrap();
    c.batch_execute(
        "INSERT INTO job (job_name, job_upload_fk) VALUES ('scan', 2);
         INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime)
           SELECT max(job_pk), 'nomos', '2', now() FROM job;
         INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args) SELECT max(job_pk), 'ojo', '2' FROM job;",
    )
    .unwrap();
    let si = StandIn::create(&dir.path().join("sched"), &tag(3), Behaviour::default()).unwrap();
    si.start().unwrap();
    // No process remains, but the row says running: it is waited for (grace 1 s), then
    // reported as cut off rather than blocking every backup forever.
    let q = quiesce(&si.config(20), Some(&mut c)).unwrap();
    assert_eq!(q.report.stale_running.len(), 1);
    assert_eq!(q.report.stale_running[0].jq_type, "nomos");
    let unfinished = holdfast_site::db::unfinished_jobs(&mut c).unwrap();
    assert_eq!(unfinished.len(), 2);
    assert!(unfinished.iter().any(|r| r.jq_type == "ojo" && !r.started));
    q.restart().unwrap();
}
