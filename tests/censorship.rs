//! A censored network on one machine: network namespaces, a veth pair and
//! nftables, all created here and removed afterwards.
//!
//! Namespace "free" holds the daemon, the primary and four mirrors (each
//! base its own address), plus an ISP's block page server. Namespace
//! "censored" holds two agents of country CN and a censor: its resolver
//! (`/etc/netns/<ns>/hosts`, which `ip netns exec` puts in place of
//! `/etc/hosts`) answers another address for one mirror, nft resets TCP
//! to the primary and to one mirror, and a transparent proxy (DNAT) serves
//! the block page for another. The last mirror is left alone.
//!
//! Only addresses of 10.77.0.0/24 on the test's own veth are used. Without
//! root, `ip` or `nft` the test says why and is skipped; CI installs them.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const DAEMON: &str = "10.77.0.1";
const CENSORED: &str = "10.77.0.2";
/// Each base's address in the free namespace.
const BASES: [(&str, &str); 6] = [
    ("primary.test", "10.77.0.11"),
    ("reset.test", "10.77.0.12"),
    ("poisoned.test", "10.77.0.13"),
    ("proxied.test", "10.77.0.14"),
    ("clean.test", "10.77.0.15"),
    // Connections open; the request itself is reset (a DPI box on the path).
    ("dpi.test", "10.77.0.16"),
];
/// Where the censor's resolver sends `poisoned.test`, and where its proxy
/// takes `proxied.test`: the ISP's block page.
const ISP: &str = "10.77.0.20";
const READER_CN: &str = "111.235.160.7";
const READER_SE: &str = "89.160.20.130";

fn run(args: &[&str]) -> Result<(), String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The two namespaces and everything in them; dropped, all of it goes.
struct Network {
    free: String,
    censored: String,
    children: Vec<Child>,
}

impl Network {
    fn create() -> Result<Network, String> {
        // SAFETY: geteuid only reads the process's credentials.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        for tool in ["ip", "nft"] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Err(format!("`{tool}` is not installed"));
            }
        }
        let id = std::process::id();
        let network = Network {
            free: format!("mg-free-{id}"),
            censored: format!("mg-cens-{id}"),
            children: Vec::new(),
        };
        let (free, censored) = (network.free.as_str(), network.censored.as_str());
        run(&["ip", "netns", "add", free])?;
        run(&["ip", "netns", "add", censored])?;
        let (veth_free, veth_censored) = (format!("mgf{}", id % 100_000), format!("mgc{}", id % 100_000));
        run(&[
            "ip",
            "link",
            "add",
            &veth_free,
            "type",
            "veth",
            "peer",
            "name",
            &veth_censored,
        ])?;
        run(&["ip", "link", "set", &veth_free, "netns", free])?;
        run(&["ip", "link", "set", &veth_censored, "netns", censored])?;
        let in_ns = |ns: &str, args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", ns];
            full.extend_from_slice(args);
            run(&full)
        };
        in_ns(free, &["ip", "link", "set", "lo", "up"])?;
        in_ns(censored, &["ip", "link", "set", "lo", "up"])?;
        in_ns(free, &["ip", "addr", "add", &format!("{DAEMON}/24"), "dev", &veth_free])?;
        for (_, address) in BASES.iter().chain(&[("isp", ISP)]) {
            in_ns(
                free,
                &["ip", "addr", "add", &format!("{address}/32"), "dev", &veth_free],
            )?;
        }
        in_ns(
            censored,
            &["ip", "addr", "add", &format!("{CENSORED}/24"), "dev", &veth_censored],
        )?;
        in_ns(free, &["ip", "link", "set", &veth_free, "up"])?;
        in_ns(censored, &["ip", "link", "set", &veth_censored, "up"])?;
        let hosts = |entries: &[(&str, &str)]| {
            let mut text = String::from("127.0.0.1 localhost\n");
            for (name, address) in entries {
                text.push_str(&format!("{address} {name}\n"));
            }
            text
        };
        let free_hosts: Vec<(&str, &str)> = BASES.to_vec();
        let censored_hosts: Vec<(&str, &str)> = BASES
            .iter()
            .map(|&(name, address)| (name, if name == "poisoned.test" { ISP } else { address }))
            .collect();
        for (ns, entries) in [(free, &free_hosts), (censored, &censored_hosts)] {
            let dir = PathBuf::from(format!("/etc/netns/{ns}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("hosts"), hosts(entries)).map_err(|e| e.to_string())?;
        }
        let rules = format!(
            "table inet censor {{\n\
               chain out {{ type filter hook output priority 0; policy accept;\n\
                 ip daddr {{ {primary}, {reset} }} tcp dport 80 reject with tcp reset\n\
                 ip daddr {dpi} tcp dport 80 tcp flags & psh == psh reject with tcp reset\n\
               }}\n\
             }}\n\
             table ip proxy {{\n\
               chain out {{ type nat hook output priority -100; policy accept;\n\
                 ip daddr {proxied} tcp dport 80 dnat to {ISP}:80\n\
               }}\n\
             }}\n",
            primary = BASES[0].1,
            reset = BASES[1].1,
            proxied = BASES[3].1,
            dpi = BASES[5].1,
        );
        let file = std::env::temp_dir().join(format!("mg-censor-{id}.nft"));
        std::fs::write(&file, rules).map_err(|e| e.to_string())?;
        in_ns(censored, &["nft", "-f", file.to_str().unwrap()])?;
        let _ = std::fs::remove_file(file);
        Ok(network)
    }

    /// A listener bound inside namespace `ns` (sockets stay in the
    /// namespace they were made in, whichever thread uses them later).
    fn listen(&self, ns: &str, addr: SocketAddr) -> std::net::TcpListener {
        in_namespace(ns, move || {
            std::net::TcpListener::bind(addr).expect("bind in the namespace")
        })
    }

    fn spawn(&mut self, ns: &str, args: &[&str], log: &Path) -> &mut Child {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.last_mut().unwrap()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.free, &self.censored] {
            // Deleting a namespace deletes its veth end, and the pair with it.
            let _ = run(&["ip", "netns", "del", ns]);
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
    }
}

fn in_namespace<T: Send + 'static>(ns: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace exists");
        use std::os::fd::AsRawFd;
        // SAFETY: setns moves only this thread, which ends after `work`.
        let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns into {path}");
        work()
    })
    .join()
    .expect("namespace thread")
}

/// One HTTP/1.1 exchange from inside `ns`: (status, Location, body).
fn http_in(ns: &str, addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let addr = addr.to_string();
    let response = in_namespace(ns, move || {
        let mut stream = TcpStream::connect(&addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(request.as_bytes()).ok()?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    });
    let Some(response) = response else {
        return (0, None, String::new());
    };
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let location = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("location").then(|| value.trim().to_string())
    });
    // Status bodies come whole or chunked; a chunked one is unwrapped.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, location, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn status_json(network: &Network, path: &str) -> Option<Value> {
    let (status, _, body) = http_in(&network.free, &format!("{DAEMON}:8080"), path, &[]);
    (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

fn wait_for<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_in_a_censored_network_route_its_readers_to_the_clean_mirror() {
    let mut network = match Network::create() {
        Ok(network) => network,
        Err(why) => {
            eprintln!("SKIPPED: network namespaces are not available here ({why}); CI runs this as root");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    // The origins, each on its own address in the free namespace.
    let mut origins = Vec::new();
    for (host, address) in BASES {
        let listener = network.listen(&network.free.clone(), format!("{address}:80").parse().unwrap());
        listener.set_nonblocking(true).unwrap();
        let origin = TestOrigin::start_on(
            tokio::net::TcpListener::from_std(listener).unwrap(),
            Behavior::Status(404),
        );
        let page = if host == "primary.test" {
            fixture("primary-v1.html", "www.example.com", host)
        } else {
            fixture("mirror-faithful-v1.html", "www.example.co.uk", host)
        };
        // The article, and a 404 elsewhere (the daemon asks for a path
        // that cannot exist, to tell soft 404s).
        origin.set_path(ARTICLE, Behavior::Page(page));
        origins.push(origin);
    }
    let isp = network.listen(&network.free.clone(), format!("{ISP}:80").parse().unwrap());
    isp.set_nonblocking(true).unwrap();
    let isp = TestOrigin::start_on(tokio::net::TcpListener::from_std(isp).unwrap(), Behavior::Status(404));
    isp.set(Behavior::Page(
        std::fs::read_to_string(Path::new(FIXTURES).join("blockpage.html")).unwrap(),
    ));

    let mut config = format!(
        "[server]\nlisten = \"{DAEMON}:8080\"\ntrusted_proxies = [\"10.77.0.0/24\"]\n\n\
         [store]\npath = \"{}\"\n\n[probe]\ninterval = \"2s\"\ntimeout = \"2s\"\nper_host_rate = 100\n\n\
         [geoip]\ncountry_db = \"{}/tests/geoip/GeoLite2-Country-Test.mmdb\"\n\n\
         [vantage]\ncycle = \"1s\"\ncontrol_url = \"http://{DAEMON}:8080/healthz\"\n",
        dir.path().join("store.db").display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    for name in ["cn-1", "cn-2"] {
        let token = dir.path().join(format!("{name}.token"));
        std::fs::write(&token, format!("{name}-token-0123456789abcdef\n")).unwrap();
        config.push_str(&format!(
            "\n[[vantage.agents]]\nname = \"{name}\"\ncountry = \"CN\"\ntoken_file = \"{}\"\n",
            token.display()
        ));
    }
    let mirrors: Vec<String> = BASES[1..].iter().map(|(h, _)| format!("\"http://{h}\"")).collect();
    config.push_str(&format!(
        "\n[[sites]]\nname = \"news\"\nprimary = \"http://primary.test\"\nmirrors = [{}]\narticles = [\"{ARTICLE}\"]\ncontent_selector = \"article\"\n",
        mirrors.join(", ")
    ));
    let config_path = dir.path().join("mirrorgate.toml");
    std::fs::write(&config_path, config).unwrap();
    let free = network.free.clone();
    let censored = network.censored.clone();
    network.spawn(
        &free,
        &[binary(), "run", "--config", config_path.to_str().unwrap()],
        &dir.path().join("daemon.log"),
    );
    wait_for("the daemon's first round", Duration::from_secs(30), || {
        status_json(&network, "/status").filter(|s| s["round"]["completed"].as_u64() >= Some(1))
    });
    for name in ["cn-1", "cn-2"] {
        let token = dir.path().join(format!("{name}.token"));
        network.spawn(
            &censored,
            &[
                binary(),
                "agent",
                "--server",
                &format!("http://{DAEMON}:8080/"),
                "--token-file",
                token.to_str().unwrap(),
                "--name",
                name,
            ],
            &dir.path().join(format!("{name}.log")),
        );
    }
    let url = |host: &str| format!("http://{host}");
    let state = |status: &Value, host: &str| -> Value {
        status["sites"][0]["bases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["url"] == url(host).as_str())
            .map(|b| b["countries"]["CN"].clone())
            .unwrap_or(Value::Null)
    };
    let status = wait_for("every base's state in CN", Duration::from_secs(40), || {
        let status = status_json(&network, "/status")?;
        BASES
            .iter()
            .all(|(host, _)| state(&status, host)["state"] != "unknown")
            .then_some(status)
    });
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let context = format!("{status}\ndaemon:\n{}\ncn-1:\n{}", log("daemon.log"), log("cn-1.log"));
    let expect = |host: &str, state_name: &str, kind: Option<&str>| {
        let found = state(&status, host);
        assert_eq!(found["state"], state_name, "{host}: {context}");
        assert_eq!(found["kind"].as_str(), kind, "{host}: {context}");
        assert_eq!(found["agents"], 2, "{host}");
    };
    expect("primary.test", "blocked", Some("tcp_ip"));
    expect("reset.test", "blocked", Some("tcp_ip"));
    expect("poisoned.test", "blocked", Some("dns"));
    expect("proxied.test", "blocked", Some("http-diff"));
    expect("clean.test", "reachable", None);
    expect("dpi.test", "blocked", Some("http-failure"));
    // From the daemon's side every base serves the article.
    let detail = status_json(&network, "/status/news").unwrap();
    let article = &detail["articles"][0];
    for base in article["bases"].as_array().unwrap() {
        let evidence = base["evidence"].as_str().and_then(|link| status_json(&network, link));
        assert_eq!(base["verdict"], "same", "{base}\n{evidence:?}");
    }
    // Per article, what the country's agents got there.
    let verdict_in_cn = |host: &str| {
        article["bases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["url"] == url(host).as_str())
            .map(|b| b["countries"]["CN"].clone())
            .unwrap()
    };
    assert_eq!(verdict_in_cn("clean.test"), "same");
    assert_eq!(verdict_in_cn("proxied.test"), "diverged");
    assert_eq!(verdict_in_cn("reset.test"), "unreachable");

    // A reader in China, through the trusted proxy, goes to the clean
    // mirror; one in Sweden to the primary.
    let daemon = format!("{DAEMON}:8080");
    let path = format!("/r/news{ARTICLE}");
    let (code, location, _) = http_in(&free, &daemon, &path, &[("X-Forwarded-For", READER_CN)]);
    assert_eq!(
        (code, location.as_deref()),
        (302, Some(format!("http://clean.test{ARTICLE}").as_str()))
    );
    let (code, location, _) = http_in(&free, &daemon, &path, &[("X-Forwarded-For", READER_SE)]);
    assert_eq!(
        (code, location.as_deref()),
        (302, Some(format!("http://primary.test{ARTICLE}").as_str()))
    );
    drop(origins);
}
