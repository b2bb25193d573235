//! `mirrorgate healthcheck`: ask a running daemon's `/healthz`. For
//! container HEALTHCHECKs, whose runtime image has no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The `/healthz` URL for a daemon listening on `listen`; a wildcard
/// address is asked over loopback.
pub fn healthz_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}

/// Ok when `url` answers 200 within `timeout`; otherwise why not.
pub async fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
    match response.status().as_u16() {
        200 => Ok(()),
        status => {
            let body = response.text().await.unwrap_or_default();
            Err(format!("{url} answered {status}: {}", body.trim()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_asked_over_loopback() {
        assert_eq!(
            healthz_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(healthz_url("[::]:9000".parse().unwrap()), "http://[::1]:9000/healthz");
        assert_eq!(
            healthz_url("10.0.0.7:80".parse().unwrap()),
            "http://10.0.0.7:80/healthz"
        );
    }
}
