//! A certificate's validity period, read off its DER (RFC 5280 §4.1.2.5):
//! when to renew is a fraction of the lifetime, and the status page shows
//! the expiry. Only the walk to `validity` and its two times is here, not
//! a general X.509 parser; anything else it meets is `None`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `notBefore` and `notAfter` of a DER certificate.
pub fn validity(cert: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (certificate, _) = element(cert, 0x30)?;
    let (tbs, _) = element(certificate, 0x30)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, when there is one.
    if rest.first() == Some(&0xa0) {
        rest = element(rest, 0xa0)?.1;
    }
    rest = element(rest, 0x02)?.1; // serialNumber
    rest = element(rest, 0x30)?.1; // signature
    rest = element(rest, 0x30)?.1; // issuer
    let (validity, _) = element(rest, 0x30)?;
    let (not_before, after) = time(validity)?;
    let (not_after, _) = time(after)?;
    Some((not_before, not_after))
}

/// The contents of the DER element of `tag` at the start of `der`, and
/// what follows it.
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = der.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = match len {
        0..=0x7f => (usize::from(len), rest),
        0x81..=0x84 => {
            let n = usize::from(len & 0x7f);
            let bytes = rest.get(..n)?;
            let len = bytes.iter().fold(0usize, |l, &b| l << 8 | usize::from(b));
            (len, &rest[n..])
        }
        _ => return None,
    };
    Some((rest.get(..len)?, &rest[len..]))
}

/// A UTCTime or GeneralizedTime (always UTC, `Z`, in certificates), and
/// what follows it.
fn time(der: &[u8]) -> Option<(SystemTime, &[u8])> {
    let (text, rest, century) = match der.first()? {
        0x17 => {
            let (text, rest) = element(der, 0x17)?;
            (text, rest, None)
        }
        0x18 => {
            let (text, rest) = element(der, 0x18)?;
            (text, rest, Some(()))
        }
        _ => return None,
    };
    let text = std::str::from_utf8(text).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| digits.get(range)?.parse::<i64>().ok();
    let (year, rest_at) = match century {
        None if digits.len() == 12 => {
            // RFC 5280: YY >= 50 is 19YY, else 20YY.
            let yy = num(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        Some(()) if digits.len() == 14 => (num(0..4)?, 4),
        _ => return None,
    };
    let at = |i: usize| num(rest_at + i..rest_at + i + 2);
    let (month, day, hour, minute, second) = (at(0)?, at(2)?, at(4)?, at(6)?, at(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let time = match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))?,
    };
    Some((time, rest))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn reads_the_validity_rcgen_wrote() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 3, 1);
        // Past 2049: a GeneralizedTime.
        params.not_after = rcgen::date_time_ymd(2051, 12, 31);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (from, until) = validity(cert.der()).unwrap();
        assert_eq!(secs(from), 1_772_323_200); // 2026-03-01T00:00:00Z
        assert_eq!(secs(until), 2_587_593_600); // 2051-12-31T00:00:00Z
    }

    #[test]
    fn dates_and_junk() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert!(validity(b"").is_none());
        assert!(validity(&[0x30, 0x82, 0xff]).is_none());
        assert!(validity(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_none());
        for len in 0..200 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8 | 0x30).collect();
            let _ = validity(&junk);
        }
    }
}
