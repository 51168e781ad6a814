//! An upload whose unpack left members out reads as incomplete in the checker (and so in
//! `holdfast check-repo` and the web page), even though every file its rows name is there.

use std::process::Command;

#[test]
fn partial_unpack_is_not_whole() {
    let d = tempfile::tempdir().unwrap();
    let s = holdfast_sandbox::scratch::ScratchSite::create(&d.path().join("site"), "UTF8").unwrap();
    // A tar with a good file and an `ar` archive whose member names a missing name table.
    let st = Command::new("sh")
        .arg("-c")
        .arg(
            r#"printf '!<arch>\n/9              0           0     0     644     4         `\nabc\n' > x.a \
               && echo fine > ok.txt && echo also > fine.txt && tar cf part.tar ok.txt x.a && tar cf whole.tar fine.txt"#,
        )
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = holdfast_unpack::UnpackConfig::default();
    let opts = holdfast_unpack::UnpackOptions::default();
    let files = [d.path().join("part.tar"), d.path().join("whole.tar")];
    let res = holdfast_unpack::upload_files(&s.site, &files, &cfg, &opts).unwrap();
    let (part, whole) = (res[0].0, res[1].0);
    assert_eq!(res[0].1.errors.len(), 1, "{:?}", res[0].1.errors);
    assert!(res[1].1.errors.is_empty());
    let mut c = s.site.connect().unwrap();
    let checks = holdfast_recover::check_repo(&mut c, &s.site.repo, None).unwrap();
    let of = |u: i32| checks.iter().find(|k| k.upload_pk == u).unwrap();
    assert_eq!(of(part).missing_files, 0);
    assert!(!of(part).is_whole());
    let why = of(part).unpack_incomplete.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("Completed with 1 member error; first: ") && why.contains("x.a"),
        "{why}"
    );
    assert!(of(whole).is_whole(), "{:?}", of(whole).unpack_incomplete);

    // A failed (or interrupted) unpack, marked as FOSSology marks a failed ununpack (see
    // holdfast_unpack::db::fail_jobs): end bit 0x2 and no successful ununpack_ars row.
    c.batch_execute(&format!(
        "UPDATE jobqueue SET jq_end_bits = 2, jq_endtext = 'Failed: interrupted'
         WHERE jq_type = 'ununpack' AND jq_job_fk IN (SELECT job_pk FROM job WHERE job_upload_fk = {whole});
         UPDATE ununpack_ars SET ars_success = false, ars_status = NULL WHERE upload_fk = {whole};"
    ))
    .unwrap();
    let checks = holdfast_recover::check_repo(&mut c, &s.site.repo, None).unwrap();
    let failed = checks.iter().find(|k| k.upload_pk == whole).unwrap();
    assert!(!failed.is_whole());
    assert_eq!(
        failed.unpack_incomplete.as_deref(),
        Some("its ununpack job failed (Failed: interrupted)")
    );
}
