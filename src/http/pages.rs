//! The pages readers see when there is no redirect: 503 (no base serves
//! the article now), 400 and 404. Browsers (by `Accept`) get HTML, anything
//! else JSON. The HTML comes from built-in templates an operator can
//! replace with `[server] error_page_dir` (`503.html`, `400.html`,
//! `404.html`), using these placeholders, each HTML-escaped:
//! `{{site}}`, `{{path}}`, `{{message}}`, and in the 503 page `{{bases}}`
//! (a `<li><a href=…>` per address that may still work).

use std::path::Path;
use std::sync::Arc;

const BUILTIN_503: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Temporarily unavailable</title></head>\n<body>\n<h1>No address currently serves this page</h1>\n<p>None of the addresses of <strong>{{site}}</strong> is serving <code>{{path}}</code> right now. One of these may still work:</p>\n<ul>\n{{bases}}</ul>\n</body></html>\n";
const BUILTIN_400: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Bad link</title></head>\n<body>\n<h1>This link cannot be followed</h1>\n<p>{{message}}</p>\n</body></html>\n";
const BUILTIN_404: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Not found</title></head>\n<body>\n<h1>Not found</h1>\n<p>{{message}}</p>\n</body></html>\n";

/// The three templates in use.
#[derive(Clone, Debug)]
pub struct ErrorPages {
    unavailable: Arc<str>,
    bad_request: Arc<str>,
    not_found: Arc<str>,
}

impl Default for ErrorPages {
    fn default() -> Self {
        ErrorPages {
            unavailable: Arc::from(BUILTIN_503),
            bad_request: Arc::from(BUILTIN_400),
            not_found: Arc::from(BUILTIN_404),
        }
    }
}

impl ErrorPages {
    /// The built-in pages, each replaced by its file in `dir` when that
    /// exists; a file that cannot be read is logged and the built-in kept.
    pub fn load(dir: Option<&Path>) -> Self {
        let mut pages = ErrorPages::default();
        let Some(dir) = dir else { return pages };
        for (name, slot) in [
            ("503.html", &mut pages.unavailable),
            ("400.html", &mut pages.bad_request),
            ("404.html", &mut pages.not_found),
        ] {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => *slot = Arc::from(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "error page template unreadable; using the built-in one")
                }
            }
        }
        pages
    }

    pub fn unavailable(&self, site: &str, path: &str, bases: &[String]) -> String {
        let items: String = bases
            .iter()
            .map(|url| {
                let url = escape_html(url);
                format!("<li><a href=\"{url}\" rel=\"nofollow\">{url}</a></li>\n")
            })
            .collect();
        fill(&self.unavailable, site, path, "", &items)
    }

    pub fn bad_request(&self, message: &str) -> String {
        fill(&self.bad_request, "", "", message, "")
    }

    pub fn not_found(&self, message: &str) -> String {
        fill(&self.not_found, "", "", message, "")
    }
}

/// One pass over the template, so a value holding `{{…}}` is not expanded.
fn fill(template: &str, site: &str, path: &str, message: &str, bases_html: &str) -> String {
    let mut out = String::with_capacity(template.len() + bases_html.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match after[..end].trim() {
            "site" => out.push_str(&escape_html(site)),
            "path" => out.push_str(&escape_html(path)),
            "message" => out.push_str(&escape_html(message)),
            "bases" => out.push_str(bases_html),
            _ => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_not_expanded_again() {
        let page = fill(
            "<p>{{site}} {{path}} {{ message }} {{other}}</p>",
            "<s>",
            "/{{site}}",
            "a&b",
            "",
        );
        assert_eq!(page, "<p>&lt;s&gt; /{{site}} a&amp;b {{other}}</p>");
    }
}
