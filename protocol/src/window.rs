//! Maintenance windows: when a device may swap releases. Written
//! `DAYS HH:MM-HH:MM ZONE`: days `daily`, `mon-fri`, `sat,sun` or a single
//! day; a range ending before it starts runs past midnight (`22:00-02:00`
//! belongs to the day it starts); the zone an IANA name (`Europe/Berlin`,
//! daylight saving included) or `UTC`. Pure: the time is an argument.

use chrono::{Datelike, TimeZone, Timelike};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A weekly window in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Window {
    text: String,
    /// Bit d set: the window opens on weekday d (0 = Monday).
    days: u8,
    start_min: u16,
    end_min: u16,
    tz: chrono_tz::Tz,
}

/// Why a window was refused, quoting it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("maintenance window {text:?}: {reason} (e.g. \"mon-fri 02:00-04:00 Europe/Berlin\")")]
pub struct WindowError {
    pub text: String,
    pub reason: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Option<u8> {
    DAYS.iter().position(|d| *d == s).map(|i| i as u8)
}

fn days(spec: &str) -> Option<u8> {
    if spec == "daily" {
        return Some(0x7f);
    }
    let mut bits = 0u8;
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    bits |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => bits |= 1 << day(part)?,
        }
    }
    Some(bits)
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}

impl std::str::FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Window, WindowError> {
        let fail = |reason: &str| WindowError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [d, range, zone] = parts[..] else {
            return Err(fail("expected DAYS HH:MM-HH:MM ZONE"));
        };
        let days = days(&d.to_ascii_lowercase())
            .ok_or_else(|| fail("days are daily, mon-fri, sat,sun or a day"))?;
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| fail("the range is HH:MM-HH:MM"))?;
        let (start_min, end_min) = match (minutes(a), minutes(b)) {
            (Some(a), Some(b)) if a != b => (a, b),
            _ => return Err(fail("the range is HH:MM-HH:MM, start and end differ")),
        };
        let tz: chrono_tz::Tz = zone.parse().map_err(|_| fail("unknown time zone"))?;
        Ok(Window {
            text: parts.join(" "),
            days,
            start_min,
            end_min,
            tz,
        })
    }
}

impl Window {
    /// Whether `now_ms` (Unix milliseconds) falls inside the window.
    pub fn contains(&self, now_ms: u64) -> bool {
        let Some(utc) = chrono::Utc.timestamp_millis_opt(now_ms as i64).single() else {
            return false;
        };
        let local = utc.with_timezone(&self.tz);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let today = local.weekday().num_days_from_monday() as u8;
        let yesterday = (today + 6) % 7;
        let opens = |d: u8| self.days & (1 << d) != 0;
        match self.start_min < self.end_min {
            true => opens(today) && (self.start_min..self.end_min).contains(&minute),
            // past midnight: the evening of an open day, or the small
            // hours after one
            false => {
                (opens(today) && minute >= self.start_min)
                    || (opens(yesterday) && minute < self.end_min)
            }
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for Window {
    type Error = WindowError;
    fn try_from(s: String) -> Result<Window, WindowError> {
        s.parse()
    }
}

impl From<Window> for String {
    fn from(w: Window) -> String {
        w.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 (a Wednesday) at HH:MM UTC, in Unix ms.
    fn wed_utc(h: u64, m: u64) -> u64 {
        (1_796_169_600 + h * 3600 + m * 60) * 1000
    }

    #[test]
    fn a_weekday_window_in_a_zone_opens_at_local_time() {
        let w: Window = "mon-fri 02:00-04:00 Europe/Berlin".parse().unwrap();
        // Berlin is UTC+1 in December: 02:00-04:00 local is 01:00-03:00 UTC
        assert!(!w.contains(wed_utc(0, 59)));
        assert!(w.contains(wed_utc(1, 0)));
        assert!(w.contains(wed_utc(2, 59)));
        assert!(!w.contains(wed_utc(3, 0)));
        let sat = wed_utc(1, 30) + 3 * 86_400_000;
        assert!(!w.contains(sat), "not on Saturday");
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let w: Window = "tue 22:00-02:00 UTC".parse().unwrap();
        assert!(w.contains(wed_utc(1, 0)), "Tuesday night, after midnight");
        assert!(!w.contains(wed_utc(23, 0)), "Wednesday evening is not open");
        let daily: Window = "daily 22:00-02:00 UTC".parse().unwrap();
        assert!(daily.contains(wed_utc(23, 0)));
    }

    #[test]
    fn malformed_windows_are_errors_quoting_them() {
        for bad in [
            "mon 02:00",
            "someday 01:00-02:00 UTC",
            "mon 25:00-02:00 UTC",
            "mon 01:00-01:00 UTC",
            "mon 01:00-02:00 Mars/Olympus",
        ] {
            let e = bad.parse::<Window>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        let w: Window = "sat,sun 10:00-12:00 UTC".parse().unwrap();
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), w);
    }
}
