//! The `Date` header value (RFC 9110 §6.6.1) and the access log's time,
//! formatted at most once per second instead of once per request.

use std::time::{SystemTime, UNIX_EPOCH};

pub struct DateCache {
    unix_secs: u64,
    http: [u8; 29],
    clf: [u8; 26],
    iso: [u8; 25],
}

impl DateCache {
    /// The cache, formatted for `now` (the caller reads the clock).
    pub fn new(now: SystemTime) -> DateCache {
        let mut cache = DateCache {
            unix_secs: u64::MAX,
            http: [b' '; 29],
            clf: [b' '; 26],
            iso: [b' '; 25],
        };
        cache.refresh(now);
        cache
    }

    /// Reformats only when the second has changed.
    pub fn refresh(&mut self, now: SystemTime) {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs == self.unix_secs {
            return;
        }
        self.unix_secs = secs;
        self.http = imf_fixdate(secs);
        self.clf = clf_time(secs);
        self.iso = iso_time(secs);
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT`, by value: the caller's borrow of
    /// the cache (and of the responder that holds it) ends at once.
    pub fn http_date_copy(&self) -> [u8; 29] {
        self.http
    }

    /// `06/Nov/1994:08:49:37 +0000`, the Common Log Format's time.
    pub fn clf_time(&self) -> &str {
        std::str::from_utf8(&self.clf).unwrap_or("-")
    }

    /// `1994-11-06T08:49:37+00:00`, ISO 8601 (nginx's `$time_iso8601`),
    /// for the JSON access log.
    pub fn iso_time(&self) -> &str {
        std::str::from_utf8(&self.iso).unwrap_or("-")
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7), without allocating:
/// used for `Date` and `Last-Modified`.
pub fn imf_fixdate(unix_secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    let days = unix_secs / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let secs_of_day = unix_secs % 86_400;
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |out: &mut [u8; 29], at: usize, v: u64| {
        out[at] = b'0' + (v / 10 % 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    };
    two(&mut out, 5, day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out, 12, (year / 100) as u64);
    two(&mut out, 14, (year % 100) as u64);
    two(&mut out, 17, secs_of_day / 3600);
    two(&mut out, 20, secs_of_day / 60 % 60);
    two(&mut out, 23, secs_of_day % 60);
    out
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn clf_time(unix_secs: u64) -> [u8; 26] {
    let (year, month, day) = civil_from_days((unix_secs / 86_400) as i64);
    let secs_of_day = unix_secs % 86_400;
    let mut out = *b"00/Jan/0000:00:00:00 +0000";
    out[3..6].copy_from_slice(MONTHS[(month - 1) as usize]);
    let fields = [
        (0, day),
        (7, (year / 100) as u64),
        (9, (year % 100) as u64),
        (12, secs_of_day / 3600),
        (15, secs_of_day / 60 % 60),
        (18, secs_of_day % 60),
    ];
    put_two_digits(&mut out, fields);
    out
}

fn iso_time(unix_secs: u64) -> [u8; 25] {
    let (year, month, day) = civil_from_days((unix_secs / 86_400) as i64);
    let secs_of_day = unix_secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00+00:00";
    let fields = [
        (0, (year / 100) as u64),
        (2, (year % 100) as u64),
        (5, month),
        (8, day),
        (11, secs_of_day / 3600),
        (14, secs_of_day / 60 % 60),
        (17, secs_of_day % 60),
    ];
    put_two_digits(&mut out, fields);
    out
}

/// Writes each (position, value) as the value's last two decimal digits.
fn put_two_digits<const N: usize>(out: &mut [u8], fields: [(usize, u64); N]) {
    for (at, v) in fields {
        out[at] = b'0' + (v / 10 % 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    }
}

/// Howard Hinnant's days-to-civil algorithm: (year, month 1..=12, day).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_both() {
        let mut cache = DateCache::new(SystemTime::now());
        cache.refresh(UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(&cache.http_date_copy(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(cache.clf_time(), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(cache.iso_time(), "1994-11-06T08:49:37+00:00");
        cache.refresh(UNIX_EPOCH + Duration::from_secs(951_782_400)); // leap day 2000
        assert_eq!(cache.clf_time(), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(cache.iso_time(), "2000-02-29T00:00:00+00:00");
        // Against httpdate, over a spread of instants.
        for secs in (0..4_000_000_000u64).step_by(7_777_777) {
            let ours = imf_fixdate(secs);
            let theirs = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(std::str::from_utf8(&ours).unwrap(), theirs);
        }
    }
}
