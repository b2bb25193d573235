//! A country, and the MaxMind database file that says which country (and
//! which network's ASN) an address is in. Plain values and synchronous
//! look-ups, so the config validator can open a database and the routing
//! decision can name a country without reaching the daemon's machinery;
//! `vantage::geoip` swaps the configured files on change.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use maxminddb::{PathElement, Reader};

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Two ASCII letters, any case.
    pub fn parse(text: &str) -> Option<Country> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("two ASCII letters")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Country::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not a country code: {text}")))
    }
}

/// One MaxMind database file, as read at `modified`.
pub struct Database {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
    modified: Option<SystemTime>,
}

impl Database {
    pub fn open(path: &Path) -> Result<Database, String> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let bytes = std::fs::read(path).map_err(|e| format!("\"{}\" cannot be read: {e}", path.display()))?;
        let reader =
            Reader::from_source(bytes).map_err(|e| format!("\"{}\" is not a MaxMind database: {e}", path.display()))?;
        Ok(Database {
            reader,
            path: path.to_path_buf(),
            modified,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn changed_on_disk(&self) -> bool {
        std::fs::metadata(&self.path).and_then(|m| m.modified()).ok() != self.modified
    }

    /// The country a GeoIP2/GeoLite2 Country or City database gives: where
    /// the network is, else where it is registered.
    pub fn country(&self, address: IpAddr) -> Option<Country> {
        let found = self.reader.lookup(address).ok()?;
        let at = |section: &'static str| -> Option<Country> {
            let code: Option<&str> = found
                .decode_path(&[PathElement::Key(section), PathElement::Key("iso_code")])
                .ok()
                .flatten();
            code.and_then(Country::parse)
        };
        at("country").or_else(|| at("registered_country"))
    }

    pub fn asn(&self, address: IpAddr) -> Option<u32> {
        let found = self.reader.lookup(address).ok()?;
        found
            .decode_path(&[PathElement::Key("autonomous_system_number")])
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_two_letters() {
        assert_eq!(Country::parse("ir").map(|c| c.to_string()).as_deref(), Some("IR"));
        assert!(Country::parse("IRN").is_none());
        assert!(Country::parse("1R").is_none());
    }
}
