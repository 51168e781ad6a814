//! Reading the client files defensively.

use crate::{BackupEnded, BackupStarted, Client, CustomSchedule, Schedule, SchedulerFile};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not well-formed XML: {0}")]
    Xml(String),
    #[error("root element is <{found}>, expected <{expected}>")]
    Root {
        found: String,
        expected: &'static str,
    },
    #[error("<{0}> is missing")]
    Missing(&'static str),
    #[error("<{tag}> has an unreadable value {value:?}")]
    Value { tag: &'static str, value: String },
}

type Result<T> = std::result::Result<T, ParseError>;

fn doc(text: &str) -> Result<roxmltree::Document<'_>> {
    roxmltree::Document::parse(text.trim_start_matches('\u{feff}'))
        .map_err(|e| ParseError::Xml(e.to_string()))
}

fn root<'a>(d: &'a roxmltree::Document, expected: &'static str) -> Result<roxmltree::Node<'a, 'a>> {
    let r = d.root_element();
    if r.tag_name().name() != expected {
        return Err(ParseError::Root {
            found: r.tag_name().name().to_string(),
            expected,
        });
    }
    Ok(r)
}

fn child<'a>(n: roxmltree::Node<'a, 'a>, tag: &str) -> Option<roxmltree::Node<'a, 'a>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == tag)
}

fn text(n: roxmltree::Node, tag: &'static str) -> Result<String> {
    child(n, tag)
        .map(|c| c.text().unwrap_or("").trim().to_string())
        .ok_or(ParseError::Missing(tag))
}

fn client(n: roxmltree::Node) -> Client {
    match child(n, "client") {
        None => Client::default(),
        Some(c) => Client {
            identifier: text(c, "identifier").unwrap_or_default(),
            version: text(c, "version").unwrap_or_default(),
            operating_system: text(c, "operatingsystem").unwrap_or_default(),
        },
    }
}

/// Parses a timezone offset the way the clients write it, normalising their mistakes:
/// `-00:00` is UTC, `+05:450` (the Perl client's 5.75 h) is `+05:45`, and an offset outside
/// +-14 h (e.g. `-23:00` near midnight) is folded back into range by whole days. sepiola
/// computes the offset in an unsigned 32-bit integer (`getTimezoneOffset` in
/// `backup_thread.cc`), so west of UTC it writes 2^32 less the offset, in hours and
/// truncated minutes (`+1193041:28` for UTC-5): that wrap is undone, to the nearest quarter
/// hour.
pub fn offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        // By bytes only when they are all ASCII: `€1` is four bytes too.
        None if rest.len() == 4 && rest.is_ascii() => (&rest[..2], &rest[2..]),
        None => (rest, "0"),
    };
    let h: i64 = h.trim().parse().ok()?;
    let mut m: i64 = m.trim().parse::<i32>().ok()?.into();
    if m >= 60 && m % 6 == 0 {
        // The Perl client writes the decimal digits of its hour offset times 6 as the
        // minutes: 5.75 h (Kathmandu) becomes `+05:450`, 5.5 h `+05:30`. Read the digits back
        // as a fraction of an hour: 450 / 6 = 75 -> 0.75 h -> 45 minutes.
        let digits = m / 6;
        let scale = 10i64.pow(digits.to_string().len() as u32);
        m = (digits * 60 + scale / 2) / scale;
    }
    if !(0..60).contains(&m) {
        return None;
    }
    if let Some(secs) = (sign == 1).then(|| sepiola_west(h, m)).flatten() {
        return FixedOffset::east_opt(secs);
    }
    // Whole days drop out of the fold anyway; dropping them first keeps the sum small.
    let mut secs = sign * (h % 24 * 3600 + m * 60);
    while secs > 14 * 3600 {
        secs -= 24 * 3600;
    }
    while secs < -14 * 3600 {
        secs += 24 * 3600;
    }
    FixedOffset::east_opt(secs.try_into().ok()?)
}

/// sepiola's offset west of UTC, `2^32 - seconds` written as hours and truncated minutes:
/// the seconds east (negative), rounded to a quarter hour, when the value is one.
fn sepiola_west(h: i64, m: i64) -> Option<i32> {
    const WRAP: i64 = 1 << 32;
    // The truncated seconds are half a minute on average.
    let wrapped = h.checked_mul(3600)?.checked_add(m * 60 + 30)? - WRAP;
    if !(-14 * 3600..0).contains(&wrapped) {
        return None;
    }
    let quarters = (wrapped as f64 / 900.0).round() as i64;
    i32::try_from(quarters * 900).ok()
}

/// Parses an ISO 8601 date with an offset, tolerating the clients' wrong offsets.
pub fn date(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        let secs = d.offset().local_minus_utc();
        if secs.abs() <= 14 * 3600 {
            return Some(d);
        }
        // chrono accepts up to +-24 h; keep the local time and fold the offset back.
        let fixed = offset(&d.offset().to_string())?;
        return fixed.from_local_datetime(&d.naive_local()).single();
    }
    // Split off the offset by hand: the last '+' or '-' after the time part, or 'Z'.
    let t = s.find('T').or_else(|| s.find(' '))?;
    let (local, off) = match s[t..].rfind(['+', '-']) {
        Some(i) => (&s[..t + i], &s[t + i..]),
        None => match s.strip_suffix(['Z', 'z']) {
            Some(l) => (l, "Z"),
            None => (s, "Z"),
        },
    };
    let local = local.replace(' ', "T");
    let naive = NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M"))
        .ok()?;
    let off = offset(off)?;
    off.from_local_datetime(&naive).single()
}

fn number(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t.trim_start_matches('0');
    if t.is_empty() {
        return s
            .trim()
            .chars()
            .all(|c| c == '0')
            .then_some(0)
            .filter(|_| !s.trim().is_empty());
    }
    t.parse().ok()
}

pub fn backup_started(xml: &str) -> Result<BackupStarted> {
    started(xml, None)
}

/// Like [`backup_started`], but an unreadable `<startdate>` becomes `fallback` (the caller
/// passes the file's modification time, as the spec asks).
pub fn backup_started_or(xml: &str, fallback: DateTime<FixedOffset>) -> Result<BackupStarted> {
    started(xml, Some(fallback))
}

fn started(xml: &str, fallback: Option<DateTime<FixedOffset>>) -> Result<BackupStarted> {
    let d = doc(xml)?;
    let r = root(&d, "backup_started")?;
    let raw = text(r, "startdate")?;
    Ok(BackupStarted {
        start: date(&raw).or(fallback).ok_or(ParseError::Value {
            tag: "startdate",
            value: raw,
        })?,
        id: text(r, "id")?,
        client: client(r),
    })
}

pub fn backup_ended(xml: &str) -> Result<BackupEnded> {
    ended(xml, None)
}

/// Like [`backup_ended`], but an unreadable `<enddate>` becomes `fallback` (the file's mtime).
pub fn backup_ended_or(xml: &str, fallback: DateTime<FixedOffset>) -> Result<BackupEnded> {
    ended(xml, Some(fallback))
}

fn ended(xml: &str, fallback: Option<DateTime<FixedOffset>>) -> Result<BackupEnded> {
    let d = doc(xml)?;
    let r = root(&d, "backup_ended")?;
    let raw = text(r, "enddate")?;
    let success = text(r, "success")?;
    Ok(BackupEnded {
        end: date(&raw).or(fallback).ok_or(ParseError::Value {
            tag: "enddate",
            value: raw,
        })?,
        id: text(r, "id")?,
        success: match number(&success) {
            Some(0) => false,
            Some(_) => true,
            None => match success.to_ascii_lowercase().as_str() {
                "true" | "yes" => true,
                "false" | "no" => false,
                _ => {
                    return Err(ParseError::Value {
                        tag: "success",
                        value: success,
                    })
                }
            },
        },
        client: client(r),
    })
}

/// Numbers of every element child (whatever its tag, e.g. `minute_selected`), or `None`
/// when the list says "every" (`*`).
/// The values a schedule list holds, those no date or time can match left out (as before,
/// they never matched): a client file of thousands of hours cannot make the plan loop over
/// them for every day checked.
fn values(n: roxmltree::Node, tag: &'static str) -> Result<Option<Vec<u32>>> {
    let range = match tag {
        "minutes" => 0..=59,
        "hours" => 0..=23,
        "days_of_month" => 1..=31,
        "months" => 1..=12,
        "days_of_week" => 1..=7,
        _ => 0..=u32::MAX,
    };
    let mut out = Vec::new();
    for c in n.children().filter(|c| c.is_element()) {
        let t = c.text().unwrap_or("").trim();
        if t == "*" {
            return Ok(None);
        }
        let v = number(t).ok_or(ParseError::Value {
            tag,
            value: t.to_string(),
        })?;
        if range.contains(&v) {
            out.push(v);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

pub fn scheduler(xml: &str) -> Result<SchedulerFile> {
    let d = doc(xml)?;
    let r = root(&d, "online_backup_schedule")?;
    let schedule = if child(r, "no_schedule").is_some() {
        Schedule::None
    } else if let Some(s) = child(r, "backup_after_startup") {
        let raw = text(s, "minutes_after_startup")?;
        Schedule::AfterStartup {
            minutes: number(&raw).ok_or(ParseError::Value {
                tag: "minutes_after_startup",
                value: raw,
            })?,
        }
    } else if let Some(c) = child(r, "custom_online_backup") {
        let get = |tag: &'static str| -> Result<Option<Vec<u32>>> {
            match child(c, tag) {
                Some(n) => values(n, tag),
                None => Ok(None),
            }
        };
        let tz_raw = text(c, "timezone").unwrap_or_default();
        Schedule::Custom(CustomSchedule {
            minutes: get("minutes")?.unwrap_or_else(|| vec![0]),
            hours: get("hours")?.ok_or(ParseError::Missing("hours"))?,
            days_of_month: get("days_of_month")?,
            months: get("months")?,
            days_of_week: get("days_of_week")?,
            timezone: if tz_raw.is_empty() {
                FixedOffset::east_opt(0).unwrap()
            } else {
                offset(&tz_raw).ok_or(ParseError::Value {
                    tag: "timezone",
                    value: tz_raw,
                })?
            },
        })
    } else {
        return Err(ParseError::Missing(
            "no_schedule|backup_after_startup|custom_online_backup",
        ));
    };
    Ok(SchedulerFile {
        schedule,
        client: client(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CustomSchedule;

    fn c() -> Client {
        Client {
            identifier: "holdfast".into(),
            version: "0.1.0".into(),
            operating_system: "Linux".into(),
        }
    }

    /// A client file is the account's to write: bytes no client writes are an error, never a
    /// panic that would stop the warning run for every account.
    #[test]
    fn a_non_ascii_offset_is_malformed_not_a_panic() {
        assert_eq!(offset("€1"), None);
        assert_eq!(offset("+€1"), None);
        let sched = "<online_backup_schedule><custom_online_backup><hours><hour_selected>2\
                     </hour_selected></hours><timezone>€1</timezone></custom_online_backup>\
                     </online_backup_schedule>";
        assert!(scheduler(sched).is_err());
        let started = "<backup_started><startdate>2026-11-21T02:00:00+€1</startdate>\
                       <id>1</id></backup_started>";
        assert!(backup_started(started).is_err());
    }

    #[test]
    fn values_no_time_can_match_are_left_out_of_a_schedule() {
        let mut hours = String::new();
        for h in [2, 25, 4000, 23] {
            hours.push_str(&format!("<hour_selected>{h}</hour_selected>"));
        }
        let sched = format!(
            "<online_backup_schedule><custom_online_backup><hours>{hours}</hours>\
             <minutes><minute_selected>61</minute_selected><minute_selected>5</minute_selected>\
             </minutes><days_of_week><week_day>0</week_day><week_day>7</week_day>\
             </days_of_week></custom_online_backup></online_backup_schedule>"
        );
        let Schedule::Custom(c) = scheduler(&sched).unwrap().schedule else {
            panic!("a custom schedule");
        };
        assert_eq!(c.hours, vec![2, 23]);
        assert_eq!(c.minutes, vec![5]);
        assert_eq!(c.days_of_week, Some(vec![7]));
    }

    #[test]
    fn round_trip_all_three_files() {
        let start = date("2026-11-22T02:00:05+01:00").unwrap();
        let s = BackupStarted {
            start,
            id: "42".into(),
            client: c(),
        };
        assert_eq!(backup_started(&s.to_xml()).unwrap(), s);
        let e = BackupEnded {
            end: start,
            id: "42".into(),
            success: false,
            client: c(),
        };
        assert_eq!(backup_ended(&e.to_xml()).unwrap(), e);
        let sch = SchedulerFile {
            schedule: Schedule::Custom(CustomSchedule {
                minutes: vec![30],
                hours: vec![2],
                days_of_month: None,
                months: None,
                days_of_week: Some(vec![1, 5]),
                timezone: offset("+02:00").unwrap(),
            }),
            client: c(),
        };
        assert_eq!(scheduler(&sch.to_xml()).unwrap(), sch);
    }

    #[test]
    fn sepiolas_wrapped_offsets_west_of_utc_fold_without_overflow() {
        // sepiola's `uint` offset west of UTC: UTC-5, UTC-10 and UTC-3:30 as it writes them
        // (2^32 - 18000 s = 1193041.47 h, and so on), read as the client's own offset.
        let hm = |h: i32, m: i32| FixedOffset::east_opt(h * 3600 + h.signum() * m * 60);
        assert_eq!(offset("+1193041:28"), hm(-5, 0));
        assert_eq!(offset("+1193036:28"), hm(-10, 0));
        assert_eq!(offset("+1193042:58"), hm(-3, 30));
        assert_eq!(offset("+1193045:28"), hm(-1, 0));
        assert_eq!(
            date("2026-11-21T02:00:00+1193041:28").unwrap().to_rfc3339(),
            "2026-11-21T02:00:00-05:00"
        );
        // Bigger still: whole days drop out, or the value is unreadable; never a panic.
        assert_eq!(offset("-9223372036854775807:00"), hm(-7, 0));
        assert_eq!(offset("+99999999999999999999:00"), None);
        // the Perl client's fraction rule on a huge minute value: .357913941 h
        assert_eq!(offset("+05:2147483646"), hm(5, 21));
    }

    #[test]
    fn survives_client_quirks() {
        assert_eq!(offset("-23:00"), FixedOffset::east_opt(3600));
        assert_eq!(offset("-00:00"), FixedOffset::east_opt(0));
        // the Perl client's fractional hours: Kathmandu, India, Chatham, Newfoundland
        assert_eq!(offset("+05:450"), FixedOffset::east_opt(5 * 3600 + 45 * 60));
        assert_eq!(offset("+05:30"), FixedOffset::east_opt(5 * 3600 + 30 * 60));
        assert_eq!(
            offset("+12:450"),
            FixedOffset::east_opt(12 * 3600 + 45 * 60)
        );
        assert_eq!(
            offset("-03:30"),
            FixedOffset::east_opt(-(3 * 3600 + 30 * 60))
        );
        assert_eq!(
            date("2026-11-21T02:00:00+05:450").unwrap().to_rfc3339(),
            "2026-11-21T02:00:00+05:45"
        );
        let k = "<online_backup_schedule><custom_online_backup><minutes><minute_selected>0</minute_selected></minutes><hours><hour_selected>20</hour_selected></hours><timezone>+05:450</timezone></custom_online_backup></online_backup_schedule>";
        let Schedule::Custom(ks) = scheduler(k).unwrap().schedule else {
            panic!()
        };
        assert_eq!(ks.timezone.local_minus_utc(), 5 * 3600 + 45 * 60);
        assert_eq!(
            date("2013-02-05T23:30:00-23:00")
                .unwrap()
                .offset()
                .local_minus_utc(),
            3600
        );
        assert!(date("garbage").is_none());
        let x = "<online_backup_schedule><custom_online_backup><minutes><minute_selected>05</minute_selected></minutes><hours><hour_selected>09</hour_selected></hours><days_of_week><week_day>07</week_day></days_of_week><timezone>+01:00</timezone></custom_online_backup></online_backup_schedule>";
        let s = scheduler(x).unwrap();
        let Schedule::Custom(cs) = s.schedule else {
            panic!()
        };
        assert_eq!(
            (cs.minutes, cs.hours, cs.days_of_week),
            (vec![5], vec![9], Some(vec![7]))
        );
        assert!(matches!(
            backup_ended("<backup_ended><enddate>2013-02-0"),
            Err(ParseError::Xml(_))
        ));
        let garbage = "<backup_started><startdate>2013-02-05T23:30:00+xx:yy</startdate><id>7</id></backup_started>";
        assert!(backup_started(garbage).is_err());
        let mtime = date("2013-02-05T22:31:00+00:00").unwrap();
        assert_eq!(backup_started_or(garbage, mtime).unwrap().start, mtime);
        assert!(matches!(
            backup_started("<backup_ended/>"),
            Err(ParseError::Root { .. })
        ));
    }
}
