//! The backup copies the repository where FOSSology's `libfossrepo.c` puts it, however the
//! `[REPOSITORY]` lines split it, and says so when files the database names are missing.

mod common;

use common::*;
use holdfast_backup::backup;
use holdfast_sandbox::standin::Behaviour;
use holdfast_site::foconf::HostRange;
use holdfast_site::repo::Repository;
use std::os::unix::fs::MetadataExt;

/// Moves every stored file of the scratch site to where `hosts` put it, and writes the conf.
fn relayout(f: &mut Fixture, hosts: Vec<HostRange>) {
    let old = f.scratch.site.repo.clone();
    let site = &mut f.scratch.site;
    site.fo.hosts = hosts;
    site.repo = Repository::from_conf(&site.fo);
    site.write_conf().unwrap();
    let mut c = site.connect().unwrap();
    let refs = holdfast_site::db::references(&mut c, None).unwrap();
    for r in &refs {
        let from = old.path(&r.kind, &r.name).unwrap();
        let to = site.repo.path(&r.kind, &r.name).unwrap();
        if from != to && from.exists() {
            site.repo.ensure_parent(&to).unwrap();
            std::fs::rename(&from, &to).unwrap();
        }
    }
    let gone = site.repo.root.join("localhost");
    if gone.exists() && !site.fo.host_names().contains(&"localhost".to_string()) {
        std::fs::remove_dir_all(gone).unwrap();
    }
}

#[test]
fn a_repository_split_over_several_lines_and_an_uncovered_type_is_copied_whole() {
    let mut f = fixture(4, Behaviour::default(), 30);
    // Hosts tried by name (adisk before zdisk), one-digit prefixes, and gold names 8-f held
    // by no line: those live in <root>/gold.
    relayout(
        &mut f,
        vec![
            HostRange::new("zdisk", "*", "0", "7"),
            HostRange::new("adisk", "files", "8", "f"),
            HostRange::new("zdisk", "logs", "00", "ff"),
        ],
    );
    let root = f.site().repo.root.clone();
    let (live, live_links) = tree(&root);
    assert!(live.keys().any(|p| p.starts_with("zdisk/")), "{live:?}");
    assert!(
        live.keys().any(|p| p.starts_with("adisk/files/")),
        "{live:?}"
    );
    assert!(live.keys().any(|p| p.starts_with("gold/")), "{live:?}");

    let out = backup(f.site(), "rules", &f.sched, &f.cfg).unwrap();
    assert!(out.missing.is_empty(), "{:?}", out.missing);
    assert_eq!(out.manifest.repository.files, live.len() as u64);
    let snap = f.target_dir().join(&out.snapshot).join("repository");
    let (copied, copied_links) = tree(&snap);
    assert_eq!(copied, live);
    assert_eq!(copied_links, live_links);

    let (_, restored) = f.restore_scratch(&f.cfg, None);
    assert!(restored.is_whole(), "{:?}", restored.verify.missing);
    assert_eq!(
        restored.verify.checked,
        out.manifest.repository.files as usize
    );
}

#[test]
fn a_backup_of_a_repository_that_lacks_files_names_them() {
    let f = fixture(2, Behaviour::default(), 30);
    let mut c = f.site().connect().unwrap();
    let refs = holdfast_site::db::references(&mut c, None).unwrap();
    let victim = refs.iter().find(|r| r.kind == "files").unwrap();
    let path = f.site().repo.path("files", &victim.name).unwrap();
    // Not a hard link of gold: then only `files` loses it.
    std::fs::remove_file(&path).unwrap();
    let out = backup(f.site(), "gap", &f.sched, &f.cfg).unwrap();
    let names: Vec<&str> = out.missing.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec![victim.name.as_str()]);
    // The stoney monitor hears of it too.
    let ended =
        std::fs::read_to_string(f.target_dir().join(".sepiola_backup/backupEnded.xml")).unwrap();
    assert!(ended.contains("<success>0</success>"), "{ended}");
}

#[test]
fn a_file_on_the_second_matching_host_is_found_copied_and_restored() {
    let mut f = fixture(2, Behaviour::default(), 30);
    relayout(
        &mut f,
        vec![
            HostRange::new("disk2", "*", "00", "ff"),
            HostRange::new("disk1", "*", "00", "ff"),
        ],
    );
    let site = f.site().clone();
    let mut c = site.connect().unwrap();
    let refs = holdfast_site::db::references(&mut c, None).unwrap();
    let r = refs.iter().find(|r| r.kind == "files").unwrap();
    // Where FOSSology put it first (disk1, by name), moved to the other disk.
    let first = site.repo.path("files", &r.name).unwrap();
    assert!(first.starts_with(site.repo.root.join("disk1")), "{first:?}");
    let second = site.repo.candidates("files", &r.name)[1].clone();
    site.repo.ensure_parent(&second).unwrap();
    std::fs::rename(&first, &second).unwrap();
    assert_eq!(site.repo.path("files", &r.name).unwrap(), second);

    let v = holdfast_site::db::verify(&mut c, &site.repo, None).unwrap();
    assert!(v.is_whole(), "{:?}", v.missing);
    let out = backup(&site, "second", &f.sched, &f.cfg).unwrap();
    assert!(out.missing.is_empty(), "{:?}", out.missing);
    let rel = second.strip_prefix(&site.repo.root).unwrap();
    assert!(f
        .target_dir()
        .join(&out.snapshot)
        .join("repository")
        .join(rel)
        .is_file());
    let (_, restored) = f.restore_scratch(&f.cfg, None);
    assert!(restored.is_whole(), "{:?}", restored.verify.missing);
}

/// A restore proves what the snapshot holds wherever it lies: the host-less `gold` and
/// `files` of prefixes no line covers, and the folders of a host the new server's
/// `[REPOSITORY]` does not name.
#[test]
fn a_restore_proves_files_outside_the_new_servers_host_folders() {
    let mut f = fixture(3, Behaviour::default(), 30);
    relayout(&mut f, vec![HostRange::new("olddisk", "*", "0", "7")]);
    let out = backup(f.site(), "old", &f.sched, &f.cfg).unwrap();
    assert!(out.missing.is_empty(), "{:?}", out.missing);
    // The new server names its one disk otherwise.
    relayout(&mut f, vec![HostRange::new("newdisk", "*", "00", "ff")]);

    let stored = f.target_dir().join(&out.snapshot).join("repository");
    let (files, _) = tree(&stored);
    let mut rotten = Vec::new();
    let mut inodes = Vec::new();
    for prefix in ["olddisk/", "gold/", "files/"] {
        // Not a hard link of one flipped already: a second flip would mend it.
        let ino = |p: &String| std::fs::metadata(stored.join(p)).unwrap().ino();
        let rel = files
            .keys()
            .find(|p| p.starts_with(prefix) && !inodes.contains(&ino(p)))
            .unwrap_or_else(|| panic!("no stored file under {prefix}: {files:?}"));
        inodes.push(ino(rel));
        let p = stored.join(rel);
        let mut d = std::fs::read(&p).unwrap();
        let i = d.len() / 2;
        d[i] ^= 0x01;
        std::fs::write(&p, d).unwrap();
        rotten.push(rel.clone());
    }
    let (_, r) = f.restore_scratch(&f.cfg, None);
    let damaged: Vec<&str> = r.damaged.iter().map(|d| d.path.as_str()).collect();
    for rel in &rotten {
        assert!(damaged.contains(&rel.as_str()), "{rel} not in {damaged:?}");
    }
}
