//! Mail templates: minijinja files, one per task, audience and language, named
//! `<task>.<audience>.<language>.txt` (e.g. `quota.customer.de.txt`).
//!
//! A template renders to a `Subject:` line, an empty line and the plain-text body. The
//! lookup goes through three places, first hit that renders wins:
//! 1. the account's reseller theme, `<themes_dir>/<theme>/templates/services/backup/`;
//! 2. the default reseller's theme folder;
//! 3. the templates built into holdfast (English and German).
//!
//! In each place the languages tried are the full tag (`de-CH`), its primary subtag (`de`),
//! then the configured default and `en`. A template that fails to parse or render (unknown
//! variable, syntax error, no subject) is reported and the next one is tried, so a broken
//! reseller file never stops a mail. Variables are documented in `docs/templates.md`.

use crate::model::{Audience, Task};
use holdfast_server::safe;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the templates of a reseller live under its theme folder.
pub const THEME_SUBDIR: &str = "templates/services/backup";

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// The templates compiled into holdfast.
pub const BUILTIN: &[(&str, &str)] = builtin![
    "quota.customer.en.txt",
    "quota.reseller.en.txt",
    "schedule.customer.en.txt",
    "schedule.reseller.en.txt",
    "unsuccessful.customer.en.txt",
    "unsuccessful.reseller.en.txt",
    "upgrade.customer.en.txt",
    "upgrade.reseller.en.txt",
    "nobackup.customer.en.txt",
    "nobackup.reseller.en.txt",
    "quota.customer.de.txt",
    "quota.reseller.de.txt",
    "schedule.customer.de.txt",
    "schedule.reseller.de.txt",
    "unsuccessful.customer.de.txt",
    "unsuccessful.reseller.de.txt",
    "upgrade.customer.de.txt",
    "upgrade.reseller.de.txt",
    "nobackup.customer.de.txt",
    "nobackup.reseller.de.txt",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
    /// The file used (or `builtin:<name>`), for logs and reports.
    pub source: String,
}

/// A template that was found but could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub source: String,
    pub message: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "template {} is broken, fell back: {}",
            self.source, self.message
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Templates {
    /// Root of the synced theme folders (`/var/www/selfcare/htdocs/themes`).
    pub themes_dir: Option<PathBuf>,
    /// Reseller uid -> theme folder name; a reseller not listed uses a folder named by its uid.
    pub themes: BTreeMap<String, String>,
    /// Reseller whose templates are the default for every reseller.
    pub default_reseller: Option<String>,
    pub default_language: String,
}

/// Candidate languages for a `preferredLanguage` value, most specific first.
pub fn languages(pref: Option<&str>, default: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim().replace('_', "-");
        if !s.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&s)) {
            out.push(s);
        }
    };
    if let Some(p) = pref {
        push(p);
        push(&p.split(['-', '_']).next().unwrap_or("").to_lowercase());
    }
    push(default);
    push("en");
    out
}

fn file_name(task: Task, audience: Audience, lang: &str) -> String {
    format!("{}.{}.{lang}.txt", task.keyword(), audience.name())
}

/// Renders a template source: the `Subject:` line, an empty line, the body.
pub fn render_source(name: &str, source: &str, vars: &Value) -> Result<(String, String), String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template(name, source).map_err(|e| e.to_string())?;
    let out = env
        .get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(vars)))
        .map_err(|e| {
            let mut m = e.to_string();
            if let Some(d) = e.detail() {
                m = format!("{m} ({d})");
            }
            m
        })?;
    let out = out.trim_start_matches(['\n', '\r']);
    let (first, rest) = out.split_once('\n').unwrap_or((out, ""));
    let subject = first
        .strip_prefix("Subject:")
        .ok_or("the first line must be `Subject: ...`")?
        .trim()
        .to_string();
    if subject.is_empty() {
        return Err("the subject is empty".into());
    }
    let body = rest.trim_start_matches(['\r', '\n']).trim_end().to_string() + "\n";
    Ok((subject, body))
}

impl Templates {
    /// The folders searched for a reseller, in order (existing or not).
    pub fn folders(&self, reseller: Option<&str>) -> Vec<PathBuf> {
        let Some(root) = &self.themes_dir else {
            return Vec::new();
        };
        let theme = |r: &str| {
            root.join(self.themes.get(r).map(String::as_str).unwrap_or(r))
                .join(THEME_SUBDIR)
        };
        let mut out = Vec::new();
        if let Some(r) = reseller {
            out.push(theme(r));
        }
        if let Some(d) = &self.default_reseller {
            let p = theme(d);
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// Renders the message for one task and audience; `broken` collects every template that
    /// was found but failed. `None` only if even the built-in template failed.
    pub fn render(
        &self,
        reseller: Option<&str>,
        task: Task,
        audience: Audience,
        language: Option<&str>,
        vars: &Value,
        broken: &mut Vec<Broken>,
    ) -> Option<Rendered> {
        let langs = languages(language, &self.default_language);
        let root = self.themes_dir.clone().unwrap_or_default();
        for dir in self.folders(reseller) {
            // synced from the self-care server: nothing below the themes root is followed
            let rel = dir.strip_prefix(&root).unwrap_or(&dir).to_path_buf();
            for l in &langs {
                let name = file_name(task, audience, l);
                let path = dir.join(&name);
                let source = path.display().to_string();
                let src = match safe::read_beneath(&root, &rel.join(&name), safe::FILE_CAP) {
                    Ok(r) => r.text(),
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => {
                        tracing::warn!("template {source} not used: {e}");
                        broken.push(Broken {
                            source,
                            message: e.to_string(),
                        });
                        continue;
                    }
                };
                match render_source(&source, &src, vars) {
                    Ok((subject, body)) => {
                        return Some(Rendered {
                            subject,
                            body,
                            source,
                        })
                    }
                    Err(message) => {
                        tracing::warn!("template {source} is broken, falling back: {message}");
                        broken.push(Broken { source, message });
                    }
                }
            }
        }
        for l in &langs {
            let name = file_name(task, audience, l);
            if let Some((_, src)) = BUILTIN.iter().find(|(n, _)| *n == name) {
                let source = format!("builtin:{name}");
                match render_source(&source, src, vars) {
                    Ok((subject, body)) => {
                        return Some(Rendered {
                            subject,
                            body,
                            source,
                        })
                    }
                    Err(message) => broken.push(Broken { source, message }),
                }
            }
        }
        None
    }
}

/// A complete set of variables for `task`, with example values: what `templates sync`
/// renders every synced template with, and what `docs/templates.md` lists.
pub fn sample_vars(task: Task, audience: Audience, resolved: bool) -> Value {
    let mut v = json!({
        "task": task.keyword(),
        "audience": audience.name(),
        "resolved": resolved,
        "since": "2026-11-18 04:00 UTC",
        "account": "4000123",
        "prefix": if task.per_prefix() { "laptop-anna" } else { "" },
        "customer": "4000050",
        "reseller": "4000000",
        "person": "Anna Muster",
        "server": "backup-01.example.org",
        "now": "2026-11-21 04:00 UTC",
        "language": "en",
    });
    let extra = match task {
        Task::Quota => json!({
            "quota": 10737418240u64, "quota_human": "10.0 GiB",
            "used": 9663676416u64, "used_human": "9.0 GiB",
            "backup_size": 8589934592u64, "snapshot_size": 1073741824u64,
            "free_human": "1.0 GiB", "percent": 90.0, "threshold": 85,
        }),
        Task::Schedule => json!({
            "misses": 3, "first_missed": "2026-11-18 01:00 UTC",
            "last_missed": "2026-11-20 01:00 UTC", "last_start": "2026-11-17 01:00 UTC",
            "days_since_start": 4, "schedule": "every day at 02:00 (UTC+01:00)",
            "threshold_numbers": 2, "threshold_days": 0,
        }),
        Task::Unsuccessful => json!({
            "reason": "failed", "run_id": "1234567", "failures": 2,
            "last_start": "2026-11-20 01:00 UTC", "last_end": "2026-11-20 01:20 UTC",
            "last_success": "2026-11-18 01:25 UTC", "days_since_success": 3,
            "threshold_numbers": 2, "threshold_days": 0,
        }),
        Task::Upgrade => json!({
            "client": "sepiola", "version": "2.1.0", "minimum": "2.4.0",
            "operating_system": "Windows 10",
        }),
        Task::Nobackup => json!({
            "created": "2026-11-01 09:00 UTC", "days": 20, "grace_days": 7,
        }),
    };
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

/// Renders every `*.txt` template in `dir` with sample variables (warning and resolved
/// versions); returns the ones that fail. Files not named `<task>.<audience>.<lang>.txt`
/// are reported too, since they would never be used.
pub fn check_folder(dir: &Path) -> Vec<Broken> {
    let mut out = Vec::new();
    let fd = match safe::open_root(dir) {
        Ok(fd) => fd,
        Err(e) if e.is_not_found() => return out,
        Err(e) => {
            out.push(Broken {
                source: dir.display().to_string(),
                message: e.to_string(),
            });
            return out;
        }
    };
    let Ok(files) = safe::entries(&fd, dir) else {
        return out;
    };
    for (name, _) in files {
        let p = dir.join(&name);
        let Some(name) = name.to_str().map(str::to_string) else {
            continue;
        };
        if !name.ends_with(".txt") {
            continue;
        }
        let source = p.display().to_string();
        let parts: Vec<&str> = name.trim_end_matches(".txt").splitn(3, '.').collect();
        let task = parts.first().and_then(|t| t.parse::<Task>().ok());
        let audience = match parts.get(1) {
            Some(&"customer") => Some(Audience::Customer),
            Some(&"reseller") => Some(Audience::Reseller),
            _ => None,
        };
        let (Some(task), Some(audience), Some(_)) = (task, audience, parts.get(2)) else {
            out.push(Broken {
                source,
                message: "name is not <task>.<customer|reseller>.<language>.txt".into(),
            });
            continue;
        };
        let src = match safe::read_at(&fd, std::ffi::OsStr::new(&name), &p, safe::FILE_CAP) {
            Ok(r) => r.text(),
            Err(e) => {
                out.push(Broken {
                    source,
                    message: e.to_string(),
                });
                continue;
            }
        };
        for resolved in [false, true] {
            if let Err(message) =
                render_source(&source, &src, &sample_vars(task, audience, resolved))
            {
                out.push(Broken {
                    source: source.clone(),
                    message,
                });
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_renders_both_ways() {
        for (name, src) in BUILTIN {
            let parts: Vec<&str> = name.split('.').collect();
            let task: Task = parts[0].parse().unwrap();
            let aud = if parts[1] == "customer" {
                Audience::Customer
            } else {
                Audience::Reseller
            };
            for resolved in [false, true] {
                let (s, b) = render_source(name, src, &sample_vars(task, aud, resolved))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!s.is_empty() && b.len() > 20, "{name}");
                assert!(!b.contains("{{") && !b.contains("{%"), "{name}");
            }
        }
        assert_eq!(BUILTIN.len(), 20);
    }

    #[test]
    fn builtins_print_no_none_and_no_english_in_german() {
        // the values a real run may leave empty: no customer, person or prefix, and the
        // times a client never uploaded
        let sparse = |task, aud, resolved| {
            let mut v = sample_vars(task, aud, resolved);
            let m = v.as_object_mut().unwrap();
            for k in ["customer", "person", "prefix", "operating_system"] {
                m.insert(k.into(), json!(""));
            }
            // (only *unsuccessful* may lack these: schedule always has a last start)
            for k in [
                "last_start",
                "last_end",
                "last_success",
                "days_since_success",
            ] {
                if task == Task::Unsuccessful {
                    m.insert(k.into(), Value::Null);
                }
            }
            v
        };
        const ENGLISH: [&str; 12] = [
            "quota",
            "schedule",
            "unsuccessful",
            "upgrade",
            "nobackup",
            "failed",
            "never_ended",
            "resolved",
            "account",
            "customer",
            "prefix",
            " the ",
        ];
        for (name, src) in BUILTIN {
            let parts: Vec<&str> = name.split('.').collect();
            let task: Task = parts[0].parse().unwrap();
            let aud = if parts[1] == "customer" {
                Audience::Customer
            } else {
                Audience::Reseller
            };
            for resolved in [false, true] {
                for reason in ["failed", "never_ended"] {
                    let mut vars = sparse(task, aud, resolved);
                    vars["reason"] = json!(reason);
                    let (s, b) = render_source(name, src, &vars).unwrap();
                    let all = format!("{s}\n{b}");
                    for bad in ["None", "none", "null", "()", " ,", "  "] {
                        assert!(
                            !all.contains(bad),
                            "{name} {resolved} prints {bad:?}:\n{all}"
                        );
                    }
                    if parts[2] == "de" {
                        let lower = all.to_lowercase();
                        for w in ENGLISH {
                            assert!(!lower.contains(w), "{name}: English {w:?} in:\n{all}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn language_candidates() {
        assert_eq!(languages(Some("de-CH"), "en"), vec!["de-CH", "de", "en"]);
        assert_eq!(
            languages(Some("fr_FR"), "de"),
            vec!["fr-FR", "fr", "de", "en"]
        );
        assert_eq!(languages(None, "en"), vec!["en"]);
    }

    #[test]
    fn reseller_overrides_default_and_broken_falls_back() {
        let t = tempfile::tempdir().unwrap();
        let r1 = t.path().join("selfcare.r1.org").join(THEME_SUBDIR);
        let def = t.path().join("4000000").join(THEME_SUBDIR);
        std::fs::create_dir_all(&r1).unwrap();
        std::fs::create_dir_all(&def).unwrap();
        std::fs::write(
            def.join("quota.customer.en.txt"),
            "Subject: Default {{ account }}\n\nDefault body {{ percent }}%\n",
        )
        .unwrap();
        std::fs::write(
            r1.join("quota.customer.de.txt"),
            "Subject: R1 {{ account }}\n\nR1 Text {{ used_human }}\n",
        )
        .unwrap();
        let tpl = Templates {
            themes_dir: Some(t.path().into()),
            themes: [("4000001".to_string(), "selfcare.r1.org".to_string())].into(),
            default_reseller: Some("4000000".into()),
            default_language: "en".into(),
        };
        let vars = sample_vars(Task::Quota, Audience::Customer, false);
        let mut broken = Vec::new();
        let r = tpl
            .render(
                Some("4000001"),
                Task::Quota,
                Audience::Customer,
                Some("de-CH"),
                &vars,
                &mut broken,
            )
            .unwrap();
        assert_eq!(
            (r.subject.as_str(), r.body.as_str()),
            ("R1 4000123", "R1 Text 9.0 GiB\n")
        );
        // English customer of the same reseller: the default reseller's template.
        let r = tpl
            .render(
                Some("4000001"),
                Task::Quota,
                Audience::Customer,
                Some("en-GB"),
                &vars,
                &mut broken,
            )
            .unwrap();
        assert_eq!(r.subject, "Default 4000123");
        assert_eq!(r.body, "Default body 90.0%\n");
        // Another reseller, reseller audience: nothing in the themes, built-in.
        let r = tpl
            .render(
                Some("4000009"),
                Task::Quota,
                Audience::Reseller,
                None,
                &vars,
                &mut broken,
            )
            .unwrap();
        assert_eq!(r.source, "builtin:quota.reseller.en.txt");
        assert!(broken.is_empty());
        // A typo in a variable: reported, and the default reseller's one is used.
        std::fs::write(
            r1.join("quota.customer.de.txt"),
            "Subject: {{ acount }}\n\nx\n",
        )
        .unwrap();
        let r = tpl
            .render(
                Some("4000001"),
                Task::Quota,
                Audience::Customer,
                Some("de"),
                &vars,
                &mut broken,
            )
            .unwrap();
        assert_eq!(r.subject, "Default 4000123");
        assert_eq!(broken.len(), 1);
        assert!(
            broken[0].source.ends_with("quota.customer.de.txt"),
            "{:?}",
            broken
        );
        assert!(broken[0].message.contains("undefined"), "{:?}", broken);
        let found = check_folder(&r1);
        assert_eq!(found.len(), 1);
        assert!(check_folder(&def).is_empty());
    }

    #[test]
    fn symlinked_templates_and_theme_folders_are_never_read() {
        let t = tempfile::tempdir().unwrap();
        let secret = t.path().join("secret.txt");
        std::fs::write(&secret, "Subject: root only\n\nSECRET\n").unwrap();
        let r1 = t.path().join("themes/r1").join(THEME_SUBDIR);
        std::fs::create_dir_all(&r1).unwrap();
        std::os::unix::fs::symlink(&secret, r1.join("quota.customer.en.txt")).unwrap();
        // a whole theme folder that is a link to another reseller's
        std::fs::create_dir_all(t.path().join("themes/r2")).unwrap();
        std::os::unix::fs::symlink(
            t.path().join("themes/r1/templates"),
            t.path().join("themes/r2/templates"),
        )
        .unwrap();
        let tpl = Templates {
            themes_dir: Some(t.path().join("themes")),
            themes: BTreeMap::new(),
            default_reseller: None,
            default_language: "en".into(),
        };
        let vars = sample_vars(Task::Quota, Audience::Customer, false);
        for r in ["r1", "r2"] {
            let mut broken = Vec::new();
            let out = tpl
                .render(
                    Some(r),
                    Task::Quota,
                    Audience::Customer,
                    None,
                    &vars,
                    &mut broken,
                )
                .unwrap();
            assert_eq!(out.source, "builtin:quota.customer.en.txt", "{r}");
            assert!(!out.body.contains("SECRET"));
            assert_eq!(broken.len(), 1, "{r}: {broken:?}");
            assert!(broken[0].message.contains("symlink"), "{broken:?}");
        }
        let b = check_folder(&r1);
        assert_eq!(b.len(), 1);
        assert!(b[0].message.contains("symlink"));
    }
}
