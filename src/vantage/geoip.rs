//! Where an address is: its country (and, for DNS comparisons, its
//! network's ASN) from MaxMind databases.
//!
//! The databases are read whole into memory and swapped as a unit on
//! SIGHUP or when a file changes on disk, so a look-up never sees half of
//! an update. A database that cannot be reopened keeps the old one serving.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
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

    fn changed_on_disk(&self) -> bool {
        std::fs::metadata(&self.path).and_then(|m| m.modified()).ok() != self.modified
    }

    /// The country a GeoIP2/GeoLite2 Country or City database gives: where
    /// the network is, else where it is registered.
    fn country(&self, address: IpAddr) -> Option<Country> {
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

    fn asn(&self, address: IpAddr) -> Option<u32> {
        let found = self.reader.lookup(address).ok()?;
        found
            .decode_path(&[PathElement::Key("autonomous_system_number")])
            .ok()
            .flatten()
    }
}

/// The configured databases, either of which may be absent.
#[derive(Default)]
pub struct Databases {
    pub country: Option<Database>,
    pub asn: Option<Database>,
}

impl Databases {
    pub fn open(config: &crate::config::GeoipConfig) -> Result<Databases, String> {
        let open = |path: &Option<PathBuf>| path.as_deref().map(Database::open).transpose();
        Ok(Databases {
            country: open(&config.country_db)?,
            asn: open(&config.asn_db)?,
        })
    }

    pub fn country(&self, address: IpAddr) -> Option<Country> {
        self.country.as_ref()?.country(unmapped(address))
    }

    pub fn asn(&self, address: IpAddr) -> Option<u32> {
        self.asn.as_ref()?.asn(unmapped(address))
    }
}

/// `::ffff:a.b.c.d` (a v4 peer on a dual-stack socket) is looked up as v4.
fn unmapped(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The databases in use, swapped whole on reload.
#[derive(Clone, Default)]
pub struct Geo(Arc<ArcSwap<Databases>>);

impl Geo {
    pub fn new(databases: Databases) -> Self {
        Geo(Arc::new(ArcSwap::from_pointee(databases)))
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<Databases>> {
        self.0.load()
    }

    /// Reopens the databases `config` names (a reload, or a file that
    /// changed); on failure the ones in use stay.
    pub fn reopen(&self, config: &crate::config::GeoipConfig) -> Result<(), String> {
        let databases = Databases::open(config)?;
        self.0.store(Arc::new(databases));
        Ok(())
    }

    /// The files in use, as a config names them.
    pub fn files(&self) -> crate::config::GeoipConfig {
        let databases = self.0.load();
        crate::config::GeoipConfig {
            country_db: databases.country.as_ref().map(|d| d.path.clone()),
            asn_db: databases.asn.as_ref().map(|d| d.path.clone()),
        }
    }

    /// Whether a database file changed since it was read.
    pub fn changed_on_disk(&self) -> bool {
        let databases = self.0.load();
        [&databases.country, &databases.asn]
            .into_iter()
            .flatten()
            .any(Database::changed_on_disk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_databases() -> Databases {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/geoip");
        Databases::open(&crate::config::GeoipConfig {
            country_db: Some(dir.join("GeoLite2-Country-Test.mmdb")),
            asn_db: Some(dir.join("GeoLite2-ASN-Test.mmdb")),
        })
        .expect("MaxMind's test databases open")
    }

    #[test]
    fn maxminds_test_networks_map_to_their_countries() {
        let databases = test_databases();
        let country = |ip: &str| databases.country(ip.parse().unwrap()).map(|c| c.to_string());
        assert_eq!(country("81.2.69.142").as_deref(), Some("GB"));
        assert_eq!(country("89.160.20.130").as_deref(), Some("SE"));
        assert_eq!(country("111.235.160.1").as_deref(), Some("CN"));
        assert_eq!(country("::ffff:81.2.69.142").as_deref(), Some("GB"));
        assert_eq!(country("127.0.0.1"), None);
    }

    #[test]
    fn country_codes_are_two_letters() {
        assert_eq!(Country::parse("ir").map(|c| c.to_string()).as_deref(), Some("IR"));
        assert!(Country::parse("IRN").is_none());
        assert!(Country::parse("1R").is_none());
    }
}
