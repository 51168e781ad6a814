//! Writing the client files, as holdfast does after each FOSSology backup.

use crate::{BackupEnded, BackupStarted, Client, Schedule, SchedulerFile};
use chrono::{DateTime, FixedOffset};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn date(d: &DateTime<FixedOffset>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

fn client(c: &Client) -> String {
    format!(
        "  <client>\n    <identifier>{}</identifier>\n    <version>{}</version>\n    <operatingsystem>{}</operatingsystem>\n  </client>\n",
        esc(&c.identifier),
        esc(&c.version),
        esc(&c.operating_system)
    )
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

impl BackupStarted {
    pub fn to_xml(&self) -> String {
        format!(
            "{HEAD}<backup_started>\n  <startdate>{}</startdate>\n  <id>{}</id>\n{}</backup_started>\n",
            date(&self.start),
            esc(&self.id),
            client(&self.client)
        )
    }
}

impl BackupEnded {
    pub fn to_xml(&self) -> String {
        format!(
            "{HEAD}<backup_ended>\n  <enddate>{}</enddate>\n  <id>{}</id>\n  <success>{}</success>\n{}</backup_ended>\n",
            date(&self.end),
            esc(&self.id),
            u8::from(self.success),
            client(&self.client)
        )
    }
}

impl SchedulerFile {
    pub fn to_xml(&self) -> String {
        let body = match &self.schedule {
            Schedule::None => "  <no_schedule/>\n".to_string(),
            Schedule::AfterStartup { minutes } => format!(
                "  <backup_after_startup>\n    <minutes_after_startup>{minutes}</minutes_after_startup>\n  </backup_after_startup>\n"
            ),
            Schedule::Custom(c) => {
                let list = |tag: &str, v: &[u32]| -> String {
                    v.iter().map(|x| format!("<{tag}>{x}</{tag}>")).collect()
                };
                let dom = match &c.days_of_month {
                    None => "<every_day_of_month>*</every_day_of_month>".to_string(),
                    Some(v) => list("day_of_month_selected", v),
                };
                let months = match &c.months {
                    None => "<everymonth>*</everymonth>".to_string(),
                    Some(v) => list("month_selected", v),
                };
                let dow = match &c.days_of_week {
                    None => "<every_day_of_week>*</every_day_of_week>".to_string(),
                    Some(v) => list("week_day", v),
                };
                format!(
                    "  <custom_online_backup>\n    <minutes>{}</minutes>\n    <hours>{}</hours>\n    <days_of_month>{dom}</days_of_month>\n    <months>{months}</months>\n    <days_of_week>{dow}</days_of_week>\n    <timezone>{}</timezone>\n  </custom_online_backup>\n",
                    list("minute_selected", &c.minutes),
                    list("hour_selected", &c.hours),
                    c.timezone
                )
            }
        };
        format!(
            "{HEAD}<online_backup_schedule>\n{body}{}</online_backup_schedule>\n",
            client(&self.client)
        )
    }
}
