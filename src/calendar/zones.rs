//! Which zone a TZID names: an IANA name (as chrono-tz knows it), a Windows name (as Outlook
//! writes it), either behind a vendor prefix (`/mozilla.org/20050126_1/Europe/Berlin`), or a
//! VTIMEZONE of the same file that says where it is (`X-LIC-LOCATION`).

use super::windows_zones::WINDOWS_ZONES;
use chrono_tz::Tz;
use std::collections::HashMap;

/// TZIDs as the file's VTIMEZONEs map them, beside the built-in tables.
#[derive(Debug, Default, Clone)]
pub struct Zones {
    /// TZID → IANA name, from a VTIMEZONE's `X-LIC-LOCATION` or a TZID that is itself known.
    local: HashMap<String, Tz>,
}

impl Zones {
    /// Notes a VTIMEZONE's TZID and the location it gives.
    pub fn learn(&mut self, tzid: &str, location: &str) {
        if let Some(tz) = lookup(location) {
            self.local.insert(tzid.to_string(), tz);
        }
    }

    /// The zone a TZID names, or none when nothing knows it.
    pub fn resolve(&self, tzid: &str) -> Option<Tz> {
        lookup(tzid).or_else(|| self.local.get(tzid.trim().trim_matches('"')).copied())
    }
}

/// An IANA or Windows name, with quotes and a vendor prefix tolerated.
pub fn lookup(tzid: &str) -> Option<Tz> {
    let name = tzid.trim().trim_matches('"');
    if let Ok(tz) = name.parse::<Tz>() {
        return Some(tz);
    }
    if let Some((_, iana)) = WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(name))
    {
        return iana.parse::<Tz>().ok();
    }
    // `/mozilla.org/20050126_1/Europe/Berlin`, `/citadel.org/20190914_1/Europe/Berlin`: the
    // last two (or three: America/Argentina/Salta) segments.
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    for take in [3, 2] {
        if parts.len() > take {
            if let Ok(tz) = parts[parts.len() - take..].join("/").parse::<Tz>() {
                return Some(tz);
            }
        }
    }
    None
}

/// The machine's zone: `TZ`, else `/etc/timezone`, else where `/etc/localtime` points; UTC
/// when none says.
pub fn system_zone() -> Tz {
    std::env::var("TZ")
        .ok()
        .and_then(|t| lookup(t.trim_start_matches(':')))
        .or_else(|| {
            std::fs::read_to_string("/etc/timezone")
                .ok()
                .and_then(|s| lookup(s.trim()))
        })
        .or_else(|| {
            std::fs::read_link("/etc/localtime").ok().and_then(|p| {
                let s = p.to_string_lossy().to_string();
                s.split("zoneinfo/").nth(1).and_then(lookup)
            })
        })
        .unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_windows_zone_maps_to_a_zone_chrono_tz_knows() {
        for (w, iana) in WINDOWS_ZONES {
            assert!(iana.parse::<Tz>().is_ok(), "{w} → {iana}");
        }
        assert_eq!(lookup("W. Europe Standard Time"), Some(Tz::Europe__Berlin));
        assert_eq!(
            lookup("\"Pacific Standard Time\""),
            Some(Tz::America__Los_Angeles)
        );
    }

    #[test]
    fn iana_names_vendor_prefixes_and_vtimezone_locations_resolve() {
        assert_eq!(lookup("Europe/Zurich"), Some(Tz::Europe__Zurich));
        assert_eq!(
            lookup("/mozilla.org/20050126_1/Europe/Berlin"),
            Some(Tz::Europe__Berlin)
        );
        let mut z = Zones::default();
        assert_eq!(z.resolve("Custom Zone 1"), None);
        z.learn("Custom Zone 1", "Europe/Paris");
        assert_eq!(z.resolve("Custom Zone 1"), Some(Tz::Europe__Paris));
    }
}
