//! The JSON API and the pages over a real site: missing files are found, a recovery through
//! the API brings them back, two requests make one job, and the pages say what the plan asks.

mod common;

use common::*;

#[test]
fn api_finds_missing_files_and_recovery_brings_them_back() {
    let f = fixture();
    let srv = start(&f);
    let u = f.upload;
    let (readme_pk, readme) = item(&f, "README");
    let (_, blob) = item(&f, "blob.bin");
    let (_, notes) = item(&f, "notes.txt");
    let original: Vec<Vec<u8>> = [&readme, &blob, &notes]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for p in [&readme, &blob, &notes] {
        std::fs::remove_file(p).unwrap();
    }

    let r = http(srv.addr, "GET", &format!("/api/uploads/{u}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["missing_files"], 3);
    assert_eq!(v["gold_present"], true);
    let names: Vec<String> = v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    for p in [&readme, &blob, &notes] {
        let n = p.file_name().unwrap().to_str().unwrap().to_string();
        assert!(names.contains(&n), "{n} in {names:?}");
    }

    // The item page of a missing file: not in the repository, gold present, a recover button.
    let page = http(
        srv.addr,
        "GET",
        &format!("/upload/{u}/item/{readme_pk}"),
        None,
    );
    assert_eq!(page.status, 200);
    assert!(page.body.contains("not in the repository"), "{}", page.body);
    assert!(page.body.contains("gold file"), "{}", page.body);
    assert!(page.body.contains(r#"id="recover""#));

    // Two requests at once: one job.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| http(srv.addr, "POST", &format!("/api/uploads/{u}/recover"), None));
        let b = s.spawn(|| http(srv.addr, "POST", &format!("/api/uploads/{u}/recover"), None));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((a.status, b.status), (202, 202));
    let (ja, jb) = (a.json(), b.json());
    let id = ja["job"]["id"].as_i64().unwrap();
    let created = [
        ja["created"].as_bool().unwrap(),
        jb["created"].as_bool().unwrap(),
    ];
    if jb["job"]["id"].as_i64().unwrap() == id {
        assert_eq!(created.iter().filter(|c| **c).count(), 1, "{ja} {jb}");
    }
    let done = wait_for("the recovery job", 60, || {
        let j = http(srv.addr, "GET", &format!("/api/jobs/{id}"), None).json();
        (j["state"] == "done" || j["state"] == "failed").then_some(j)
    });
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["still_missing"], 0);
    assert_eq!(done["files_total"], 3);
    assert_eq!(done["files_done"], 3);
    // However the two requests interleaved, the files were written once.
    let jobs = http(srv.addr, "GET", "/api/jobs", None).json();
    let written: i64 = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["files_written"].as_i64().unwrap())
        .sum();
    assert_eq!(written, 3, "{jobs}");

    for (p, want) in [&readme, &blob, &notes].iter().zip(&original) {
        assert_eq!(&std::fs::read(p).unwrap(), want, "{}", p.display());
    }
    let v = http(srv.addr, "GET", &format!("/api/uploads/{u}"), None).json();
    assert_eq!(v["missing_files"], 0);

    // The file page now shows the text, escaped.
    let page = http(
        srv.addr,
        "GET",
        &format!("/upload/{u}/item/{readme_pk}"),
        None,
    );
    assert!(
        page.body.contains("hello holdfast &lt;b&gt;not bold&lt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("not in the repository"));

    // The jobs page lists the job as done.
    let jobs_page = http(srv.addr, "GET", "/jobs", None);
    assert!(
        jobs_page.body.contains(r#"<tr class="job done">"#),
        "{}",
        jobs_page.body
    );
}

#[test]
fn pages_browse_the_tree_and_errors_are_clear() {
    let f = fixture();
    let srv = start(&f);
    let u = f.upload;
    let index = http(srv.addr, "GET", "/", None);
    assert_eq!(index.status, 200);
    assert!(index.body.contains("project.tar.gz"));
    // /upload/N goes to the root of its tree, which lists its children.
    let r = http(srv.addr, "GET", &format!("/upload/{u}"), None);
    assert_eq!(r.status, 303);
    let root = r.header("location").unwrap();
    let page = http(srv.addr, "GET", &root, None);
    assert!(page.body.contains(r#"id="children""#), "{}", page.body);
    // A binary file shows its metadata only.
    let (blob_pk, _) = item(&f, "blob.bin");
    let page = http(
        srv.addr,
        "GET",
        &format!("/upload/{u}/item/{blob_pk}"),
        None,
    );
    assert!(
        page.body.contains("Binary file") && page.body.contains("50000 bytes"),
        "{}",
        page.body
    );
    // Tree API.
    let v = http(
        srv.addr,
        "GET",
        &root
            .replace("/upload/", "/api/uploads/")
            .replace("/item/", "/items/"),
        None,
    )
    .json();
    assert!(!v["children"].as_array().unwrap().is_empty(), "{v}");
    // Unknown upload: 404 naming it.
    let r = http(srv.addr, "GET", "/api/uploads/4242", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "upload 4242 does not exist");
    let r = http(
        srv.addr,
        "POST",
        "/upload/4242/recover",
        Some(("application/x-www-form-urlencoded", "back=%2Fjobs")),
    );
    assert_eq!(r.status, 404);
    // The recover form never redirects off the site.
    let r = http(
        srv.addr,
        "POST",
        &format!("/upload/{u}/recover"),
        Some((
            "application/x-www-form-urlencoded",
            "back=https%3A%2F%2Fevil.example%2F",
        )),
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/jobs"));
    // Metrics: the queue by state.
    let m = http(srv.addr, "GET", "/metrics", None);
    assert!(
        m.body.contains("holdfast_recovery_jobs{state=\"queued\"}"),
        "{}",
        m.body
    );
}

#[test]
fn recovery_waits_while_a_backup_holds_the_site_lock() {
    let f = fixture();
    let lock_file = f.dir.path().join("run/backup.lock");
    let srv = start_extras(
        &f,
        |_| {},
        holdfast_web::SiteExtras {
            lock_file: Some(lock_file.clone()),
            ..Default::default()
        },
    );
    let u = f.upload;
    let (_, readme) = item(&f, "README");
    let original = std::fs::read(&readme).unwrap();
    std::fs::remove_file(&readme).unwrap();

    // A backup (or restore, prune) holds the lock: the job stays queued and the pages say why.
    let backup =
        holdfast_core::lock::acquire(&lock_file, holdfast_core::lock::LockMode::Exclusive).unwrap();
    let r = http(srv.addr, "POST", &format!("/api/uploads/{u}/recover"), None);
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["job"]["id"].as_i64().unwrap();
    let page = wait_for("the busy notice", 20, || {
        let p = http(srv.addr, "GET", "/jobs", None);
        p.body.contains(r#"id="busy""#).then_some(p)
    });
    assert!(page.body.contains("busy: backup running"), "{}", page.body);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let j = http(srv.addr, "GET", &format!("/api/jobs/{id}"), None).json();
    assert_eq!(j["state"], "queued", "no recovery beside a backup: {j}");
    assert!(!readme.exists());

    // The backup ends: the job runs and the notice goes.
    drop(backup);
    let done = wait_for("the recovery job", 60, || {
        let j = http(srv.addr, "GET", &format!("/api/jobs/{id}"), None).json();
        (j["state"] == "done" || j["state"] == "failed").then_some(j)
    });
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(std::fs::read(&readme).unwrap(), original);
    let page = http(srv.addr, "GET", "/jobs", None);
    assert!(!page.body.contains(r#"id="busy""#), "{}", page.body);
}
