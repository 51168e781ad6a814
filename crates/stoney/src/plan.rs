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
    fn long_gaps_are_capped() {
        let s = daily(vec![1], None, "+00:00");
        let runs = custom_runs(&s, utc("1990-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z"));
        assert!(runs.len() as i64 <= MAX_DAYS + 1 && runs.len() as i64 >= MAX_DAYS - 1);
    }
}
