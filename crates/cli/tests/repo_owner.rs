//! Run as root, `holdfast upload` and `holdfast unpack --repo-only` leave every folder and
//! file they create in the repository to FOSSology's user and group (`[DIRECTORIES]
//! PROJECTUSER`/`PROJECTGROUP`) with FOSSology's modes, so FOSSology's agents, running as
//! that user, can write next to them.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const USER: &str = "fossy";

/// The user and group FOSSology's installer creates (`groupadd --system`, `useradd --system`).
fn ensure_fossy() -> (u32, u32) {
    holdfast_testkit::require("useradd");
    if nix::unistd::Group::from_name(USER).unwrap().is_none() {
        let o = Command::new("groupadd")
            .args(["--system", USER])
            .output()
            .unwrap();
        assert!(o.status.success() || nix::unistd::Group::from_name(USER).unwrap().is_some());
    }
    if nix::unistd::User::from_name(USER).unwrap().is_none() {
        let o = Command::new("useradd")
            .args([
                "--system",
                "--gid",
                USER,
                "--no-create-home",
                "--shell",
                "/bin/sh",
                USER,
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success() || nix::unistd::User::from_name(USER).unwrap().is_some(),
            "useradd: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let u = nix::unistd::User::from_name(USER).unwrap().unwrap();
    let g = nix::unistd::Group::from_name(USER).unwrap().unwrap();
    (u.uid.as_raw(), g.gid.as_raw())
}

/// Every folder and file under `root`, with owner, group and mode bits.
fn entries(root: &Path) -> Vec<(String, bool, u32, u32, u32)> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.path().display().to_string(),
                m.is_dir(),
                m.uid(),
                m.gid(),
                m.mode() & 0o7777,
            )
        })
        .collect()
}

#[test]
fn repository_files_belong_to_fossology_whoever_runs_holdfast() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test gives files away and must run as root (CI does)"
    );
    let (uid, gid) = ensure_fossy();
    let (d, mut s) = common::scratch();
    // The FOSSology user must reach the repository, as on a real site.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&s.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.site.fo.project_user = USER.into();
    s.site.fo.project_group = USER.into();
    s.site.write_conf().unwrap();
    // The repository as FOSSology's installer leaves it: fossy:fossy, 2770, empty.
    let root = s.site.repo.root.clone();
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::create_dir(&root).unwrap();
    nix::unistd::chown(&root, Some(uid.into()), Some(gid.into())).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o2770)).unwrap();

    let cfg = common::config(
        &d,
        &s,
        "",
        &format!(
            "[backup]\ntarget = {:?}\nlock_file = {:?}\n",
            d.path().join("target").display().to_string(),
            d.path().join("lock").display().to_string()
        ),
    );
    let src = d.path().join("p");
    std::fs::create_dir_all(src.join("src")).unwrap();
    std::fs::write(src.join("src/a.c"), "int a;\n").unwrap();
    std::fs::write(src.join("README"), "readme\n").unwrap();
    let tgz = common::tar_gz(d.path(), "p");
    let hf = |args: &[&str]| {
        let o = common::holdfast(&cfg, args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o
    };
    let up = common::upload_json(&cfg, &tgz)["upload_pk"]
        .as_i64()
        .unwrap();

    let check = |what: &str| {
        let all = entries(&root);
        assert!(all.iter().filter(|e| !e.1).count() >= 4, "{what}: {all:?}");
        for (path, is_dir, u, g, mode) in &all {
            assert_eq!((*u, *g), (uid, gid), "{what}: {path} owner");
            // _RepMkDirs: mkdir 0770 under a 2770 root inherits set-group-id; files as
            // fo_RepImport leaves them.
            let want = if *is_dir { 0o2770 } else { 0o2664 };
            assert_eq!(*mode, want, "{what}: {path} mode {mode:o}");
        }
    };
    check("upload");

    // Rebuild `files` from gold: the rebuilt folders and files are FOSSology's too.
    std::fs::remove_dir_all(root.join("localhost/files")).unwrap();
    hf(&["unpack", "--upload", &up.to_string(), "--repo-only"]);
    check("unpack --repo-only");

    // A restore from a backup server that could not keep owners (not root there): the
    // files come back as FOSSology's all the same.
    hf(&["backup"]);
    let snap = d.path().join("target/current/repository");
    for e in walkdir::WalkDir::new(&snap).into_iter().flatten() {
        std::os::unix::fs::lchown(e.path(), Some(65534), Some(65534)).unwrap();
    }
    std::fs::remove_dir_all(root.join("localhost")).unwrap();
    hf(&["restore", "--yes"]);
    check("restore");

    // FOSSology's agents, running as fossy, can write next to what holdfast made.
    if let Ok(runuser) = which("runuser") {
        let probe = root.join("localhost/files/probe");
        let st = Command::new(runuser)
            .args(["-u", USER, "--", "touch"])
            .arg(&probe)
            .status()
            .unwrap();
        assert!(st.success(), "fossy cannot write in localhost/files");
    }
}

fn which(tool: &str) -> Result<std::path::PathBuf, ()> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
        .ok_or(())
}
