//! Where a page says its site can also be read: `<link rel="alternate">`
//! to another host (not a language version, not a feed), and notices such
//! as "This website can also be accessed at the following alternate
//! addresses: www.example.co.uk". Hosts found this way that are not
//! configured are proposed to the operator, never routed to.

/// English phrases that introduce a site's other addresses (matched in
/// lower case); a site's `alternate_phrases` replace them.
pub const DEFAULT_PHRASES: [&str; 6] = [
    "can also be accessed at",
    "alternate addresses",
    "alternative addresses",
    "also available at",
    "mirror sites",
    "mirror addresses",
];

/// Characters after a phrase searched for hosts.
const WINDOW: usize = 400;
/// Hosts taken after one phrase, at most.
const HOSTS_PER_PHRASE: usize = 10;

/// The hosts (`host[:port]`, lower case) that `text` names after any of
/// `phrases`.
pub fn hosts_in_text(text: &str, phrases: &[String]) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut hosts = Vec::new();
    for phrase in phrases {
        let phrase = phrase.to_lowercase();
        if phrase.is_empty() {
            continue;
        }
        let mut from = 0;
        while let Some(at) = lower[from..].find(&phrase) {
            let start = from + at + phrase.len();
            let mut end = (start + WINDOW).min(lower.len());
            while !lower.is_char_boundary(end) {
                end -= 1;
            }
            let window = &lower[start..end];
            for token in window
                .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '<' | '>' | '"' | '\''))
                .filter_map(host_of_token)
                .take(HOSTS_PER_PHRASE)
            {
                if !hosts.contains(&token) {
                    hosts.push(token);
                }
            }
            from = start;
        }
    }
    hosts
}

/// `www.example.co.uk`, `https://mirror.example.net/`, `example.org.` ->
/// the host (with a port if one is written); None for anything else.
fn host_of_token(token: &str) -> Option<String> {
    let token = token.trim_end_matches(['.', ':', '!', '?']);
    let token = token
        .strip_prefix("https://")
        .or_else(|| token.strip_prefix("http://"))
        .unwrap_or(token);
    let authority = token.split(['/', '?', '#']).next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (host, Some(port)),
        _ => (authority, None),
    };
    let labels: Vec<&str> = host.split('.').collect();
    let valid = labels.len() >= 2
        && host.len() <= 253
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    if !valid {
        return None;
    }
    Some(match port {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// The host of an alternate link's `href`, when it is an http(s) URL.
pub fn host_of_link(href: &[u8]) -> Option<String> {
    super::urls::authority_of(href)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_PHRASES.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_notice_names_its_hosts() {
        let text = "This website can also be accessed at the following alternate addresses: www.example.co.uk, \
                    https://mirror.example.net/ and example.org. Read more.";
        assert_eq!(
            hosts_in_text(text, &defaults()),
            ["www.example.co.uk", "mirror.example.net", "example.org"]
        );
        assert!(hosts_in_text("Flight 404 lands at 10.30 in Paris.", &defaults()).is_empty());
    }

    #[test]
    fn tokens_that_are_not_hosts_are_left() {
        assert_eq!(host_of_token("v1.2"), None);
        assert_eq!(host_of_token("10.0.0.1"), None);
        assert_eq!(
            host_of_token("mirror.example.net:8443").as_deref(),
            Some("mirror.example.net:8443")
        );
    }
}
