//! Calendar arithmetic and register encodings of the MC146818, as QEMU's
//! hw/rtc/mc146818rtc.c and util/cutils.c (`mktimegm`) do them.

/// Broken-down UTC time (fields as in C's `struct tm`, but the full year).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tm {
    /// Full year (e.g. 2026).
    pub year: i64,
    /// Month, 1-12.
    pub month: i64,
    /// Day of the month, 1-31.
    pub day: i64,
    /// Hour, 0-23.
    pub hour: i64,
    /// Minute.
    pub min: i64,
    /// Second.
    pub sec: i64,
    /// Day of the week, 0 = Sunday.
    pub wday: i64,
}

/// Seconds since the Unix epoch of `tm` (QEMU's `mktimegm`; any field values give a
/// result, never a panic, so registers full of garbage are harmless).
pub fn mktimegm(tm: &Tm) -> i64 {
    let (mut y, mut m, d) = (tm.year, tm.month, tm.day);
    if m < 3 {
        m += 12;
        y -= 1;
    }
    let days = d + (153 * m - 457) / 5 + 365 * y + y / 4 - y / 100 + y / 400 - 719_469;
    86_400 * days + 3600 * tm.hour + 60 * tm.min + tm.sec
}

/// The UTC breakdown of `secs` since the Unix epoch.
pub fn gmtime(secs: i64) -> Tm {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (proleptic Gregorian), era-based.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Tm {
        year,
        month,
        day,
        hour: rem / 3600,
        min: rem / 60 % 60,
        sec: rem % 60,
        wday: (days + 4).rem_euclid(7),
    }
}

/// Encodes `v` (0-99) for a register: binary when `binary`, else BCD.
pub fn to_reg(v: i64, binary: bool) -> u8 {
    let v = v.rem_euclid(100) as u8;
    if binary {
        v
    } else {
        ((v / 10) << 4) | (v % 10)
    }
}

/// Decodes a register value; `-1` for an alarm "don't care" (top two bits set).
pub fn from_reg(a: u8, binary: bool) -> i64 {
    if a & 0xc0 == 0xc0 {
        -1
    } else if binary {
        a as i64
    } else {
        ((a >> 4) as i64) * 10 + (a & 0x0f) as i64
    }
}

/// The hours register for `hour` (0-23): 24-hour, or 1-12 with bit 7 for PM.
pub fn hour_to_reg(hour: i64, h24: bool, binary: bool) -> u8 {
    if h24 {
        to_reg(hour, binary)
    } else {
        let h = if hour % 12 == 0 { 12 } else { hour % 12 };
        to_reg(h, binary) | if hour >= 12 { 0x80 } else { 0 }
    }
}

/// The hour (0-23) an hours register means (QEMU's `convert_hour` for 12-hour mode).
pub fn hour_from_reg(reg: u8, h24: bool, binary: bool) -> i64 {
    let h = from_reg(reg & 0x7f, binary);
    if h24 {
        h
    } else {
        h % 12 + if reg & 0x80 != 0 { 12 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmtime_and_mktimegm_round_trip() {
        // 2026-11-30 04:39:56 UTC was a Monday.
        let t = 1_796_013_596;
        let tm = gmtime(t);
        assert_eq!(
            tm,
            Tm {
                year: 2026,
                month: 11,
                day: 30,
                hour: 4,
                min: 39,
                sec: 56,
                wday: 1
            }
        );
        assert_eq!(mktimegm(&tm), t);
        for t in [0, 951_782_400, 4_107_542_399, -86_400, 1_709_164_800] {
            assert_eq!(mktimegm(&gmtime(t)), t, "{t}");
        }
        assert_eq!(gmtime(951_782_400).month, 2); // 2000-02-29
        assert_eq!(gmtime(951_782_400).day, 29);
    }

    #[test]
    fn bcd_binary_and_12_hour_encodings() {
        assert_eq!(to_reg(59, false), 0x59);
        assert_eq!(to_reg(59, true), 59);
        assert_eq!(from_reg(0x59, false), 59);
        assert_eq!(from_reg(0xc0, false), -1);
        assert_eq!(from_reg(0xff, true), -1);
        assert_eq!(hour_to_reg(0, false, false), 0x12);
        assert_eq!(hour_to_reg(12, false, false), 0x92);
        assert_eq!(hour_to_reg(23, false, false), 0x91);
        assert_eq!(hour_to_reg(23, true, true), 23);
        for h in 0..24 {
            for (h24, bin) in [(false, false), (false, true), (true, false), (true, true)] {
                assert_eq!(hour_from_reg(hour_to_reg(h, h24, bin), h24, bin), h);
            }
        }
        // Garbage never panics.
        let tm = Tm {
            year: 9999,
            month: 165,
            day: -1,
            hour: 165,
            min: 165,
            sec: 165,
            wday: 0,
        };
        let _ = gmtime(mktimegm(&tm));
    }
}
