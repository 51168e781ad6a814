//! `holdfast upload` and `holdfast unpack --upload N --repo-only` end to end, through the
//! real binary against a scratch site.

use std::process::Command;

#[test]
fn upload_then_rebuild_files_from_gold() {
    let d = tempfile::tempdir().unwrap();
    let s = holdfast_sandbox::scratch::ScratchSite::create(&d.path().join("site"), "UTF8").unwrap();
    let cfg = d.path().join("holdfast.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nconf_dir = {:?}\n",
            s.conf_dir().display().to_string()
        ),
    )
    .unwrap();
    let src = d.path().join("p");
    std::fs::create_dir_all(src.join("src")).unwrap();
    std::fs::write(src.join("src/a.c"), "int a;\n").unwrap();
    std::fs::write(src.join("README"), "readme\n").unwrap();
    let tgz = d.path().join("p.tar.gz");
    let st = Command::new("tar")
        .args([
            "czf",
            tgz.to_str().unwrap(),
            "-C",
            d.path().to_str().unwrap(),
            "p",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let hf = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    let out = hf(&["upload", "--json", tgz.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
