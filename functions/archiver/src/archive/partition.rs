//! The hour partitions of the archive: the UTC hour of an event's `timestamp` names its
//! folder, `YYYY/MM/DD/HH/`, the layout the Glue table's projection reads.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use eis_contract::Event;
use uuid::Uuid;

/// The UTC hour an event's `timestamp` falls in: its folder in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HourPartition {
    date: NaiveDate,
    hour: u32,
}

impl HourPartition {
    pub fn of(timestamp: DateTime<Utc>) -> Self {
        Self {
            date: timestamp.date_naive(),
            hour: timestamp.hour(),
        }
    }

    /// The first instant of the hour.
    pub fn start(&self) -> DateTime<Utc> {
        self.date
            .and_hms_opt(self.hour, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_default()
    }

    /// `YYYY/MM/DD/HH/`: the layout the Glue table's partition projection expects.
    pub fn folder(&self) -> String {
        format!(
            "{:04}/{:02}/{:02}/{:02}/",
            self.date.year(),
            self.date.month(),
            self.date.day(),
            self.hour
        )
    }

    /// The hour of a folder `YYYY/MM/DD/HH/` (the trailing slash included), if it is one.
    pub fn parse_folder(folder: &str) -> Option<Self> {
        let mut parts = folder.strip_suffix('/')?.split('/');
        let mut next = |digits: usize| {
            let part = parts.next().filter(|p| p.len() == digits)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse::<u32>().ok())?
        };
        let (year, month, day, hour) = (next(4)?, next(2)?, next(2)?, next(2)?);
        if parts.next().is_some() || hour > 23 {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
        Some(Self { date, hour })
    }

    /// `{prefix}YYYY/MM/DD/HH/events_{batch_id}.parquet`.
    pub fn object_key(&self, prefix: &str, batch_id: Uuid) -> String {
        format!(
            "{prefix}{}events_{}.parquet",
            self.folder(),
            batch_id.hyphenated()
        )
    }
}

/// Most hours one replay or restore covers (31 days): a longer range is several invocations.
pub const MAX_RANGE_HOURS: i64 = 31 * 24;

/// The hours that `[from, to)` touches, in order; `from < to`, at most [`MAX_RANGE_HOURS`].
pub fn hours_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<HourPartition>, String> {
    if from >= to {
        return Err(format!("`from` ({from}) must be before `to` ({to})"));
    }
    let first = HourPartition::of(from).start();
    let hours = ((to - first).num_seconds() + 3599) / 3600;
    if hours > MAX_RANGE_HOURS {
        return Err(format!(
            "{hours} hours is more than one invocation covers ({MAX_RANGE_HOURS})"
        ));
    }
    Ok((0..hours)
        .map(|h| HourPartition::of(first + chrono::Duration::hours(h)))
        .collect())
}

/// Splits events by hour partition (the sweep's rows are acknowledged per partition).
pub fn by_partition(events: Vec<Event>) -> BTreeMap<HourPartition, Vec<Event>> {
    let mut groups: BTreeMap<HourPartition, Vec<Event>> = BTreeMap::new();
    for event in events {
        groups
            .entry(HourPartition::of(event.timestamp))
            .or_default()
            .push(event);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_events::{event, events, utc};
    use chrono::{FixedOffset, TimeZone};

    #[test]
    fn paths_are_zero_padded_utc_hours() {
        let id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        let p = HourPartition::of(utc("2026-01-05T09:07:00Z"));
        assert_eq!(
            p.object_key("", id),
            "2026/01/05/09/events_01900000-0000-7000-8000-000000000001.parquet"
        );
        assert_eq!(
            p.object_key("archive/", id),
            "archive/2026/01/05/09/events_01900000-0000-7000-8000-000000000001.parquet"
        );
        assert_eq!(
            HourPartition::of(utc("0999-12-31T23:00:00Z")).folder(),
            "0999/12/31/23/"
        );
        assert_eq!(
            HourPartition::of(utc("2026-11-28T00:00:00Z")).folder(),
            "2026/11/28/00/"
        );
    }

    #[test]
    fn hours_split_exactly_at_the_boundary() {
        let last = HourPartition::of(utc("2026-01-05T09:59:59.999999Z"));
        let next = HourPartition::of(utc("2026-01-05T10:00:00Z"));
        assert_eq!(last.folder(), "2026/01/05/09/");
        assert_eq!(next.folder(), "2026/01/05/10/");
        assert!(last < next);
        // Midnight and the year boundary roll the date, not just the hour.
        assert_eq!(
            HourPartition::of(utc("2025-12-31T23:59:59.999999Z")).folder(),
            "2025/12/31/23/"
        );
        assert_eq!(
            HourPartition::of(utc("2026-01-01T00:00:00Z")).folder(),
            "2026/01/01/00/"
        );
    }

    #[test]
    fn folders_read_back_as_their_hours() {
        let hour = HourPartition::of(utc("2026-12-04T09:30:00Z"));
        assert_eq!(HourPartition::parse_folder(&hour.folder()), Some(hour));
        for other in [
            "2026/12/04/24/",
            "2026/12/4/09/",
            "2026/12/04/09",
            "rejected/",
            "2026/02/30/01/",
        ] {
            assert_eq!(HourPartition::parse_folder(other), None, "{other}");
        }
    }

    #[test]
    fn partitions_are_utc_whatever_the_offset_was() {
        let offset = FixedOffset::east_opt(2 * 3600).expect("offset");
        let local = offset
            .with_ymd_and_hms(2026, 1, 5, 0, 30, 0)
            .single()
            .expect("time");
        let p = HourPartition::of(local.with_timezone(&Utc));
        assert_eq!(p.folder(), "2026/01/04/22/");
    }

    #[test]
    fn events_are_grouped_by_hour() {
        let mut all = events(0..3, "2026-01-05T09:10:00Z");
        all.extend(events(3..5, "2026-01-02T23:59:00Z"));
        all.push(event(5, "2026-01-05T10:00:00Z"));
        let groups = by_partition(all);
        let sizes: Vec<(String, usize)> =
            groups.iter().map(|(p, e)| (p.folder(), e.len())).collect();
        assert_eq!(
            sizes,
            vec![
                ("2026/01/02/23/".into(), 2),
                ("2026/01/05/09/".into(), 3),
                ("2026/01/05/10/".into(), 1)
            ]
        );
    }

    #[test]
    fn a_range_covers_every_hour_it_touches() {
        let folders = |from, to| {
            hours_between(utc(from), utc(to))
                .map(|h| h.iter().map(|p| p.folder()).collect::<Vec<_>>())
        };
        assert_eq!(
            folders("2026-12-01T23:30:00Z", "2026-12-02T01:00:00Z"),
            Ok(vec![
                "2026/12/01/23/".to_string(),
                "2026/12/02/00/".to_string()
            ])
        );
        assert_eq!(
            folders("2026-12-02T10:00:00Z", "2026-12-02T10:00:01Z"),
            Ok(vec!["2026/12/02/10/".to_string()])
        );
        assert!(folders("2026-12-02T10:00:00Z", "2026-12-02T10:00:00Z").is_err());
        assert!(folders("2026-11-01T00:00:00Z", "2026-12-02T00:00:01Z").is_err());
        assert_eq!(
            folders("2026-11-01T00:00:00Z", "2026-12-02T00:00:00Z").map(|h| h.len()),
            Ok(744)
        );
    }
}
