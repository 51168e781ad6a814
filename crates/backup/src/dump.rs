//! The database: `pg_dumpall` streamed through gzip or zstd straight to the target, and back.
//!
//! The dump never touches the FOSSology server's disk: pg_dumpall's output is compressed in
//! memory and written to the target as it comes (over `ssh` for a remote target), while its
//! sha256 and sizes are counted. The password reaches the PostgreSQL tools only through a
//! private pgpass file ([`holdfast_site::dbconf::DbConf::pg_env`]).
//!
//! A restore loads only the site's database out of the cluster dump: it recreates the
//! database with the encoding and locale recorded in the manifest, creates roles the dump
//! has and the server lacks (existing roles are left as they are), and feeds the site
//! database's part of the dump to `psql` (renamed when restoring into a scratch database).

use crate::config::{BackupConfig, Compression};
use crate::superuser::Superuser;
use crate::BackupError;
use holdfast_site::db::{quote_ident, quote_literal};
use holdfast_site::dbconf::DbConf;
use holdfast_store::manifest::DumpInfo;
use holdfast_store::{Plan, Store, Upload};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

/// Counts bytes and hashes them on the way to the inner writer.
struct Tee<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Makes compressed output rsync-friendly (`gzip --rsyncable`'s idea): the encoder is
/// flushed where the content says (a rolling sum over the last [`WINDOW`] input bytes hits a
/// fixed value), so an unchanged stretch of the dump compresses to the same bytes on two
/// nights whatever changed before it, and rsync finds it in the previous night's dump.
/// Each stretch reaches the encoder in one piece (a gzip member of its own, or a zstd
/// block): cutting by the caller's buffers would undo the sameness.
pub struct Rsyncable<W: Write> {
    inner: W,
    ring: Box<[u8; WINDOW]>,
    at: usize,
    sum: u32,
    pending: Vec<u8>,
}

/// Bytes the rolling sum covers; also the least length of a stretch.
pub const WINDOW: usize = 4096;
/// Longest stretch (text whose sum never hits the value, such as long runs of one byte).
const MAX_STRETCH: usize = 1 << 20;

impl<W: Write> Rsyncable<W> {
    pub fn new(inner: W) -> Self {
        Rsyncable {
            inner,
            ring: Box::new([0; WINDOW]),
            at: 0,
            sum: 0,
            pending: Vec::with_capacity(4 * WINDOW),
        }
    }

    /// Hands the last stretch to the encoder and returns it (to be finished).
    pub fn finish(mut self) -> std::io::Result<W> {
        self.inner.write_all(&self.pending)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Rsyncable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut from = 0;
        for (i, &b) in buf.iter().enumerate() {
            self.sum = self.sum + b as u32 - self.ring[self.at] as u32;
            self.ring[self.at] = b;
            self.at = (self.at + 1) % WINDOW;
            let n = self.pending.len() + i + 1 - from;
            if (n >= WINDOW && self.sum.is_multiple_of(WINDOW as u32)) || n >= MAX_STRETCH {
                self.pending.extend_from_slice(&buf[from..=i]);
                from = i + 1;
                self.inner.write_all(&self.pending)?;
                // The flush ends the stretch's gzip member (or zstd block) here.
                self.inner.flush()?;
                self.pending.clear();
            }
        }
        self.pending.extend_from_slice(&buf[from..]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encoding, locale and owner of the site database.
pub fn database_facts(
    c: &mut postgres::Client,
) -> Result<(String, String, String, String), postgres::Error> {
    let r = c.query_one(
        "SELECT pg_encoding_to_char(encoding), datcollate::text, datctype::text, pg_get_userbyid(datdba)::text \
         FROM pg_database WHERE datname = current_database()",
        &[],
    )?;
    Ok((r.get(0), r.get(1), r.get(2), r.get(3)))
}

fn io_err(path: &str) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_string(),
        source,
    }
}

/// The dump of the snapshot `plan` is making, as `rel`: streamed to a store that takes it
/// while it is written, else spooled here to be sent as soon as it is whole (beside the
/// copy's end; the scheduler's start does not wait for it).
pub fn into_snapshot(
    db: &DbConf,
    client: &mut postgres::Client,
    cfg: &BackupConfig,
    target: &dyn Store,
    plan: &Plan,
    rel: &str,
    source: Source,
) -> Result<(DumpInfo, Option<Spooled>), BackupError> {
    let (mut database, spooled) = if cfg.spools_dump(target) {
        let (d, s) = dump_spooled(db, client, cfg, rel, source)?;
        (d, Some(s))
    } else {
        let mut d = dump(db, client, cfg, target, plan, rel, source)?;
        d.sent_by = Some("stream".into());
        (d, None)
    };
    database.file = rel.to_string();
    Ok((database, spooled))
}

/// Streams `pg_dumpall` into `rel` of the snapshot `plan` is making.
pub fn dump(
    db: &DbConf,
    client: &mut postgres::Client,
    cfg: &BackupConfig,
    target: &dyn Store,
    plan: &Plan,
    rel: &str,
    source: Source,
) -> Result<DumpInfo, BackupError> {
    let sink = target.create_dump(plan, rel)?;
    write_dump(db, client, cfg, sink, rel, source)
}

/// A dump written on the FOSSology server, to be sent to the target with rsync.
pub struct Spooled {
    /// Private folder (0700) holding the dump under its name in the snapshot.
    dir: tempfile::TempDir,
    name: String,
}

/// Writes the dump into a private folder under `backup.dump_spool`, to be sent with
/// [`holdfast_store::Store::send_dump`] (the scheduler need not be stopped for the sending).
pub fn dump_spooled(
    db: &DbConf,
    client: &mut postgres::Client,
    cfg: &BackupConfig,
    rel: &str,
    source: Source,
) -> Result<(DumpInfo, Spooled), BackupError> {
    let spool = cfg.dump_spool.display().to_string();
    sweep_spool(&cfg.dump_spool);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{SPOOL_PREFIX}{}.", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&cfg.dump_spool)
        .map_err(|e| {
            BackupError::Config(format!(
                "cannot make a folder for the dump in {spool} (backup.dump_spool): {e}; \
                 point dump_spool at a folder with room for one compressed dump, or set \
                 dump_rsync = false to stream the dump to the target"
            ))
        })?;
    let name = rel.rsplit('/').next().unwrap_or(rel).to_string();
    let path = dir.path().join(&name);
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&spool))?
    };
    let info = write_dump(
        db,
        client,
        cfg,
        Box::new(holdfast_store::target::Sink::File(
            f,
            path.display().to_string(),
        )),
        rel,
        source,
    )?;
    Ok((info, Spooled { dir, name }))
}

const SPOOL_PREFIX: &str = "holdfast-dump.";

/// Removes spool folders a killed run left (its pid is in the name and gone): they hold a
/// dump with every role's password hash, which must not outlive the run.
fn sweep_spool(spool: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SPOOL_PREFIX)
            .and_then(|r| r.split('.').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::info!(folder = %e.path().display(), "removed a dump a killed backup left")
                }
                Err(err) => {
                    tracing::warn!(folder = %e.path().display(), %err, "cannot remove a dump a killed backup left")
                }
            }
        }
    }
}

impl Spooled {
    /// The dump on this machine, to be sent with [`Store::send_dump`].
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join(&self.name)
    }
}

/// What the dump is read from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// `pg_dumpall`: the whole cluster at one moment (the scheduler stopped).
    Cluster,
    /// An exported snapshot (`pg_export_snapshot()` in a transaction the caller holds open):
    /// the roles (`pg_dumpall --globals-only`) and the site database as of that snapshot
    /// (`pg_dump --create --snapshot`), written as `pg_dumpall` writes them, so a restore
    /// reads both alike.
    Snapshot(&'a str),
}

/// Pieces of a tool's output read ahead of the encoder (each at most 1 MiB, a pipe's read
/// is usually 64 KiB).
const PUMP_CHUNKS: usize = 64;

/// Runs one PostgreSQL tool (`tool`, as the program `program`) as the superuser and copies
/// its output into `w`.
fn pump(
    su: &crate::superuser::Superuser,
    tool: &str,
    program: &str,
    args: &[&str],
    w: &mut dyn Write,
    raw: &mut u64,
    rel: &str,
) -> Result<(), BackupError> {
    let (mut cmd, _env) = su.command(program, args)?;
    holdfast_core::child::tie_to_parent(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = holdfast_core::child::spawn_retrying(&mut cmd).map_err(|e| {
        BackupError::Dump(format!(
            "cannot run {program}: {e} (install postgresql-client, or set backup.{tool})"
        ))
    })?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // A thread of its own drains the pipe, so the tool does not wait while a stretch is
    // compressed and written (a night's dump, whole benchmark site: 0.775 -> 0.755 s median;
    // the rest is the tool itself and the copy beside it on two cores).
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(PUMP_CHUNKS);
    let reader = std::thread::spawn(move || {
        // Each piece sent is what the read gave, so the queue holds the output's bytes, not
        // a mostly empty 1 MiB per piece. `None`: the receiver is gone, nobody to tell.
        let read = holdfast_core::fs::read_pieces(&mut out, Some, |piece| {
            tx.send(Ok(piece.to_vec())).map_err(|_| None)
        });
        let end = match read {
            Ok(()) => Ok(Vec::new()),
            Err(Some(e)) => Err(e),
            Err(None) => return,
        };
        let _ = tx.send(end);
    });
    let copied = (|| loop {
        if holdfast_core::interrupt::requested() {
            return Err(BackupError::Interrupted);
        }
        // The reader sends an end (an empty piece or an error) before it stops.
        let got = rx.recv().unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the reader of its output stopped early",
            ))
        });
        let buf = got.map_err(io_err(program))?;
        if buf.is_empty() {
            return Ok(());
        }
        w.write_all(&buf).map_err(io_err(rel))?;
        *raw += buf.len() as u64;
    })();
    // On an error the reader is not waited for: it ends at its next send (the receiver is
    // gone) or when the pipe closes (a `pg_dump` that `pg_dumpall` started may outlive it).
    drop(rx);
    if let Err(e) = copied {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let _ = reader.join();
    let status = child.wait().map_err(io_err(program))?;
    let stderr = errs.join().unwrap_or_default();
    if !status.success() {
        return Err(BackupError::Dump(format!(
            "{tool} failed ({status}) connecting {}: {}{}",
            su.describe(),
            stderr.lines().next().unwrap_or("").trim(),
            su.hint(&stderr)
        )));
    }
    Ok(())
}

fn write_dump(
    db: &DbConf,
    client: &mut postgres::Client,
    cfg: &BackupConfig,
    sink: Box<dyn Upload>,
    rel: &str,
    source: Source,
) -> Result<DumpInfo, BackupError> {
    let (encoding, collate, ctype, owner) =
        database_facts(client).map_err(|e| BackupError::Db {
            what: format!("read the encoding of database {}", db.dbname()),
            source: e,
        })?;
    // pg_dumpall reads pg_authid: it runs as a superuser, not as FOSSology's role.
    let su = cfg.superuser(db)?;
    tracing::info!(superuser = %su.describe(), ?source, "dumping the database");
    let tee = Tee {
        inner: sink,
        hash: Sha256::new(),
        bytes: 0,
    };
    let mut raw = 0u64;
    let dbname = db.dbname();
    let body = |w: &mut dyn Write, raw: &mut u64| -> Result<(), BackupError> {
        match source {
            Source::Cluster => pump(
                &su,
                "pg_dumpall",
                &cfg.pg_dumpall,
                &["-l", dbname],
                w,
                raw,
                rel,
            ),
            Source::Snapshot(id) => {
                pump(
                    &su,
                    "pg_dumpall",
                    &cfg.pg_dumpall,
                    &["--globals-only", "-l", dbname],
                    w,
                    raw,
                    rel,
                )?;
                // pg_dumpall's own header before each database's part.
                let head = format!(
                    "\n--\n-- Database \"{}\" dump\n--\n\n",
                    dbname.replace('"', "\"\"")
                );
                w.write_all(head.as_bytes()).map_err(io_err(rel))?;
                *raw += head.len() as u64;
                let snapshot = format!("--snapshot={id}");
                pump(
                    &su,
                    "pg_dump",
                    &cfg.pg_dump,
                    &["--create", &snapshot, "-d", dbname],
                    w,
                    raw,
                    rel,
                )
            }
        }
    };
    let tee = match cfg.compression {
        Compression::Gzip => {
            let level = cfg.compression_level.unwrap_or(6).clamp(0, 9);
            let enc = holdfast_core::gzip::Members::new(tee, level);
            let mut enc = Rsyncable::new(enc);
            body(&mut enc, &mut raw)
                .and_then(|_| enc.finish().map_err(io_err(rel)))
                .and_then(|e| e.finish().map_err(io_err(rel)))
        }
        Compression::Zstd => {
            let level = cfg.compression_level.unwrap_or(3);
            let enc = zstd::Encoder::new(tee, level).map_err(io_err(rel))?;
            let mut enc = Rsyncable::new(enc);
            body(&mut enc, &mut raw)
                .and_then(|_| enc.finish().map_err(io_err(rel)))
                .and_then(|e| e.finish().map_err(io_err(rel)))
        }
    }?;
    let Tee { inner, hash, bytes } = tee;
    inner.finish()?;
    Ok(DumpInfo {
        file: rel.to_string(),
        compression: cfg.compression.as_str().into(),
        sha256: hex::encode(hash.finalize()),
        bytes,
        raw_bytes: raw,
        dbname: db.dbname().to_string(),
        owner,
        encoding,
        collate,
        ctype,
        sent_by: None,
        sent_against: None,
        sent_bytes: bytes,
    })
}

fn decoder<'a>(
    r: Box<dyn Read + Send + 'a>,
    compression: &str,
) -> Result<Box<dyn Read + 'a>, BackupError> {
    Ok(match compression {
        "gzip" => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(r))),
        "zstd" => Box::new(zstd::Decoder::new(r).map_err(io_err("dump"))?),
        other => {
            return Err(BackupError::Load(format!(
                "unknown dump compression {other:?} in the manifest"
            )))
        }
    })
}

/// Checks the dump's sha256 against the manifest before anything is dropped.
pub fn check_dump(target: &dyn Store, rel: &str, info: &DumpInfo) -> Result<(), BackupError> {
    let mut r = target.open(rel)?;
    let mut h = Sha256::new();
    let mut n_total = 0u64;
    holdfast_core::fs::read_pieces(&mut r, io_err(rel), |piece| {
        h.update(piece);
        n_total += piece.len() as u64;
        Ok(())
    })?;
    let got = hex::encode(h.finalize());
    if got != info.sha256 || n_total != info.bytes {
        return Err(BackupError::Load(format!(
            "the dump {} on {} is damaged: sha256 {got} ({n_total} bytes), manifest says {} ({} bytes); restore an older snapshot",
            rel,
            target.display(),
            info.sha256,
            info.bytes
        )));
    }
    Ok(())
}

/// Name of a role or database as it appears after `CREATE ROLE ` etc.: quoted or bare.
fn leading_ident(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &rest[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(s.len());
        (end > 0).then(|| (s[..end].to_string(), &s[end..]))
    }
}

/// Picks the site database's part out of a `pg_dumpall` stream and adapts it.
pub struct Filter {
    pub source_db: String,
    pub dest_db: String,
    /// Roles the server lacks: their CREATE/ALTER ROLE lines are kept.
    pub new_roles: HashSet<String>,
    section: Option<String>,
    in_copy: bool,
}

impl Filter {
    pub fn new(source_db: &str, dest_db: &str, new_roles: HashSet<String>) -> Self {
        Filter {
            source_db: source_db.into(),
            dest_db: dest_db.into(),
            new_roles,
            section: None,
            in_copy: false,
        }
    }

    /// The line(s) to send to psql for one dump line (with its newline), if any.
    pub fn line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let ours = self.section.as_deref() == Some(self.source_db.as_str());
        if self.in_copy {
            if line == b"\\.\n" || line == b"\\." {
                self.in_copy = false;
            }
            return ours.then(|| line.to_vec());
        }
        let text = String::from_utf8_lossy(line);
        let t = text.trim_end();
        if let Some(rest) = t.strip_prefix("-- Database \"") {
            if let Some(name) = rest.strip_suffix("\" dump") {
                self.section = Some(name.replace("\"\"", "\""));
                return None;
            }
        }
        if t.starts_with("COPY ") && t.ends_with("FROM stdin;") {
            self.in_copy = true;
            return ours.then(|| line.to_vec());
        }
        match &self.section {
            None => {
                for kw in ["CREATE ROLE ", "ALTER ROLE "] {
                    if let Some(rest) = t.strip_prefix(kw) {
                        let keep = leading_ident(rest)
                            .is_some_and(|(name, _)| self.new_roles.contains(&name));
                        return keep.then(|| line.to_vec());
                    }
                }
                t.starts_with("SET ").then(|| line.to_vec())
            }
            Some(_) if !ours => None,
            Some(_) => {
                if t.starts_with("CREATE DATABASE ") {
                    return None;
                }
                if t.starts_with("\\connect ") {
                    let lit = self.dest_db.replace('\\', "\\\\").replace('\'', "\\'");
                    return Some(
                        format!("\\connect -reuse-previous=on \"dbname='{lit}'\"\n").into_bytes(),
                    );
                }
                for kw in [
                    "ALTER DATABASE ",
                    "COMMENT ON DATABASE ",
                    "GRANT ",
                    "REVOKE ",
                ] {
                    if t.starts_with(kw) {
                        if let Some(i) = t.find("DATABASE ") {
                            let after = &t[i + 9..];
                            if let Some((name, rest)) = leading_ident(after) {
                                if name == self.source_db {
                                    return Some(
                                        format!(
                                            "{}{}{}\n",
                                            &t[..i + 9],
                                            quote_ident(&self.dest_db),
                                            rest
                                        )
                                        .into_bytes(),
                                    );
                                }
                            }
                        }
                    }
                }
                Some(line.to_vec())
            }
        }
    }
}

/// Drops `dest`'s database (a rehearsal restored with `--into`), ending its sessions; as the
/// superuser, like the restore that made it.
pub fn drop_database(dest: &DbConf, cfg: &BackupConfig) -> Result<(), BackupError> {
    let dbname = dest.dbname().to_string();
    cfg.superuser(dest)?.query(
        &cfg.psql,
        "postgres",
        &format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&dbname)
        ),
    )?;
    tracing::info!(db = %dbname, "rehearsal database dropped");
    Ok(())
}

/// Ends every session on `dbname` and every statement of an earlier holdfast run still
/// creating it, and waits until they are gone. A `kill -9` of a restore kills its psql, but
/// the server finishes that psql's `CREATE DATABASE` on its own; left alone it would commit
/// after our `DROP` and make our `CREATE` fail with "already exists".
fn end_sessions(su: &Superuser, cfg: &BackupConfig, dbname: &str) -> Result<(), BackupError> {
    let which = format!(
        "pid <> pg_backend_pid() AND (datname = {} OR (application_name = {} \
         AND position({} in query) = 1))",
        quote_literal(dbname),
        quote_literal(crate::superuser::APPLICATION_NAME),
        quote_literal(&format!("CREATE DATABASE {} ", quote_ident(dbname)))
    );
    su.query(
        &cfg.psql,
        "postgres",
        &format!(
            "DO $holdfast$ DECLARE n int; BEGIN \
               FOR i IN 1..600 LOOP \
                 PERFORM pg_stat_clear_snapshot(); \
                 SELECT count(pg_terminate_backend(pid)) INTO n FROM pg_stat_activity WHERE {which}; \
                 IF n = 0 THEN RETURN; END IF; \
                 PERFORM pg_sleep(0.05); \
               END LOOP; \
               RAISE EXCEPTION 'sessions on database % did not end within 30 s', {}; \
             END $holdfast$",
            quote_literal(dbname)
        ),
    )?;
    Ok(())
}

/// Drops and recreates `dest` (a DbConf naming the database to restore into) and loads the
/// site database's part of the dump into it.
pub fn load(
    target: &dyn Store,
    rel: &str,
    info: &DumpInfo,
    dest: &DbConf,
    cfg: &BackupConfig,
) -> Result<(), BackupError> {
    check_dump(target, rel, info)?;
    let dbname = dest.dbname().to_string();
    // Dropping and creating the database, creating roles and loading objects owned by
    // others need a superuser; FOSSology's role is not one.
    let su = cfg.superuser(dest)?;
    tracing::info!(superuser = %su.describe(), db = %dbname, "restoring the database");
    let ident = quote_ident(&dbname);
    end_sessions(&su, cfg, &dbname)?;
    let drop_db = || {
        su.query(
            &cfg.psql,
            "postgres",
            &format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"),
        )
    };
    drop_db()?;
    let create = |lc: (&str, &str)| {
        su.query(
            &cfg.psql,
            "postgres",
            &format!(
                "CREATE DATABASE {ident} ENCODING {} TEMPLATE template0 LC_COLLATE {} LC_CTYPE {}",
                quote_literal(&info.encoding),
                quote_literal(lc.0),
                quote_literal(lc.1)
            ),
        )
    };
    if let Err(e) = create((&info.collate, &info.ctype)) {
        if e.to_string().contains("already exists") {
            // Made meanwhile by a statement end_sessions could not see; drop it once more.
            tracing::warn!("{dbname} reappeared after it was dropped: {e}; dropping it again");
            drop_db()?;
            create((&info.collate, &info.ctype))?;
        } else {
            // The original locale may not exist on this machine; C works with every encoding.
            tracing::warn!(
                "cannot create {dbname} with locale {}/{}: {e}; using locale C",
                info.collate,
                info.ctype
            );
            create(("C", "C"))?;
        }
    }
    let existing: HashSet<String> = su
        .query(&cfg.psql, "postgres", "SELECT rolname FROM pg_roles")?
        .into_iter()
        .collect();

    // Which roles does the dump create? Read the global part once (it is at the head).
    let mut roles = HashSet::new();
    {
        let r = decoder(target.open(rel)?, &info.compression)?;
        for line in BufReader::new(r).split(b'\n') {
            let line = line.map_err(io_err(rel))?;
            let t = String::from_utf8_lossy(&line);
            if t.starts_with("-- Database \"") || t.starts_with("\\connect ") {
                break;
            }
            if let Some(rest) = t.strip_prefix("CREATE ROLE ") {
                if let Some((name, _)) = leading_ident(rest) {
                    if !existing.contains(&name) {
                        roles.insert(name);
                    }
                }
            }
        }
    }
    if !roles.is_empty() {
        tracing::info!(roles = ?roles, "creating roles the server lacks");
    }
    let mut filter = Filter::new(&info.dbname, &dbname, roles);

    let (mut cmd, _env) = su.command(
        &cfg.psql,
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname.as_str()],
    )?;
    holdfast_core::child::tie_to_parent(&mut cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = holdfast_core::child::spawn_retrying(&mut cmd).map_err(|e| {
        BackupError::Load(format!(
            "cannot run {}: {e} (install postgresql-client, or set backup.psql)",
            cfg.psql
        ))
    })?;
    let mut err = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().expect("piped"));
    let r = decoder(target.open(rel)?, &info.compression)?;
    let mut reader = BufReader::with_capacity(1 << 20, r);
    let mut line = Vec::new();
    let mut fed = Ok(());
    let progress = holdfast_core::progress::Progress::new(
        &format!("load database {dbname}"),
        info.raw_bytes,
        holdfast_core::progress::Unit::Bytes,
    );
    loop {
        if holdfast_core::interrupt::requested() {
            fed = Err(BackupError::Interrupted);
            break;
        }
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(n) => progress.inc(n as u64),
            Err(e) => {
                fed = Err(BackupError::Io {
                    path: rel.into(),
                    source: e,
                });
                break;
            }
        }
        if let Some(out) = filter.line(&line) {
            if stdin.write_all(&out).is_err() {
                break; // psql stopped: its stderr says why
            }
        }
    }
    let _ = stdin.flush();
    drop(stdin);
    let status = child.wait().map_err(io_err("psql"))?;
    let stderr = errs.join().unwrap_or_default();
    fed?;
    if !status.success() {
        return Err(BackupError::Load(format!(
            "psql failed loading the dump into {dbname} ({status}): {}",
            stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(2)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip_rsyncable(text: &[u8]) -> Vec<u8> {
        let enc = holdfast_core::gzip::Members::new(Vec::new(), 6);
        let mut w = Rsyncable::new(enc);
        // Written in odd pieces: where the flushes fall must not depend on them.
        for piece in text.chunks(7777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap().finish().unwrap()
    }

    #[test]
    fn an_early_change_leaves_the_rest_of_the_compressed_dump_alone() {
        let mut a = Vec::new();
        let mut x: u64 = 7;
        for i in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            a.extend_from_slice(
                format!("{i}\t{:x}\tsome/path/file{}.c\tGPL-2.0\n", x, x % 97).as_bytes(),
            );
        }
        let mut b = a.clone();
        let at = a.len() / 10;
        b.splice(at..at + 5, b"XXXXXXXXXXX".iter().copied());
        let (za, zb) = (gzip_rsyncable(&a), gzip_rsyncable(&b));
        // Same text back.
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&zb[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, b);
        // Beyond the change the compressed bytes are the same to the last (each stretch is
        // a gzip member with its own CRC): at least 80% of the output.
        let (ea, eb) = (&za[..], &zb[..]);
        let common = ea
            .iter()
            .rev()
            .zip(eb.iter().rev())
            .take_while(|(p, q)| p == q)
            .count();
        assert!(
            common * 10 >= ea.len() * 8,
            "{common} of {} compressed bytes in common",
            ea.len()
        );
        // Plain gzip of the same texts has next to nothing in common.
        let plain = |t: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(t).unwrap();
            e.finish().unwrap()
        };
        let (pa, pb) = (plain(&a), plain(&b));
        let plain_common = pa[..pa.len() - 8]
            .iter()
            .rev()
            .zip(pb[..pb.len() - 8].iter().rev())
            .take_while(|(p, q)| p == q)
            .count();
        assert!(plain_common * 10 < pa.len(), "{plain_common}");
    }

    #[test]
    fn filter_keeps_the_site_database_and_renames_it() {
        let dump = "SET client_encoding = 'UTF8';\nCREATE ROLE fossy;\nALTER ROLE fossy WITH LOGIN;\nCREATE ROLE newbie;\nALTER ROLE newbie WITH LOGIN;\n\
-- Database \"template1\" dump\n\\connect template1\nCREATE TABLE junk (a int);\n\
-- Database \"fossology\" dump\nCREATE DATABASE fossology WITH TEMPLATE = template0 ENCODING = 'UTF8';\nALTER DATABASE fossology OWNER TO fossy;\n\\connect fossology\n\
COPY public.t (a) FROM stdin;\n-- Database \"x\" dump\n\\.\nSELECT 1;\n-- Database \"postgres\" dump\nCREATE TABLE other (a int);\n";
        let mut f = Filter::new("fossology", "scratch", ["newbie".to_string()].into());
        let out: String = dump
            .split_inclusive('\n')
            .filter_map(|l| f.line(l.as_bytes()))
            .map(|v| String::from_utf8(v).unwrap())
            .collect();
        assert_eq!(
            out,
            "SET client_encoding = 'UTF8';\nCREATE ROLE newbie;\nALTER ROLE newbie WITH LOGIN;\nALTER DATABASE \"scratch\" OWNER TO fossy;\n\\connect -reuse-previous=on \"dbname='scratch'\"\nCOPY public.t (a) FROM stdin;\n-- Database \"x\" dump\n\\.\nSELECT 1;\n"
        );
    }

    #[test]
    fn idents() {
        assert_eq!(leading_ident("fossy;"), Some(("fossy".into(), ";")));
        assert_eq!(leading_ident("\"a\"\"b\" x"), Some(("a\"b".into(), " x")));
    }

    #[test]
    fn spool_folders_of_dead_runs_are_swept_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id();
        c.wait().unwrap();
        let me = std::process::id();
        for name in [
            format!("holdfast-dump.{dead}.aa"),
            format!("holdfast-dump.{me}.bb"),
            "holdfast-dump.1.cc".to_string(),
            "other".to_string(),
        ] {
            std::fs::create_dir(d.path().join(&name)).unwrap();
            std::fs::write(d.path().join(name).join("x.sql.gz"), "secret").unwrap();
        }
        sweep_spool(d.path());
        let mut left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            format!("holdfast-dump.{me}.bb"),
            "holdfast-dump.1.cc".to_string(),
            "other".to_string(),
        ];
        want.sort();
        assert_eq!(left, want);
    }
}
