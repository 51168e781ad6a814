//! holdfast against FOSSology's own agents: the 20 inputs in `../shared/fossology-golden`
//! (CSV dumps of every table FOSSology's wget_agent, ununpack and adj2nest wrote, and its
//! repository file lists). `holdfast upload` must give the same rows and files; its
//! `--repo-only` reunpack of the rows FOSSology wrote must rebuild every file they name
//! that can be rebuilt, and name the rest with the reason.
//!
//! What is compared, and what is not:
//! - timestamps and agent revision strings are left out (they differ by nature);
//! - `uploadtree_pk` and `pfile_pk` are surrogate keys whose order follows ununpack's walk
//!   of its temporary folder (readdir order of the file system it ran on), so rows are
//!   matched by their place in the tree (`upload_fk`, `lft`), parents by their `lft`, and
//!   pfiles by their hashes; every other key (`upload_pk`, `job_pk`, `jq_pk`,
//!   `mimetype_pk`, `ars_pk`, `foldercontents_pk`, `perm_upload_pk`) is compared as is;
//! - an `artifact.meta` whose text names the container's own path (`unzip -Zhzv`,
//!   `zstd -lv`, `lzip -lv`) cannot be byte-identical: for a member it names FOSSology's
//!   random temporary folder (`ununpack/<microseconds>l/...`), so only its place in the tree
//!   is compared; for the top file it names the repository path, and the golden run's
//!   repository lies elsewhere, so its size is compared with the path's length taken out.

mod common;
use holdfast_unpack::{unpack_upload, upload_files, UnpackConfig, UnpackOptions};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Length of `<repository>/localhost/files/aa/bb/cc/` in the golden run: its top-level zip
/// and zstd meta files are 35 bytes longer than the same commands' output for a file in a
/// 9-character folder.
const GOLDEN_FILES_DIR_LEN: usize = 44;

/// The inputs in `upload_pk` order, with ununpack's extra arguments.
const INPUTS: &[(&str, &str)] = &[
    ("plain.txt", ""),
    ("hello_2.10.orig.tar.gz", ""),
    ("hello_2.10-3.debian.tar.xz", ""),
    ("hello_2.10-3.dsc", ""),
    ("hello_2.10-3_amd64.deb", ""),
    ("sample.zip", ""),
    ("lib.jar", ""),
    ("nested.tar.gz", ""),
    ("bzip2_1.0.8-5.debian.tar.bz2", ""),
    ("edge.tar", ""),
    ("edge.tar", "-I"),
    ("plain.txt.xz", ""),
    ("zs.txt.zst", ""),
    ("seven.7z", ""),
    ("arch.cpio", ""),
    ("libx.a", ""),
    ("small.iso", ""),
    ("spec.pdf", ""),
    ("hello-src.tar", ""),
    ("hello-src2.tar", ""),
];

/// Meta files whose text names their container's path.
const PATH_NAMING: &[&str] = &[
    "application/x-zip",
    "application/zip",
    "application/jar",
    "application/java-archive",
    "application/zstd",
    "application/x-lzip",
];

fn golden() -> PathBuf {
    holdfast_testkit::golden::dir()
}

fn read_csv(p: &Path) -> Vec<BTreeMap<String, String>> {
    holdfast_testkit::golden::read_csv(p)
}

/// One table as text rows, from our database, in the CSV's shape.
fn query(c: &mut postgres::Client, sql: &str) -> Vec<BTreeMap<String, String>> {
    let rows = c.query(sql, &[]).unwrap();
    rows.iter()
        .map(|r| {
            r.columns()
                .iter()
                .enumerate()
                .map(|(i, col)| {
                    let v: Option<String> = r.get(i);
                    (col.name().to_string(), v.unwrap_or_default())
                })
                .collect()
        })
        .collect()
}

fn ours(c: &mut postgres::Client, table: &str, cols: &[&str]) -> Vec<BTreeMap<String, String>> {
    // As psql --csv prints them (booleans as t/f).
    let list: Vec<String> = cols
        .iter()
        .map(|c| match *c {
            "ars_success" => format!("CASE WHEN {c} THEN 't' ELSE 'f' END AS {c}"),
            _ => format!("{c}::text AS {c}"),
        })
        .collect();
    query(c, &format!("SELECT {} FROM {table}", list.join(", ")))
}

/// Everything the comparison needs from one side (FOSSology's or ours).
struct Side {
    tables: HashMap<String, Vec<BTreeMap<String, String>>>,
    files: BTreeSet<String>,
    gold: BTreeSet<String>,
}

const COLS: &[(&str, &[&str])] = &[
    (
        "upload",
        &[
            "upload_pk",
            "upload_desc",
            "upload_filename",
            "user_fk",
            "upload_mode",
            "upload_ts",
            "pfile_fk",
            "upload_origin",
            "uploadtree_tablename",
            "expire_date",
            "expire_action",
            "public_perm",
        ],
    ),
    (
        "uploadtree_a",
        &[
            "uploadtree_pk",
            "parent",
            "realparent",
            "upload_fk",
            "pfile_fk",
            "ufile_mode",
            "lft",
            "rgt",
            "ufile_name",
        ],
    ),
    (
        "pfile",
        &[
            "pfile_pk",
            "pfile_md5",
            "pfile_sha1",
            "pfile_sha256",
            "pfile_size",
            "pfile_mimetypefk",
        ],
    ),
    ("mimetype", &["mimetype_pk", "mimetype_name"]),
    ("agent", &["agent_pk", "agent_name"]),
    (
        "ununpack_ars",
        &[
            "ars_pk",
            "agent_fk",
            "upload_fk",
            "ars_success",
            "ars_status",
            "ars_starttime",
            "ars_endtime",
        ],
    ),
    (
        "job",
        &[
            "job_pk",
            "job_queued",
            "job_priority",
            "job_email_notify",
            "job_name",
            "job_upload_fk",
            "job_folder_fk",
            "job_user_fk",
            "job_group_fk",
        ],
    ),
    (
        "jobqueue",
        &[
            "jq_pk",
            "jq_job_fk",
            "jq_type",
            "jq_args",
            "jq_starttime",
            "jq_endtime",
            "jq_endtext",
            "jq_end_bits",
            "jq_schedinfo",
            "jq_itemsprocessed",
            "jq_log",
            "jq_runonpfile",
            "jq_host",
            "jq_cmd_args",
        ],
    ),
    (
        "foldercontents",
        &[
            "foldercontents_pk",
            "parent_fk",
            "foldercontents_mode",
            "child_id",
        ],
    ),
    (
        "perm_upload",
        &["perm_upload_pk", "perm", "upload_fk", "group_fk"],
    ),
];

fn expected_side(g: &Path) -> Side {
    let mut tables = HashMap::new();
    for (t, _) in COLS {
        tables.insert(
            t.to_string(),
            read_csv(&g.join(format!("expected/{t}.csv"))),
        );
    }
    let list = |f: &str| -> BTreeSet<String> {
        std::fs::read_to_string(g.join("expected").join(f))
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    // Users and groups are the installer's seed rows, not the agents': the golden run's
    // uploads are fossy's (user 2, its group 2, as the golden README says), compared by name.
    let one = |k: &str, pk: &str, n: &str| {
        vec![BTreeMap::from([
            (k.to_string(), pk.to_string()),
            (n.to_string(), "fossy".to_string()),
        ])]
    };
    tables.insert("users".into(), one("user_pk", "2", "user_name"));
    tables.insert("groups".into(), one("group_pk", "2", "group_name"));
    Side {
        tables,
        files: list("repository-files.txt"),
        gold: list("repository-gold.txt"),
    }
}

fn repo_names(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
}

fn our_side(c: &mut postgres::Client, repo_host: &Path) -> Side {
    let mut tables = HashMap::new();
    for (t, cols) in COLS {
        tables.insert(t.to_string(), ours(c, t, cols));
    }
    tables.insert("users".into(), ours(c, "users", &["user_pk", "user_name"]));
    tables.insert(
        "groups".into(),
        ours(c, "groups", &["group_pk", "group_name"]),
    );
    Side {
        tables,
        files: repo_names(&repo_host.join("files")),
        gold: repo_names(&repo_host.join("gold")),
    }
}

/// A pfile by content: `sha1.md5.size` (lower case, as repository names).
fn pfile_names(s: &Side) -> HashMap<String, (String, BTreeMap<String, String>)> {
    let mimes: HashMap<String, String> = s.tables["mimetype"]
        .iter()
        .map(|r| (r["mimetype_pk"].clone(), r["mimetype_name"].clone()))
        .collect();
    s.tables["pfile"]
        .iter()
        .map(|r| {
            let name = format!(
                "{}.{}.{}",
                r["pfile_sha1"].trim().to_lowercase(),
                r["pfile_md5"].trim().to_lowercase(),
                r["pfile_size"]
            );
            let mut v = r.clone();
            v.remove("pfile_pk");
            let mt = mimes
                .get(&r["pfile_mimetypefk"])
                .cloned()
                .unwrap_or_default();
            v.insert("pfile_mimetypefk".into(), mt);
            (r["pfile_pk"].clone(), (name, v))
        })
        .collect()
}

/// The upload tree rows keyed by (upload, lft), with parents and pfiles made comparable.
/// Returns also the pfile names of meta files that name a path (not comparable by content).
#[allow(clippy::type_complexity)]
fn tree_rows(
    s: &Side,
    top_path_len: &dyn Fn(&str) -> Option<usize>,
) -> (
    BTreeMap<(i64, i64), BTreeMap<String, String>>,
    BTreeSet<String>,
) {
    let pf = pfile_names(s);
    let rows = &s.tables["uploadtree_a"];
    let by_pk: HashMap<&str, &BTreeMap<String, String>> = rows
        .iter()
        .map(|r| (r["uploadtree_pk"].as_str(), r))
        .collect();
    let mut out = BTreeMap::new();
    let mut path_naming = BTreeSet::new();
    for r in rows {
        let lft_of = |pk: &str| by_pk.get(pk).map(|p| p["lft"].clone()).unwrap_or_default();
        let mut v = BTreeMap::new();
        v.insert("rgt".to_string(), r["rgt"].clone());
        v.insert("parent@lft".to_string(), lft_of(&r["parent"]));
        v.insert("realparent@lft".to_string(), lft_of(&r["realparent"]));
        v.insert(
            "ufile_mode".to_string(),
            format!("{:#x}", r["ufile_mode"].parse::<i64>().unwrap()),
        );
        v.insert("ufile_name".to_string(), r["ufile_name"].clone());
        let file = pf
            .get(&r["pfile_fk"])
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let container = by_pk.get(r["parent"].as_str());
        let container_mime = container
            .and_then(|c| pf.get(&c["pfile_fk"]))
            .map(|(_, v)| v["pfile_mimetypefk"].clone())
            .unwrap_or_default();
        let file = if r["ufile_name"] == "artifact.meta"
            && PATH_NAMING.contains(&container_mime.as_str())
        {
            path_naming.insert(file.clone());
            let top = container.is_some_and(|c| c["parent"].is_empty());
            let size: usize = file.rsplit('.').next().unwrap().parse().unwrap();
            match (top, top_path_len(&r["upload_fk"])) {
                (true, Some(len)) => format!(
                    "<meta naming the top file's path; {} bytes besides it>",
                    size - len
                ),
                _ => "<meta naming the temporary unpack folder>".to_string(),
            }
        } else {
            file
        };
        v.insert("pfile".to_string(), file);
        let key = (r["upload_fk"].parse().unwrap(), r["lft"].parse().unwrap());
        out.insert(key, v);
    }
    (out, path_naming)
}

/// Plain tables compared row by row after dropping the named columns and mapping
/// `pfile_fk` and `agent_fk` to content names.
fn plain_rows(s: &Side, t: &str, drop: &[&str]) -> BTreeSet<String> {
    let pf = pfile_names(s);
    let agents: HashMap<String, String> = s.tables["agent"]
        .iter()
        .map(|r| (r["agent_pk"].clone(), r["agent_name"].clone()))
        .collect();
    let by_name = |t: &str, pk: &str, name: &str| -> HashMap<String, String> {
        s.tables[t]
            .iter()
            .map(|r| (r[pk].clone(), r[name].clone()))
            .collect()
    };
    let users = by_name("users", "user_pk", "user_name");
    let groups = by_name("groups", "group_pk", "group_name");
    s.tables[t]
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for d in drop {
                let v = r.remove(*d).unwrap_or_default();
                // A timestamp is left out, but it must be there.
                r.insert(format!("{d} set"), (!v.is_empty()).to_string());
            }
            if let Some(p) = r.get_mut("pfile_fk") {
                *p = pf.get(p.as_str()).map(|x| x.0.clone()).unwrap_or_default();
            }
            if let Some(a) = r.get_mut("agent_fk") {
                *a = agents.get(a.as_str()).cloned().unwrap_or_default();
            }
            for k in ["user_fk", "job_user_fk"] {
                if let Some(u) = r.get_mut(k) {
                    *u = users
                        .get(u.as_str())
                        .cloned()
                        .unwrap_or(format!("user {u}"));
                }
            }
            for k in ["group_fk", "job_group_fk"] {
                if let Some(g) = r.get_mut(k) {
                    *g = groups
                        .get(g.as_str())
                        .cloned()
                        .unwrap_or(format!("group {g}"));
                }
            }
            format!("{r:?}")
        })
        .collect()
}

fn diff_sets(what: &str, want: &BTreeSet<String>, got: &BTreeSet<String>, out: &mut Vec<String>) {
    for w in want.difference(got) {
        out.push(format!("{what}: FOSSology has, holdfast lacks: {w}"));
    }
    for g in got.difference(want) {
        out.push(format!("{what}: holdfast has, FOSSology lacks: {g}"));
    }
}

/// Every difference between FOSSology's side and ours, one line each.
fn compare(want: &Side, got: &Side, our_files_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    // The golden run's top files sat in a folder of GOLDEN_FILES_DIR_LEN characters; ours
    // in our repository.
    let golden_top = |name_len: usize| GOLDEN_FILES_DIR_LEN + name_len;
    let upload_pfile = |s: &Side, up: &str| -> Option<String> {
        let pf = pfile_names(s);
        s.tables["upload"]
            .iter()
            .find(|u| u["upload_pk"] == up)
            .and_then(|u| pf.get(&u["pfile_fk"]).map(|p| p.0.clone()))
    };
    let want_top = |up: &str| upload_pfile(want, up).map(|n| golden_top(n.len()));
    let our_dir_len = our_files_dir.display().to_string().len() + "/aa/bb/cc/".len();
    let got_top = |up: &str| upload_pfile(got, up).map(|n| our_dir_len + n.len());
    let (wt, w_meta) = tree_rows(want, &want_top);
    let (gt, g_meta) = tree_rows(got, &got_top);
    for (k, w) in &wt {
        match gt.get(k) {
            None => out.push(format!(
                "uploadtree upload {} lft {}: holdfast has no row ({w:?})",
                k.0, k.1
            )),
            Some(g) if g != w => out.push(format!(
                "uploadtree upload {} lft {} ({}): FOSSology {:?} holdfast {:?}",
                k.0,
                k.1,
                w["ufile_name"],
                w.iter()
                    .filter(|(c, v)| g.get(*c) != Some(v))
                    .collect::<Vec<_>>(),
                g.iter()
                    .filter(|(c, v)| w.get(*c) != Some(v))
                    .collect::<Vec<_>>(),
            )),
            _ => {}
        }
    }
    for (k, g) in &gt {
        if !wt.contains_key(k) {
            out.push(format!(
                "uploadtree upload {} lft {}: FOSSology has no row ({g:?})",
                k.0, k.1
            ));
        }
    }
    let pfiles = |s: &Side, skip: &BTreeSet<String>| -> BTreeSet<String> {
        pfile_names(s)
            .into_values()
            .filter(|(n, _)| !skip.contains(n))
            .map(|(n, v)| format!("{n} {v:?}"))
            .collect()
    };
    diff_sets(
        "pfile",
        &pfiles(want, &w_meta),
        &pfiles(got, &g_meta),
        &mut out,
    );
    let same = |t: &str, drop: &[&str], out: &mut Vec<String>| {
        diff_sets(
            t,
            &plain_rows(want, t, drop),
            &plain_rows(got, t, drop),
            out,
        )
    };
    same("upload", &["upload_ts"], &mut out);
    same("mimetype", &[], &mut out);
    same("ununpack_ars", &["ars_starttime", "ars_endtime"], &mut out);
    same("job", &["job_queued"], &mut out);
    same("jobqueue", &["jq_starttime", "jq_endtime"], &mut out);
    // Its key follows the installer's seed row for the root folder, not the upload path.
    same("foldercontents", &["foldercontents_pk"], &mut out);
    same("perm_upload", &[], &mut out);
    // Repository: FOSSology's lists are compared as far as they go (they do not cover
    // every upload); every file holdfast has besides must be one a golden pfile names.
    let golden_names: BTreeSet<String> = pfile_names(want).into_values().map(|v| v.0).collect();
    for (what, w, g) in [
        ("files", &want.files, &got.files),
        ("gold", &want.gold, &got.gold),
    ] {
        for n in w.difference(g) {
            if !w_meta.contains(n) && golden_names.contains(n) {
                out.push(format!(
                    "repository {what}: FOSSology has, holdfast lacks: {n}"
                ));
            } else if !golden_names.contains(n) && !w_meta.contains(n) {
                // A meta file FOSSology's rows do not name (left from another run).
                let size: usize = n.rsplit('.').next().unwrap().parse().unwrap();
                let explained = w_meta.iter().any(|m| m.ends_with(&format!(".{size}")));
                if !explained {
                    out.push(format!(
                        "repository {what}: FOSSology has, holdfast lacks: {n}"
                    ));
                }
            }
        }
        for n in g.difference(w) {
            if !golden_names.contains(n) && !g_meta.contains(n) {
                out.push(format!(
                    "repository {what}: holdfast has a file no FOSSology row names: {n}"
                ));
            }
        }
    }
    out
}

fn upload_all(s: &holdfast_sandbox::scratch::ScratchSite, g: &Path) {
    let cfg = UnpackConfig::default();
    for (name, args) in INPUTS {
        let opts = UnpackOptions {
            ignore_scm: args.contains("-I"),
            ..Default::default()
        };
        upload_files(&s.site, &[g.join("inputs").join(name)], &cfg, &opts)
            .unwrap_or_else(|e| panic!("upload {name}: {e}"));
    }
}

#[test]
fn upload_gives_fossologys_rows_and_files() {
    let g = golden();
    let d = tempfile::tempdir().unwrap();
    let s = common::site(d.path());
    holdfast_testkit::golden::fossology_sequences(&mut s.site.connect().unwrap());
    upload_all(&s, &g);
    let mut c = s.site.connect().unwrap();
    let host = s.site.repo.root.join("localhost");
    let got = our_side(&mut c, &host);
    let want = expected_side(&g);
    let diffs = compare(&want, &got, &host.join("files"));
    assert!(
        diffs.is_empty(),
        "{} differences from FOSSology's own agents:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// A second FOSSology database in the scratch cluster with another default collation, and a
/// site (own repository) on it.
fn site_with_collation(
    s: &holdfast_sandbox::scratch::ScratchSite,
    dir: &Path,
    db: &str,
    locale: &str,
) -> holdfast_site::Site {
    let mut su = s.cluster.superuser_client().unwrap();
    su.batch_execute(&format!(
        "CREATE DATABASE {db} OWNER fossy ENCODING 'UTF8' TEMPLATE template0 {locale}"
    ))
    .unwrap_or_else(|e| {
        panic!("CREATE DATABASE with {locale}: {e} (scripts/install-deps.sh makes en_US.UTF-8)")
    });
    let conf = s.cluster.conf(db, "fossy", "fossy");
    let mut c = conf.pg_config().connect(postgres::NoTls).unwrap();
    c.batch_execute(holdfast_site::SCHEMA_SQL).unwrap();
    holdfast_testkit::golden::fossology_sequences(&mut c);
    let repo = dir.join(format!("{db}-repo"));
    std::fs::create_dir_all(repo.join("localhost")).unwrap();
    let site = holdfast_site::Site::scratch(&dir.join(format!("{db}-etc")), &repo, conf);
    site.write_conf().unwrap();
    site
}

/// FOSSology's rows with `lft`/`rgt` as adj2nest numbers them in database `c`: the same
/// ORDER BY, run there, then its depth-first walk (written out here on its own).
fn renumber(c: &mut postgres::Client, rows: &mut [BTreeMap<String, String>]) {
    let int = |r: &BTreeMap<String, String>, k: &str| r[k].parse::<i32>().ok();
    let pk: Vec<i32> = rows
        .iter()
        .map(|r| int(r, "uploadtree_pk").unwrap())
        .collect();
    let parent: Vec<Option<i32>> = rows.iter().map(|r| int(r, "parent")).collect();
    let mode: Vec<i32> = rows.iter().map(|r| int(r, "ufile_mode").unwrap()).collect();
    let name: Vec<&str> = rows.iter().map(|r| r["ufile_name"].as_str()).collect();
    let order = c
        .query(
            "SELECT u.pk, u.parent FROM unnest($1::int4[], $2::int4[], $3::int4[], $4::text[])
               AS u(pk, parent, mode, name)
             WHERE u.parent IS NOT NULL ORDER BY u.parent, u.mode&(1<<29) DESC, u.name",
            &[&pk, &parent, &mode, &name],
        )
        .unwrap();
    let mut kids: HashMap<i32, Vec<i32>> = HashMap::new();
    for r in &order {
        kids.entry(r.get(1)).or_default().push(r.get(0));
    }
    fn walk(
        pk: i32,
        kids: &HashMap<i32, Vec<i32>>,
        n: &mut i32,
        out: &mut HashMap<i32, (i32, i32)>,
    ) {
        let lft = *n;
        *n += 1;
        for &k in kids.get(&pk).map(|v| v.as_slice()).unwrap_or(&[]) {
            walk(k, kids, n, out);
            *n += 1;
        }
        out.insert(pk, (lft, *n));
    }
    let mut set = HashMap::new();
    for (i, p) in parent.iter().enumerate() {
        if p.is_none() {
            walk(pk[i], &kids, &mut 1, &mut set);
        }
    }
    for r in rows.iter_mut() {
        let (l, g) = set[&int(r, "uploadtree_pk").unwrap()];
        r.insert("lft".into(), l.to_string());
        r.insert("rgt".into(), g.to_string());
    }
}

#[test]
fn sibling_order_follows_the_databases_collation() {
    let g = golden();
    let d = tempfile::tempdir().unwrap();
    let s = common::site(d.path());
    let cfg = UnpackConfig::default();
    for (db, locale) in [
        ("fo_en", "LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'"),
        (
            "fo_icu",
            "LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'",
        ),
    ] {
        let site = site_with_collation(&s, d.path(), db, locale);
        for (name, args) in INPUTS {
            let opts = UnpackOptions {
                ignore_scm: args.contains("-I"),
                ..Default::default()
            };
            upload_files(&site, &[g.join("inputs").join(name)], &cfg, &opts)
                .unwrap_or_else(|e| panic!("{db}: upload {name}: {e}"));
        }
        let mut c = site.connect().unwrap();
        let host = site.repo.root.join("localhost");
        let got = our_side(&mut c, &host);
        let mut want = expected_side(&g);
        let before = want.tables["uploadtree_a"].clone();
        renumber(&mut c, want.tables.get_mut("uploadtree_a").unwrap());
        let moved = before
            .iter()
            .zip(&want.tables["uploadtree_a"])
            .filter(|(a, b)| a["lft"] != b["lft"])
            .count();
        assert!(
            moved > 0,
            "{db}: the collation should order some siblings differently from C"
        );
        let diffs = compare(&want, &got, &host.join("files"));
        assert!(
            diffs.is_empty(),
            "{db}: {} differences from FOSSology's rows numbered in this collation:\n{}",
            diffs.len(),
            diffs.join("\n")
        );
    }
}

/// Loads FOSSology's rows as they are into our database.
fn load_golden(c: &mut postgres::Client, want: &Side) {
    for t in holdfast_testkit::golden::REUNPACK_TABLES {
        holdfast_testkit::golden::load(c, t, &want.tables[*t]);
    }
}

#[test]
fn reunpack_rebuilds_every_file_fossologys_rows_name() {
    let g = golden();
    let d = tempfile::tempdir().unwrap();
    let s = common::site(d.path());
    let want = expected_side(&g);
    let mut c = s.site.connect().unwrap();
    load_golden(&mut c, &want);
    // Gold comes back from the inputs (a gold-only backup keeps it); `files` is gone.
    holdfast_testkit::golden::put_gold(&s.site);
    let cfg = UnpackConfig::default();
    let opts = UnpackOptions {
        repo_only: true,
        ..Default::default()
    };
    let mut unreproduced = BTreeSet::new();
    for u in &want.tables["upload"] {
        let up: i32 = u["upload_pk"].parse().unwrap();
        let sum =
            unpack_upload(&s.site, up, &cfg, &opts).unwrap_or_else(|e| panic!("upload {up}: {e}"));
        assert!(
            sum.errors.iter().all(|e| !e.contains("cannot")),
            "{:?}",
            sum.errors
        );
        for x in sum.unreproduced {
            unreproduced.insert(x);
        }
    }
    // Exactly the meta files that name a path are not rebuilt, each saying so.
    let (_, path_naming) = tree_rows(&want, &|_| None);
    let names: BTreeSet<String> = unreproduced
        .iter()
        .map(|u| u.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(names, path_naming, "not rebuilt: {unreproduced:#?}");
    for u in &unreproduced {
        assert!(u.contains("artifact.meta") && u.contains("names"), "{u}");
    }
    // Every other file the rows name is back, byte for byte (content names checked).
    let files = repo_names(&s.site.repo.root.join("localhost/files"));
    let named: BTreeSet<String> = {
        let pf = pfile_names(&want);
        want.tables["uploadtree_a"]
            .iter()
            .filter_map(|r| pf.get(&r["pfile_fk"]).map(|p| p.0.clone()))
            .collect()
    };
    let missing: Vec<&String> = named
        .difference(&files)
        .filter(|n| !path_naming.contains(*n))
        .collect();
    assert!(missing.is_empty(), "not rebuilt: {missing:?}");
    for n in &files {
        let p = s.site.repo.path("files", n).unwrap();
        assert_eq!(
            &holdfast_unpack::hash::hash_file(&p).unwrap().pfile_name(),
            n
        );
    }
}
