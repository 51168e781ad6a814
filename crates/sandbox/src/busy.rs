//! Work for the stand-in's agents: a busy FOSSology, writing and deleting repository files
//! and rows while a backup runs ([`crate::standin::StandIn::set_work`]).
//!
//! Each work unit does what FOSSology's agents do, in their order:
//! - an upload is unpacked (as `ununpack`): its job row is marked running, its gold file and
//!   one child are written into the repository (each in two halves, a short pause between:
//!   a copy may meet them half-written), then in one transaction the `pfile` rows, the
//!   upload's gold and its `uploadtree_a` rows, and the job's end;
//! - once more than a few busy uploads exist, the oldest is deleted (as `delagent`): a
//!   `Delete` job's `delagent` row is started (`DELETE UPLOAD <upload>`), the files go first,
//!   then, after a pause, in one transaction the rows that name them (the upload row stays,
//!   marked deleted with no file, as delagent leaves it) and the job's end.
//!
//! Only uploads it made (`upload_origin = 'busy'`) are deleted, each by one agent (it claims
//! the upload first, marking it `busy-deleting`). A stop request (TERM) ends
//! an agent after its unit, as FOSSology's agents finish their job.

use holdfast_site::mode;
use holdfast_site::pfile::PfileName;
use holdfast_site::Site;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The folder under the repository root where files of `kind` live (one host covering every
/// name, FOSSology's three levels of hash folders: the scratch site's layout).
fn kind_dir(site: &Site, kind: &str) -> std::io::Result<String> {
    let probe = PfileName::new(&"0".repeat(40), &"0".repeat(32), 1);
    let path = site
        .repo
        .pfile_path(kind, &probe)
        .ok_or_else(|| std::io::Error::other(format!("no [REPOSITORY] host for {kind}")))?;
    let dir = path
        .ancestors()
        .nth(4)
        .ok_or_else(|| std::io::Error::other("repository path too short"))?;
    let want = dir.join("00/00/00").join(probe.to_string());
    if want != path {
        return Err(std::io::Error::other(format!(
            "busy work expects three levels of hash folders, not {}",
            path.display()
        )));
    }
    Ok(dir.display().to_string())
}

/// The bash the agents source once per work unit, for `site`; `dir` holds its private
/// password file.
pub fn work_script(site: &Site, dir: &Path) -> std::io::Result<String> {
    let db = &site.db;
    let pgpass = dir.join("busy.pgpass");
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    std::fs::write(
        &pgpass,
        format!(
            "*:*:*:{}:{}\n",
            esc(db.user()),
            esc(db.get("password").unwrap_or(""))
        ),
    )?;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600))?;
    let gold = kind_dir(site, "gold")?;
    let files = kind_dir(site, "files")?;
    Ok(format!(
        r#"# Busy FOSSology agent work (holdfast-sandbox busy.rs).
export PGHOST='{host}' PGPORT={port} PGUSER='{user}' PGDATABASE='{dbname}' PGPASSFILE='{pgpass}'
q() {{ psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }}
busy_name() {{ local s m; s=$(sha1sum < "$1"); m=$(md5sum < "$1"); echo "${{s%% *}}.${{m%% *}}.$(stat -c %s "$1")"; }}
busy_path() {{ local n=$2; echo "$1/${{n:0:2}}/${{n:2:2}}/${{n:4:2}}/$n"; }}
busy_write() {{
  mkdir -p "$(dirname "$2")"
  local z h; z=$(stat -c %s "$1"); h=$(( z / 2 ))
  head -c $h "$1" > "$2"; sleep 0.05; tail -c +$(( h + 1 )) "$1" >> "$2"
}}
busy_add() {{
  local t g c u jq gs gm gz cs cm cz
  t=$(mktemp -d '{dir}/busy.XXXXXX') || return
  head -c $(( RANDOM % 20000 + 2000 )) /dev/urandom > "$t/g"
  head -c $(( RANDOM % 20000 + 2000 )) /dev/urandom > "$t/c"
  g=$(busy_name "$t/g"); c=$(busy_name "$t/c")
  read -r u jq < <(q "WITH u AS (INSERT INTO upload (upload_filename, user_fk, upload_mode, upload_origin) VALUES ('busy.bin', 1, 104, 'busy') RETURNING upload_pk), j AS (INSERT INTO job (job_name, job_upload_fk, job_user_fk) SELECT 'busy.bin', upload_pk, 1 FROM u RETURNING job_pk, job_upload_fk) INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime) SELECT job_pk, 'ununpack', job_upload_fk::text, now() FROM j RETURNING jq_args, jq_pk" | tr '|' ' ')
  [ -n "$jq" ] || {{ rm -rf "$t"; return; }}
  busy_write "$t/g" "$(busy_path '{gold}' "$g")"
  busy_write "$t/g" "$(busy_path '{files}' "$g")"
  busy_write "$t/c" "$(busy_path '{files}' "$c")"
  IFS=. read -r gs gm gz <<< "$g"; IFS=. read -r cs cm cz <<< "$c"
  q "BEGIN;
INSERT INTO pfile (pfile_sha1, pfile_md5, pfile_size) VALUES (upper('$gs'), upper('$gm'), $gz), (upper('$cs'), upper('$cm'), $cz);
UPDATE upload SET pfile_fk = (SELECT pfile_pk FROM pfile WHERE pfile_sha1 = upper('$gs') AND pfile_md5 = upper('$gm') AND pfile_size = $gz) WHERE upload_pk = $u;
WITH r AS (INSERT INTO uploadtree_a (parent, realparent, upload_fk, pfile_fk, ufile_mode, lft, rgt, ufile_name) SELECT NULL, NULL, $u, pfile_fk, {container}, 1, 4, 'busy.bin' FROM upload WHERE upload_pk = $u RETURNING uploadtree_pk)
INSERT INTO uploadtree_a (parent, realparent, upload_fk, pfile_fk, ufile_mode, lft, rgt, ufile_name) SELECT uploadtree_pk, uploadtree_pk, $u, (SELECT pfile_pk FROM pfile WHERE pfile_sha1 = upper('$cs') AND pfile_md5 = upper('$cm') AND pfile_size = $cz), {leaf}, 2, 3, 'busy' FROM r;
UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = 1, jq_endtext = 'Completed' WHERE jq_pk = $jq;
COMMIT" > /dev/null
  rm -rf "$t"
}}
busy_delete() {{
  local u n rows jq
  # Claimed first: two agents must not both delete the oldest (the second would delete
  # nothing, and busy uploads would pile up).
  u=$(q "UPDATE upload SET upload_origin = 'busy-deleting' WHERE upload_pk = (SELECT upload_pk FROM upload WHERE upload_origin = 'busy' AND pfile_fk IS NOT NULL AND (SELECT count(*) FROM upload WHERE upload_origin = 'busy') > 4 ORDER BY upload_pk LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING upload_pk")
  [ -n "$u" ] || return
  # As FOSSology's UI queues it and its scheduler starts it: a Delete job whose delagent
  # row is started before the agent touches anything.
  jq=$(q "WITH j AS (INSERT INTO job (job_name, job_upload_fk, job_user_fk) VALUES ('Delete', $u, 1) RETURNING job_pk) INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime) SELECT job_pk, 'delagent', 'DELETE UPLOAD $u', now() FROM j RETURNING jq_pk")
  [ -n "$jq" ] || return
  rows=$(q "SELECT u.upload_pk, lower(p.pfile_sha1) || '.' || lower(p.pfile_md5) || '.' || p.pfile_size FROM upload u JOIN uploadtree_a t ON t.upload_fk = u.upload_pk JOIN pfile p ON p.pfile_pk = t.pfile_fk WHERE u.upload_pk = $u")
  while IFS='|' read -r _ n; do
    [ -n "$n" ] && rm -f "$(busy_path '{gold}' "$n")" "$(busy_path '{files}' "$n")"
  done <<< "$rows"
  sleep 0.1
  # delagent's rows: the tree and pfiles go, the upload stays marked deleted without a file.
  q "BEGIN;
CREATE TEMP TABLE gone ON COMMIT DROP AS SELECT DISTINCT pfile_fk FROM uploadtree_a WHERE upload_fk = $u;
DELETE FROM uploadtree_a WHERE upload_fk = $u;
UPDATE upload SET expire_action = 'd', expire_date = now(), pfile_fk = NULL WHERE upload_pk = $u;
DELETE FROM pfile WHERE pfile_pk IN (SELECT pfile_fk FROM gone);
UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = 1, jq_endtext = 'Completed' WHERE jq_pk = $jq;
COMMIT" > /dev/null
}}
busy_add
busy_delete
"#,
        host = db.host(),
        port = db.port(),
        user = db.user(),
        dbname = db.dbname(),
        pgpass = pgpass.display(),
        dir = dir.display(),
        container = mode::BIT_CONTAINER | mode::S_IFREG | 0o644,
        leaf = mode::S_IFREG | 0o644,
    ))
}
