//! FOSSology's `ununpack` writing an upload, as a script a drill can kill mid-write: the
//! statements it runs (`src/ununpack/agent/utils.c`, `AddToRepository`, and `ununpack.c`),
//! one at a time, each committed on its own (see holdfast-drill's `ununpack` module).

use crate::dbconf::DbConf;
use std::path::Path;

/// The writer script: `bash SCRIPT PLAN UPLOAD [STOP]` reads the plan (one line per tree row,
/// in tree order: index, parent index or -1, mode, name in hex, sha1, md5, sha256, size, the
/// extracted file, its repository path) and writes the upload the way ununpack does.
///
/// With `STOP` it halts, writes `PLAN.stopped` and waits there, so a drill can pull the plug
/// at an exact place of the write, end marks included: STOP rows committed and the next
/// file linked (0 < STOP < rows); every row committed and no end mark (STOP = rows);
/// `upload_mode` bit 5 set (rows + 1); `realparent` set too, `ununpack_ars` not yet
/// successful (rows + 2).
pub fn ununpack_writer_script(pgpass: &Path, db: &DbConf) -> String {
    format!(
        r#"#!/bin/bash
# Stand-in for FOSSology's ununpack writing an upload (crates/drill/src/ununpack.rs):
# every file linked into the repository, then its pfile and uploadtree rows, one
# statement at a time, each committed on its own, each answered before the next file.
# Usage: standin-ununpack PLAN UPLOAD [STOP]
# STOP: halt (and wait for the plug to be pulled) with STOP rows committed and the next
# file linked; STOP = rows: every row committed, no end mark; rows+1: upload_mode marked;
# rows+2: realparent set too, ununpack_ars not yet successful.
set -u
plan=$1 up=$2 stop=${{3:--1}}
halt() {{ [ "$1" -eq "$stop" ] && {{ echo "$1" > "$plan.stopped"; exec sleep 3600; }}; return 0; }}
export PGPASSFILE={pgpass} PGCONNECT_TIMEOUT=5
coproc PSQL {{ exec psql -X -q -A -t -w -v ON_ERROR_STOP=1 -h {h} -p {p} -U {u} -d {n} 2>&1; }}
q() {{
  printf '%s\n' "$1" >&"${{PSQL[1]}}"
  IFS= read -r reply <&"${{PSQL[0]}}" || {{ echo "psql ended at: $1" >&2; exit 1; }}
  case $reply in ERROR*|psql:*) echo "$reply" >&2; exit 1 ;; esac
}}
q "INSERT INTO ununpack_ars (agent_fk, upload_fk) SELECT max(agent_pk), $up FROM agent WHERE agent_name = 'ununpack' RETURNING ars_pk;"
ars=$reply
declare -a pk
done=0
while IFS=$'\t' read -r i parent mode hex sha1 md5 sha256 size src dst; do
  pf=0
  if [ -n "$sha1" ]; then
    if [ ! -e "$dst" ]; then
      mkdir -p "${{dst%/*}}"
      ln "$src" "$dst" 2>/dev/null || {{ cp "$src" "$dst.I" && mv "$dst.I" "$dst"; }}
    fi
  fi
  [ "$done" -gt 0 ] && halt "$done"
  if [ -n "$sha1" ]; then
    q "WITH s AS (SELECT min(pfile_pk) AS k FROM pfile WHERE pfile_sha1 = '$sha1' AND pfile_md5 = '$md5' AND pfile_size = $size),
       i AS (INSERT INTO pfile (pfile_sha1, pfile_md5, pfile_sha256, pfile_size) SELECT '$sha1', '$md5', '$sha256', $size WHERE (SELECT k FROM s) IS NULL RETURNING pfile_pk)
       SELECT COALESCE((SELECT k FROM s), (SELECT pfile_pk FROM i));"
    pf=$reply
  fi
  par=NULL
  [ "$parent" -ge 0 ] && par=${{pk[$parent]}}
  q "INSERT INTO uploadtree_a (parent, pfile_fk, ufile_mode, ufile_name, upload_fk) VALUES ($par, $pf, $mode, convert_from(decode('$hex', 'hex'), 'UTF8'), $up) RETURNING uploadtree_pk;"
  pk[$i]=$reply
  done=$((done + 1))
done < "$plan"
halt "$done"
q "UPDATE upload SET upload_mode = upload_mode | 32, uploadtree_tablename = 'uploadtree_a' WHERE upload_pk = $up; SELECT 1;"
halt $((done + 1))
q "UPDATE uploadtree_a SET realparent = getItemParent(uploadtree_pk) WHERE upload_fk = $up; SELECT 1;"
halt $((done + 2))
q "UPDATE ununpack_ars SET ars_success = true, ars_endtime = now() WHERE ars_pk = $ars; SELECT 1;"
"#,
        pgpass = pgpass.display(),
        h = db.host(),
        p = db.port(),
        u = db.user(),
        n = db.dbname()
    )
}

/// `uploadtree_a` rows upload `upload` has.
pub fn tree_rows(c: &mut postgres::Client, upload: i32) -> Result<i64, postgres::Error> {
    Ok(c.query_one(
        "SELECT count(*) FROM uploadtree_a WHERE upload_fk = $1",
        &[&upload],
    )?
    .get(0))
}

/// What FOSSology's `ununpack` does when the scheduler runs it again on an upload
/// (`ununpack.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    /// An unpack of the upload succeeded: "has already been unpacked", it ends at once.
    Done,
    /// The upload has rows: it writes the repository files and no row (`ReunpackSwitch`
    /// stays off), then marks the upload unpacked, whatever the rows hold.
    FilesOnly,
    /// No rows: the whole unpack, rows included.
    Whole,
}

pub fn rerun_would(c: &mut postgres::Client, upload: i32) -> Result<Rerun, postgres::Error> {
    let (done, rows): (bool, bool) = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM ununpack_ars WHERE upload_fk = $1 AND ars_success),
                    EXISTS (SELECT 1 FROM uploadtree WHERE upload_fk = $1)",
            &[&upload],
        )
        .map(|r| (r.get(0), r.get(1)))?;
    Ok(match (done, rows) {
        (true, _) => Rerun::Done,
        (false, true) => Rerun::FilesOnly,
        (false, false) => Rerun::Whole,
    })
}

/// The end of a [`Rerun::FilesOnly`] run: `upload_mode` bit 5 and a successful
/// `ununpack_ars` row, as ununpack ends.
pub fn rerun_end_marks(c: &mut postgres::Client, upload: i32) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute(
        "UPDATE upload SET upload_mode = upload_mode | $2 WHERE upload_pk = $1",
        &[&upload, &crate::mode::UPLOAD_UNPACKED],
    )?;
    super::jobs::record_unpack_success(&mut tx, upload, std::time::SystemTime::now())?;
    tx.commit()
}
