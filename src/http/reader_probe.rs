//! The reader's own network as a vantage point: `GET /p/{site}/{path}`
//! answers a small page whose script tries the top candidates from the
//! reader's browser (an image from each base's probe asset, with a
//! timeout), goes to the first that loads, and else to the 302 target. It
//! may report the candidates that failed (`POST /p/report`), which
//! [`crate::vantage::reports`] counts.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The page's only script: static, so its hash goes in the CSP and no
/// other script can run. Its data sits in a JSON block beside it.
const SCRIPT: &str = "(function(){var d=JSON.parse(document.getElementById('c').textContent),i=0,failed=[];\
function done(u){if(failed.length&&navigator.sendBeacon){try{navigator.sendBeacon(d.r,JSON.stringify({site:d.s,failed:failed}));}catch(e){}}location.replace(u);}\
function next(){if(i>=d.c.length){done(d.f);return;}var c=d.c[i++],img=new Image(),over=false;\
var t=setTimeout(function(){over=true;img.src='';failed.push(c.b);next();},d.t);\
img.onload=function(){if(over)return;clearTimeout(t);done(c.u);};\
img.onerror=function(){if(over)return;over=true;clearTimeout(t);failed.push(c.b);next();};\
img.src=c.p+(c.p.indexOf('?')<0?'?':'&')+'mg='+Date.now();}next();})();";

/// The page stays this small, or readers get the plain redirect.
pub const MAX_PAGE_BYTES: usize = 4096;
/// Candidates the page tries, best first.
pub const MAX_TRIED: usize = 3;
/// How long the page gives each candidate.
const TRY_MS: u64 = 3000;
pub const REPORT_PATH: &str = "/p/report";
/// Reports larger than this are refused unread.
pub const MAX_REPORT_BYTES: usize = 2048;

/// `sha256-…` of the script, for `script-src`.
pub fn script_hash() -> String {
    let digest = Sha256::digest(SCRIPT.as_bytes());
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// One candidate the page tries.
pub struct Candidate<'a> {
    /// The base's origin (what a failure report names).
    pub base: &'a str,
    /// Its probe asset's URL.
    pub asset: String,
    /// The article on that base.
    pub url: String,
}

#[derive(Serialize)]
struct Data<'a> {
    c: Vec<CandidateData<'a>>,
    f: &'a str,
    t: u64,
    s: &'a str,
    r: &'a str,
}

#[derive(Serialize)]
struct CandidateData<'a> {
    b: &'a str,
    p: &'a str,
    u: &'a str,
}

/// The page and its `Content-Security-Policy`, or None when it would not
/// fit in [`MAX_PAGE_BYTES`] (readers then get the plain redirect).
pub fn page(site: &str, candidates: &[Candidate<'_>], fallback: &str) -> Option<(String, String)> {
    let data = Data {
        c: candidates
            .iter()
            .take(MAX_TRIED)
            .map(|c| CandidateData {
                b: c.base,
                p: &c.asset,
                u: &c.url,
            })
            .collect(),
        f: fallback,
        t: TRY_MS,
        s: site,
        r: REPORT_PATH,
    };
    // In a script block, `<` could end it: JSON lets it be written escaped.
    let json = serde_json::to_string(&data)
        .ok()?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let fallback_attr = html_escape(fallback);
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Finding a working address</title><noscript><meta http-equiv=\"refresh\" content=\"0;url={fallback_attr}\"></noscript></head>\n\
         <body><p>Finding an address that works from your network&hellip; <a href=\"{fallback_attr}\">Continue</a></p>\n\
         <script type=\"application/json\" id=\"c\">{json}</script>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    if page.len() > MAX_PAGE_BYTES {
        return None;
    }
    let mut images: Vec<String> = candidates.iter().take(MAX_TRIED).map(|c| c.base.to_string()).collect();
    images.dedup();
    let csp = format!(
        "default-src 'none'; script-src '{}'; img-src {}; connect-src 'self'; style-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        script_hash(),
        images.join(" ")
    );
    Some((page, csp))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What a page reports: the candidates that did not load.
#[derive(Debug, Deserialize)]
pub struct Report {
    pub site: String,
    pub failed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_small_self_contained_and_allows_only_its_own_script() {
        let candidates = [
            Candidate {
                base: "https://m1.example",
                asset: "https://m1.example/favicon.ico".into(),
                url: "https://m1.example/a?x=1&y=</script>".into(),
            },
            Candidate {
                base: "https://m2.example",
                asset: "https://m2.example/favicon.ico".into(),
                url: "https://m2.example/a".into(),
            },
        ];
        let (html, csp) = page("news", &candidates, "https://m1.example/a?x=1&y=2").unwrap();
        assert!(html.len() < MAX_PAGE_BYTES);
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        assert!(html.contains("content=\"0;url=https://m1.example/a?x=1&amp;y=2\""));
        assert!(!html.contains("src=\"http"), "no external resource in the markup");
        assert!(csp.contains(&format!("script-src '{}'", script_hash())));
        assert!(csp.contains("img-src https://m1.example https://m2.example;"));
        assert!(csp.starts_with("default-src 'none'"));
        let long = "x".repeat(5000);
        let too_long = [Candidate {
            base: "https://m1.example",
            asset: "https://m1.example/favicon.ico".into(),
            url: format!("https://m1.example/{long}"),
        }];
        assert!(page("news", &too_long, "https://m1.example/").is_none());
    }
}
