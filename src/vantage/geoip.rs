//! Where an address is: its country (and, for DNS comparisons, its
//! network's ASN) from MaxMind databases.
//!
//! The databases are read whole into memory and swapped as a unit on
//! SIGHUP or when a file changes on disk, so a look-up never sees half of
//! an update. A database that cannot be reopened keeps the old one serving.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::country::{Country, Database};

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
            country_db: databases.country.as_ref().map(|d| d.path().to_path_buf()),
            asn_db: databases.asn.as_ref().map(|d| d.path().to_path_buf()),
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
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/geoip");
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
}
