//! `holdfast upload` and `holdfast unpack --upload N --repo-only` end to end, through the
//! real binary against a scratch site.

mod common;

#[test]
fn upload_then_rebuild_files_from_gold() {
    let (d, s) = common::scratch();
    let cfg = common::config(&d, &s, "", "");
    let src = d.path().join("p");
    std::fs::create_dir_all(src.join("src")).unwrap();
    std::fs::write(src.join("src/a.c"), "int a;\n").unwrap();
    std::fs::write(src.join("README"), "readme\n").unwrap();
    let tgz = common::tar_gz(d.path(), "p");
    let hf = |args: &[&str]| common::holdfast(&cfg, args);
    let sum = common::upload_json(&cfg, &tgz);
    let up = sum["upload_pk"].as_i64().unwrap();
    assert!(sum["rows"].as_u64().unwrap() >= 8, "{sum}");

    std::fs::remove_dir_all(s.site.repo.root.join("localhost/files")).unwrap();
    let out = hf(&["unpack", "--upload", &up.to_string(), "--repo-only"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("upload {up}:")) && text.contains("MB/s"),
        "{text}"
    );
    let readme = holdfast_site::pfile::PfileName::parse(
        &holdfast_unpack::hash::hash_bytes(b"readme\n").pfile_name(),
    )
    .unwrap();
    assert!(s.site.repo.has("files", &readme));

    // A missing upload is one clear line and exit code 1.
    let out = hf(&["unpack", "--upload", "4242"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upload 4242 does not exist"));
}

/// `--folder` and `--group` by name: the upload is listed in that folder (FOSSology's
/// Browse) and that group has admin permission on it; its job is in that group (Show Jobs).
#[test]
fn upload_into_a_chosen_folder_and_group() {
    let (d, s) = common::scratch();
    let cfg = common::config(&d, &s, "", "");
    let mut c = s.site.connect().unwrap();
    // As FOSSology's UI makes them: a folder under the root folder, a group.
    let folder: i32 = c
        .query_one(
            "INSERT INTO folder (folder_name, folder_desc, folder_perm) VALUES ('releases', 'r', 0)
             RETURNING folder_pk",
            &[],
        )
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO foldercontents (parent_fk, foldercontents_mode, child_id) VALUES (1, 1, $1)",
        &[&folder],
    )
    .unwrap();
    let group: i32 = c
        .query_one(
            "INSERT INTO groups (group_name) VALUES ('qa') RETURNING group_pk",
            &[],
        )
        .unwrap()
        .get(0);
    let f = d.path().join("note.txt");
    std::fs::write(&f, "hello\n").unwrap();
    let run = |args: &[&str]| common::holdfast(&cfg, args);
    let out = run(&[
        "upload",
        "--json",
        "--folder",
        "releases",
        "--group",
        "qa",
        f.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let up = sum["upload_pk"].as_i64().unwrap() as i32;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM foldercontents WHERE parent_fk = $1 AND foldercontents_mode = 2
             AND child_id = $2",
            &[&folder, &up],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "listed in the chosen folder");
    let perm: i32 = c
        .query_one(
            "SELECT perm FROM perm_upload WHERE upload_fk = $1 AND group_fk = $2",
            &[&up, &group],
        )
        .unwrap()
        .get(0);
    assert_eq!(perm, 10, "admin permission for the group");
    let jg: Option<i32> = c
        .query_one(
            "SELECT job_group_fk FROM job WHERE job_upload_fk = $1",
            &[&up],
        )
        .unwrap()
        .get(0);
    assert_eq!(jg, Some(group));
    // A folder that does not exist: a clear error naming it, no upload made.
    let out = run(&["upload", "--folder", "nope", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--folder nope") && err.contains("no such folder"),
        "{err}"
    );
    let ups: i64 = c
        .query_one("SELECT count(*) FROM upload", &[])
        .unwrap()
        .get(0);
    assert_eq!(ups, 1);
}

/// FOSSology's ununpack, run again by the scheduler, writes no rows for an upload that has
/// some: `unpack --cut-off` replaces the half tree a dead first unpack left, and refuses
/// while the scheduler runs (a started row is then a running agent).
#[test]
fn unpack_cut_off_replaces_the_half_tree_of_a_dead_unpack() {
    use holdfast_sandbox::standin::{Behaviour, StandIn};
    let (d, s) = common::scratch();
    let standin = StandIn::create(
        &d.path().join("sched"),
        &holdfast_testkit::tag(),
        Behaviour::default(),
    )
    .unwrap();
    let sched = toml::to_string(&standin.config(30)).unwrap();
    let cfg = common::config(&d, &s, "", &format!("[scheduler]\n{sched}"));
    let src = d.path().join("p");
    for i in 0..12 {
        std::fs::create_dir_all(src.join(format!("d{i}"))).unwrap();
        std::fs::write(src.join(format!("d{i}/f.c")), format!("int f{i};\n")).unwrap();
    }
    let tgz = common::tar_gz(d.path(), "p");
    let hf = |args: &[&str]| common::holdfast(&cfg, args);
    let sum = common::upload_json(&cfg, &tgz);
    let up = sum["upload_pk"].as_i64().unwrap() as i32;
    let mut c = s.site.connect().unwrap();
    let rows = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM uploadtree_a WHERE upload_fk = $1",
            &[&up],
        )
        .unwrap()
        .get(0)
    };
    let whole = rows(&mut c);
    // Its first unpack died mid-write: half the rows, no end marks, its queue row started.
    c.batch_execute(&format!(
        "DELETE FROM ununpack_ars WHERE upload_fk = {up};
         INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success)
           SELECT max(agent_pk), {up}, false FROM agent WHERE agent_name = 'ununpack';
         UPDATE upload SET upload_mode = upload_mode & ~32 WHERE upload_pk = {up};
         DELETE FROM uploadtree_a WHERE upload_fk = {up} AND lft > (
           SELECT (min(lft) + max(rgt)) / 2 FROM uploadtree_a WHERE upload_fk = {up});
         UPDATE jobqueue SET jq_starttime = now(), jq_endtime = NULL, jq_end_bits = 0
           WHERE jq_type = 'ununpack'
             AND jq_job_fk IN (SELECT job_pk FROM job WHERE job_upload_fk = {up});"
    ))
    .unwrap();
    let half = rows(&mut c);
    assert!(half > 0 && half < whole, "{half} of {whole}");

    standin.start().unwrap();
    let out = hf(&["unpack", "--cut-off"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("scheduler is running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        rows(&mut c),
        half,
        "nothing touched while the scheduler runs"
    );
    standin.kill_all();

    let out = hf(&["unpack", "--cut-off"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("upload {up}:")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(rows(&mut c), whole, "the whole tree again");
    let unpacked: bool = c
        .query_one(
            "SELECT bool_or(ars_success) IS TRUE FROM ununpack_ars WHERE upload_fk = $1",
            &[&up],
        )
        .unwrap()
        .get(0);
    assert!(
        unpacked,
        "FOSSology's rerun finds it unpacked and ends at once"
    );
}
