//! When a client planned to run: the instants a `scheduler.xml` promises between two moments.
//!
//! A custom schedule is a small cron: the selected minutes and hours on every day that matches
//! the month, day-of-month and weekday lists (all lists must match; an absent list means
//! "every"), in the schedule's own fixed offset. `backup_after_startup` has no clock times:
//! holdfast counts one planned run per full 24 hours (a computer that is used starts at least
//! once a day). `no_schedule` plans nothing, so a manual client never misses a run.

use crate::{CustomSchedule, Schedule};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// Longest span a plan is expanded over; older gaps count as this many days.
pub const MAX_DAYS: i64 = 3660;

/// Planned runs of `s` in the half-open span `(from, to]`, oldest first.
pub fn custom_runs(
    s: &CustomSchedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    if to <= from {
        return out;
    }
    let from = from.max(to - Duration::days(MAX_DAYS));
    let tz = s.timezone;
    // One day of margin on each side: the offset may move the local date.
    let first = from.with_timezone(&tz).date_naive() - Duration::days(1);
    let last = to.with_timezone(&tz).date_naive() + Duration::days(1);
    let mut day = first;
    while day <= last {
        if day_matches(s, day) {
            for &h in &s.hours {
                for &m in &s.minutes {
                    let Some(naive) = day.and_hms_opt(h, m, 0) else {
                        continue;
                    };
                    let Some(t) = tz.from_local_datetime(&naive).single() else {
                        continue;
                    };
                    let t = t.with_timezone(&Utc);
                    if t > from && t <= to {
                        out.push(t);
                    }
                }
            }
        }
        day += Duration::days(1);
    }
    out.sort_unstable();
    out
}

/// How many planned runs fall in a span, and the first and last of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Runs {
    pub count: u64,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

impl Runs {
    fn add(&mut self, n: u64, first: DateTime<Utc>, last: DateTime<Utc>) {
        self.count += n;
        self.first = Some(self.first.map_or(first, |f| f.min(first)));
        self.last = Some(self.last.map_or(last, |l| l.max(last)));
    }
}

/// What [`planned_runs`] says about `(from, to]`, counted without listing the instants: a
/// schedule of every minute over [`MAX_DAYS`] is five million of them, and the client
/// writes the schedule. A day wholly inside the span counts its clock times at once; only
/// the days at the edges are looked at time by time.
pub fn count_runs(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Runs {
    let mut r = Runs::default();
    let c = match s {
        Schedule::None => return r,
        Schedule::AfterStartup { .. } => {
            let days = (to - from).num_days().clamp(0, MAX_DAYS);
            if days > 0 {
                r.add(
                    days as u64,
                    from + Duration::days(1),
                    from + Duration::days(days),
                );
            }
            return r;
        }
        Schedule::Custom(c) => c,
    };
    if to <= from {
        return r;
    }
    let from = from.max(to - Duration::days(MAX_DAYS));
    let tz = c.timezone;
    let at = |day: NaiveDate, h: u32, m: u32| {
        let naive = day.and_hms_opt(h, m, 0)?;
        Some(tz.from_local_datetime(&naive).single()?.with_timezone(&Utc))
    };
    let hours: Vec<u32> = c.hours.iter().copied().filter(|h| *h < 24).collect();
    let minutes: Vec<u32> = c.minutes.iter().copied().filter(|m| *m < 60).collect();
    let (Some(h0), Some(h1), Some(m0), Some(m1)) = (
        hours.iter().min(),
        hours.iter().max(),
        minutes.iter().min(),
        minutes.iter().max(),
    ) else {
        return r;
    };
    let per_day = (hours.len() * minutes.len()) as u64;
    let first = from.with_timezone(&tz).date_naive() - Duration::days(1);
    let last = to.with_timezone(&tz).date_naive() + Duration::days(1);
    let mut day = first;
    while day <= last {
        if day_matches(c, day) {
            match (at(day, *h0, *m0), at(day, *h1, *m1)) {
                (Some(a), Some(b)) if a > from && b <= to => r.add(per_day, a, b),
                _ => {
                    for &h in &hours {
                        for &m in &minutes {
                            if let Some(t) = at(day, h, m).filter(|t| *t > from && *t <= to) {
                                r.add(1, t, t);
                            }
                        }
                    }
                }
            }
        }
        day += Duration::days(1);
    }
    r
}

fn day_matches(s: &CustomSchedule, day: NaiveDate) -> bool {
    let ok = |list: &Option<Vec<u32>>, v: u32| list.as_ref().is_none_or(|l| l.contains(&v));
    ok(&s.months, day.month())
        && ok(&s.days_of_month, day.day())
        && ok(&s.days_of_week, day.weekday().number_from_monday())
}

/// Planned runs of any schedule in `(from, to]`: the instants for a custom schedule, one
/// per full day for `backup_after_startup`, none for `no_schedule`.
pub fn planned_runs(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    match s {
        Schedule::None => Vec::new(),
        Schedule::AfterStartup { .. } => {
            let days = (to - from).num_days().clamp(0, MAX_DAYS);
            (1..=days).map(|d| from + Duration::days(d)).collect()
        }
        Schedule::Custom(c) => custom_runs(c, from, to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{date, offset};

    fn utc(s: &str) -> DateTime<Utc> {
        date(s).unwrap().with_timezone(&Utc)
    }

    fn daily(hours: Vec<u32>, dow: Option<Vec<u32>>, tz: &str) -> CustomSchedule {
        CustomSchedule {
            minutes: vec![30],
            hours,
            days_of_month: None,
            months: None,
            days_of_week: dow,
            timezone: offset(tz).unwrap(),
        }
    }

    #[test]
    fn daily_runs_in_local_time() {
        // 02:30 at +02:00 is 00:30 UTC.
        let s = daily(vec![2], None, "+02:00");
        let runs = custom_runs(&s, utc("2026-11-01T00:00:00Z"), utc("2026-11-04T00:30:00Z"));
        assert_eq!(
            runs,
            vec![
                utc("2026-11-01T00:30:00Z"),
                utc("2026-11-02T00:30:00Z"),
                utc("2026-11-03T00:30:00Z"),
                utc("2026-11-04T00:30:00Z"),
            ]
        );
        // The start instant itself is excluded: a run at exactly `from` has happened.
        let runs = custom_runs(&s, utc("2026-11-01T00:30:00Z"), utc("2026-11-01T23:00:00Z"));
        assert!(runs.is_empty());
    }

    #[test]
    fn weekdays_and_offset_across_midnight() {
        // Mondays and Fridays 23:30 at -05:00: 04:30 UTC on Tuesday and Saturday.
        let s = daily(vec![23], Some(vec![1, 5]), "-05:00");
        // 2026-11-02 is a Monday.
        let runs = custom_runs(&s, utc("2026-11-02T00:00:00Z"), utc("2026-11-09T00:00:00Z"));
        assert_eq!(
            runs,
            vec![utc("2026-11-03T04:30:00Z"), utc("2026-11-07T04:30:00Z")]
        );
    }

    #[test]
    fn after_startup_is_one_per_day_and_none_is_nothing() {
        let from = utc("2026-11-01T08:00:00Z");
        let to = utc("2026-11-04T07:59:00Z");
        assert_eq!(
            planned_runs(&Schedule::AfterStartup { minutes: 5 }, from, to).len(),
            2
        );
        assert!(planned_runs(&Schedule::None, from, to).is_empty());
        assert!(planned_runs(&Schedule::AfterStartup { minutes: 5 }, to, from).is_empty());
    }

    #[test]
    fn counting_agrees_with_listing() {
        let every = CustomSchedule {
            minutes: (0..60).collect(),
            hours: (0..24).collect(),
            days_of_month: None,
            months: None,
            days_of_week: None,
            timezone: offset("+05:45").unwrap(),
        };
        let mut odd = daily(vec![23, 0, 12], Some(vec![1, 5, 7]), "-09:30");
        odd.minutes = vec![59, 0, 15, 15];
        odd.days_of_month = Some(vec![1, 2, 3, 13, 29, 31]);
        let spans = [
            ("2026-11-01T00:00:00Z", "2026-11-04T00:30:00Z"),
            ("2026-11-01T00:30:00Z", "2026-11-01T23:00:00Z"),
            ("2024-02-27T13:17:00Z", "2024-03-02T04:01:00Z"),
            ("2025-01-01T00:00:00Z", "2025-12-31T23:59:00Z"),
            ("2026-11-04T00:00:00Z", "2026-11-01T00:00:00Z"),
        ];
        for s in [
            Schedule::Custom(every),
            Schedule::Custom(odd),
            Schedule::Custom(daily(vec![2], None, "+02:00")),
            Schedule::AfterStartup { minutes: 5 },
            Schedule::None,
        ] {
            for (a, b) in spans {
                let (a, b) = (utc(a), utc(b));
                let v = planned_runs(&s, a, b);
                let want = Runs {
                    count: v.len() as u64,
                    first: v.first().copied(),
                    last: v.last().copied(),
                };
                assert_eq!(count_runs(&s, a, b), want, "{s:?} {a} {b}");
            }
        }
    }

    #[test]
    fn long_gaps_are_capped() {
        let s = daily(vec![1], None, "+00:00");
        let runs = custom_runs(&s, utc("1990-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z"));
        assert!(runs.len() as i64 <= MAX_DAYS + 1 && runs.len() as i64 >= MAX_DAYS - 1);
    }
}
