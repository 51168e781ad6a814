//! Who receives a warning: the plan's rules, in order.
//!
//! Customer side, the seed's words literally: only if `sstBackupWarningOn` is TRUE; then, if
//! the account has `mail` values AND its `sstNotificationWarningMedium` is `mail`, all of the
//! account's `mail` values; otherwise (no mail, another medium or none) all `mail` values of
//! the person in `sstBelongsToPersonUID`. Reseller side, independent of the customer's settings: if the
//! task's keyword is in the reseller's `sstNotificationWarning`, every `sstMailTo`. The sender
//! is the reseller's `sstMailFrom` (else the configured default). Every case that finds
//! nobody is a note for the log; nothing else fails.

use crate::model::{Account, Directory, Person, Reseller, Task};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    pub customer: Vec<String>,
    /// Language for the customer version: the account's, else the person's, else the reseller's.
    pub customer_language: Option<String>,
    /// The person's name for the greeting, when known.
    pub person_name: Option<String>,
    pub reseller: Vec<String>,
    pub reseller_language: Option<String>,
    pub from: Option<String>,
    /// Why a side gets nothing (for the log).
    pub notes: Vec<String>,
    /// A directory look-up failed: who should be told is not known, so nobody is, and the
    /// warning waits for a run that can tell.
    pub lookup_failed: Option<String>,
}

/// Applies the rules for one account and task. `reseller` is the account's reseller as the
/// caller looked it up (cached across accounts).
pub fn resolve(
    a: &Account,
    task: Task,
    reseller: Option<&Reseller>,
    dir: &dyn Directory,
) -> Recipients {
    let mut r = Recipients {
        from: reseller.and_then(|x| x.settings.mail_from.clone()),
        reseller_language: reseller.and_then(|x| x.settings.preferred_language.clone()),
        ..Default::default()
    };
    let uid = &a.uid;
    let on = a.warning_on == Some(true);
    let medium_mail = a
        .medium
        .as_deref()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("mail"));
    let own_mail = !a.mail.is_empty() && medium_mail;
    let needs_person = on && !own_mail;
    // The person is read when the account has no mail, and for the greeting and language.
    let person: Option<Person> = match a.person_uid.as_deref() {
        Some(p) => match dir.person(p) {
            Ok(found) => {
                if found.is_none() && needs_person {
                    r.notes.push(format!(
                        "account {uid}: person {p} (sstBelongsToPersonUID) is not in the directory"
                    ));
                }
                found
            }
            Err(e) => {
                r.lookup_failed = Some(format!("account {uid}: cannot look up person {p}: {e}"));
                None
            }
        },
        None => None,
    };
    r.person_name = person.as_ref().and_then(|p| p.cn.clone());
    r.customer_language = a
        .preferred_language
        .clone()
        .or_else(|| person.as_ref().and_then(|p| p.preferred_language.clone()))
        .or_else(|| r.reseller_language.clone());

    if !on {
        r.notes.push(format!(
            "account {uid}: customer not told about {task} (sstBackupWarningOn is not TRUE)"
        ));
    } else if own_mail {
        r.customer = a.mail.clone();
    } else {
        match (&a.person_uid, &person) {
            (None, _) => r.notes.push(format!(
                "account {uid}: {} and no sstBelongsToPersonUID: nobody to tell about {task}",
                if a.mail.is_empty() {
                    "no mail"
                } else {
                    "medium not mail"
                }
            )),
            // a missing person was noted at the lookup
            (Some(_), None) => {}
            (Some(p), Some(found)) if found.mail.is_empty() => r.notes.push(format!(
                "account {uid}: person {p} has no mail: nobody to tell about {task}"
            )),
            (Some(_), Some(found)) => r.customer = found.mail.clone(),
        }
    }

    match reseller {
        None => r.notes.push(format!(
            "account {uid}: no reseller entry ({}): reseller not told",
            a.reseller_uid
                .as_deref()
                .unwrap_or("no sstBelongsToResellerUID")
        )),
        Some(res) if res.wants(task.keyword()) => {
            if res.notifications.mail_to.is_empty() {
                r.notes.push(format!(
                    "reseller {}: wants {task} warnings but has no sstMailTo",
                    res.uid
                ));
            }
            r.reseller = res.notifications.mail_to.clone();
        }
        Some(_) => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use std::collections::BTreeMap;

    struct Mem(BTreeMap<String, Person>);
    impl Directory for Mem {
        fn accounts(&self) -> Result<Vec<Account>, String> {
            Ok(vec![])
        }
        fn person(&self, uid: &str) -> Result<Option<Person>, String> {
            Ok(self.0.get(uid).cloned())
        }
        fn reseller(&self, _: &str) -> Result<Option<Reseller>, String> {
            Ok(None)
        }
        fn set_last_successful(
            &self,
            _: &str,
            _: &[(String, DateTime<Utc>)],
        ) -> Result<(), String> {
            Ok(())
        }
        fn home(&self, _: &Account) -> Result<std::path::PathBuf, String> {
            Err("no homes here".into())
        }
    }

    fn dir() -> Mem {
        let mut m = BTreeMap::new();
        m.insert(
            "p1".into(),
            Person {
                uid: "p1".into(),
                mail: vec!["anna@x.org".into(), "anna@home.org".into()],
                preferred_language: Some("de-CH".into()),
                cn: Some("Anna".into()),
                ..Default::default()
            },
        );
        m.insert(
            "p2".into(),
            Person {
                uid: "p2".into(),
                ..Default::default()
            },
        );
        Mem(m)
    }

    fn acct() -> Account {
        Account {
            uid: "a1".into(),
            warning_on: Some(true),
            medium: Some("mail".into()),
            person_uid: Some("p1".into()),
            reseller_uid: Some("r1".into()),
            ..Default::default()
        }
    }

    fn reseller() -> Reseller {
        let mut r = Reseller {
            uid: "r1".into(),
            ..Default::default()
        };
        r.notifications.mail_to = vec!["Desk <desk@r.org>".into()];
        r.notifications.warnings = vec!["quota".into()];
        r.settings.mail_from = Some("Backup <backup@r.org>".into());
        r.settings.preferred_language = Some("en".into());
        r
    }

    #[test]
    fn the_plans_rules_in_order() {
        let d = dir();
        let res = reseller();
        // Own mail wins over the person's.
        let mut a = acct();
        a.mail = vec!["it@x.org".into()];
        let r = resolve(&a, Task::Quota, Some(&res), &d);
        assert_eq!(r.customer, vec!["it@x.org"]);
        assert_eq!(r.reseller, vec!["Desk <desk@r.org>"]);
        assert_eq!(r.from.as_deref(), Some("Backup <backup@r.org>"));
        assert_eq!(r.customer_language.as_deref(), Some("de-CH"));
        assert_eq!(r.person_name.as_deref(), Some("Anna"));
        // No own mail: the person's; reseller does not want schedule.
        let r = resolve(&acct(), Task::Schedule, Some(&res), &d);
        assert_eq!(r.customer, vec!["anna@x.org", "anna@home.org"]);
        assert!(r.reseller.is_empty());
        // Warnings off, or medium sms: customer gets nothing, reseller still does.
        let mut off = acct();
        off.warning_on = Some(false);
        let r = resolve(&off, Task::Quota, Some(&res), &d);
        assert!(r.customer.is_empty() && r.reseller.len() == 1);
        assert!(r.notes[0].contains("sstBackupWarningOn"));
        // medium sms or none, even with the account's own mail: the person's mail (seed)
        for medium in [Some("sms"), None] {
            let mut m = acct();
            m.mail = vec!["it@x.org".into()];
            m.medium = medium.map(Into::into);
            let r = resolve(&m, Task::Quota, Some(&res), &d);
            assert_eq!(
                r.customer,
                vec!["anna@x.org", "anna@home.org"],
                "{medium:?}"
            );
        }
        // Person without mail, missing person, no person at all: logged, nobody.
        for p in [Some("p2"), Some("ghost"), None] {
            let mut a = acct();
            a.person_uid = p.map(Into::into);
            let r = resolve(&a, Task::Quota, None, &d);
            assert!(r.customer.is_empty() && r.reseller.is_empty());
            assert_eq!(r.notes.len(), 2, "{p:?}: {:?}", r.notes);
        }
    }
}
