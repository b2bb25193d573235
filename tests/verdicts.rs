//! Verdicts put to the test by a hostile mirror, a censor and the ordinary
//! tools that copy sites: loopback origins serve each case, the real daemon
//! judges it, and the verdict is read from `/status/{site}`.
//!
//! One daemon judges every case that needs a single round (about sixty of
//! them, so the suite stays quick); the cases that need time (an update, a
//! seized primary, a restart) have daemons of their own.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const TITLE: &str = "Ministers meet over the northern pipeline dispute";

/// Long enough that the page is not a "small page" that built-in block and
/// parking phrases look at.
const PARAGRAPHS: [&str; 6] = [
    "Ministers from both provinces met on Tuesday to discuss the route of the northern pipeline, which has divided farmers, engineers and environmental groups for more than a decade. Officials described the talks as frank and said a joint statement would follow.",
    "The pipeline would carry natural gas across four hundred kilometres of farmland and forest. Supporters say it would lower heating costs for half a million households; opponents say the route crosses wetlands that feed the region's largest river.",
    "A report published last month by the regional audit office found that the cost estimate had doubled since the project was first proposed, mostly because of land purchases and a redesign of the river crossing near the old ferry town.",
    "Farmers along the route told reporters that they had not been consulted about the new crossing. Several said they would refuse to sell their land unless the company agreed to bury the line deeper and to restore fields after construction.",
    "Engineers who worked on the first design said the river crossing was the hardest part of the project. The new plan would drill beneath the riverbed rather than build a bridge, which the company says would protect fish spawning grounds.",
    "The ministers are expected to meet again next month. Until then, surveying work on the disputed section has been suspended, and the company said it would publish the full environmental assessment before any further decision is taken.",
];

const CSV: &str = "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,expected_countries,source,exp_url,notes
test.body,nat,,body,contains,Court order 2024/117,5,XX,test,,a national block notice
test.header,isp,,header.x-filter,prefix,censorbox,5,XX,test,,a middlebox's header
test.fp,fp,,body,contains,pipeline,5,,test,,false positive row: never counts
";

/// A news page as `host` serves it, with `main` as its main column.
fn page_around(host: &str, title: &str, main: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="description" content="Talks on the pipeline">
<link rel="stylesheet" type="text/css" href="http://{host}/static/site.css">
<script type="text/javascript" src="http://{host}/static/app.js"></script>
</head>
<body>
<header><nav><a href="http://{host}/">Home</a> <a href="http://{host}/world">World</a> <a href="http://{host}/business">Business</a></nav>
<form method="get" action="http://{host}/search"><input type="text" name="q" placeholder="Search"></form></header>
<main>
{main}
<aside><h2>Most read</h2><ul><li><a href="http://{host}/a/1">Harbour reopens after storm</a></li><li><a href="http://{host}/a/2">Grain prices steady</a></li></ul></aside>
</main>
<footer><p>© 2026 The Daily Example. All rights reserved.</p></footer>
</body>
</html>
"#
    )
}

fn article(host: &str, extra: &str) -> String {
    let paragraphs: String = PARAGRAPHS.iter().map(|p| format!("<p>{p}</p>\n")).collect();
    format!(
        r#"<article>
<h1>{TITLE}</h1>
<p class="byline">By Staff Reporter</p>
{paragraphs}<figure><img src="http://{host}/static/photo.jpg" alt="The pipeline at dusk"><figcaption>The pipeline at dusk.</figcaption></figure>
{extra}
</article>"#
    )
}

fn news_page(host: &str, extra: &str) -> String {
    page_around(host, TITLE, &article(host, extra))
}

fn html(page: String) -> Behavior {
    Behavior::Page(page)
}

fn raw(content_type: &str, body: Vec<u8>) -> Behavior {
    Behavior::Raw {
        headers: vec![("content-type", content_type.to_string())],
        body,
    }
}

/// What wget `--convert-links --adjust-extension` and HTTrack make of a
/// page saved at `c/<name>.html`: links relative to it, `.html` added.
fn crawler_copy(page: &str, host: &str, name: &str) -> String {
    let prefix = format!("http://{host}/");
    let mut out = format!(
        "<!-- Mirrored from {host}/c/{name} by HTTrack Website Copier/3.x [XR&CO'2014], Tue, 24 Nov 2026 10:00:00 GMT -->\n"
    );
    let mut rest = page;
    while let Some(at) = rest.find(&prefix) {
        out.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        let end = after.find(['"', '\'', ' ', '>']).unwrap_or(after.len());
        let path = &after[..end];
        let local = if path.is_empty() {
            "index.html".to_string()
        } else if path.starts_with("static/") {
            path.to_string()
        } else {
            format!("{path}.html")
        };
        out.push_str("../");
        out.push_str(&local);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// What an HTML minifier's aggressive settings do: whitespace between
/// tags, optional tags, default attributes and needless quotes go.
fn minify(page: &str) -> String {
    let mut out: String = page.lines().map(str::trim).collect();
    for (from, to) in [
        ("</p>", ""),
        ("</li>", ""),
        ("<html lang=\"en\">", ""),
        ("</html>", ""),
        ("<head>", ""),
        ("</head>", ""),
        ("<body>", ""),
        ("</body>", ""),
        (" type=\"text/javascript\"", ""),
        (" type=\"text/css\"", ""),
        (" method=\"get\"", ""),
        (" type=\"text\"", ""),
        ("open=\"open\"", "open"),
        ("reversed=\"reversed\"", "reversed"),
        (" title=\"\"", ""),
        ("&rsquo;", "’"),
        ("class=\"byline\"", "class=byline"),
        ("name=\"q\"", "name=q"),
    ] {
        out = out.replace(from, to);
    }
    // href="x" -> href=x where nothing in x needs quoting.
    let mut unquoted = String::new();
    let mut rest = out.as_str();
    while let Some(at) = rest.find("href=\"") {
        let value_at = at + "href=\"".len();
        let Some(len) = rest[value_at..].find('"') else { break };
        let value = &rest[value_at..value_at + len];
        unquoted.push_str(&rest[..at]);
        if value.contains([' ', '\'', '=', '<', '>', '`']) {
            unquoted.push_str(&rest[at..value_at + len + 1]);
        } else {
            unquoted.push_str("href=");
            unquoted.push_str(value);
        }
        rest = &rest[value_at + len + 1..];
    }
    unquoted.push_str(rest);
    unquoted
}

/// An HTML5 parser's re-serialization (html5ever's, as Servo writes pages).
fn reserialize(page: &str) -> String {
    use html5ever::tendril::TendrilSink;
    let dom = html5ever::parse_document(markup5ever_rcdom::RcDom::default(), Default::default()).one(page);
    let document: markup5ever_rcdom::SerializableHandle = dom.document.clone().into();
    let mut out = Vec::new();
    html5ever::serialize(&mut out, &document, Default::default()).unwrap();
    String::from_utf8(out).unwrap()
}

struct Case {
    path: String,
    primary: Behavior,
    /// None: the mirror answers with its fallback (its home page).
    mirror: Option<Behavior>,
    verdict: &'static str,
    reason: Option<&'static str>,
}

/// Every single-round case, as `p` (the primary) and `m` (the mirror) serve it.
fn cases(p: &str, m: &str) -> Vec<Case> {
    let cases = std::cell::RefCell::new(Vec::new());
    let case = |name: &str, primary: Behavior, mirror: Option<Behavior>, want: (&'static str, Option<&'static str>)| {
        cases.borrow_mut().push(Case {
            path: format!("/c/{name}"),
            primary,
            mirror,
            verdict: want.0,
            reason: want.1,
        });
    };
    const SAME: (&str, Option<&str>) = ("same", None);
    const CHANGED: (&str, Option<&str>) = ("diverged", Some("content_changed"));
    let pair = |name: &str, primary_extra: &str, mirror_extra: &str, want| {
        let primary_extra = primary_extra.replace("{host}", p);
        let mirror_extra = mirror_extra.replace("{host}", m);
        case(
            name,
            html(news_page(p, &primary_extra)),
            Some(html(news_page(m, &mirror_extra))),
            want,
        );
    };

    // 1. Tokenizing as browsers do. Text they show counts...
    pair("comment_empty", "", "<!--><p>Inserted paragraph.</p>", CHANGED);
    pair("comment_dash", "", "<!---><p>Inserted paragraph.</p>", CHANGED);
    pair(
        "comment_bang_close",
        "",
        "<!-- note --!><p>Inserted paragraph.</p><!-- -->",
        CHANGED,
    );
    pair(
        "bogus_comment_bang",
        "",
        "<![if !IE]><p>Inserted paragraph.</p><![endif]>",
        CHANGED,
    );
    pair(
        "bogus_comment_question",
        "",
        "<? a > <p>Inserted paragraph.</p> ?>",
        CHANGED,
    );
    pair(
        "script_escape_then_text",
        "",
        "<script><!-- var a; --></script><p>Inserted paragraph.</p>",
        CHANGED,
    );
    pair(
        "xmp_is_literal",
        "<xmp>a <b>b</b></xmp>",
        "<xmp>a &lt;b>b&lt;/b></xmp>",
        CHANGED,
    );
    pair(
        "plaintext_swallows_the_rest",
        "",
        "<plaintext><p>Inserted paragraph.",
        CHANGED,
    );
    pair(
        "svg_cdata_is_text",
        "<svg><text></text></svg>",
        "<svg><text><![CDATA[Inserted text]]></text></svg>",
        CHANGED,
    );
    pair(
        "first_duplicate_attribute_changed",
        r#"<a href="http://{host}/world/1">More</a>"#,
        r#"<a href="https://elsewhere.invalid/x" href="http://{host}/world/1">More</a>"#,
        CHANGED,
    );
    pair(
        "end_article_in_a_cell",
        "<table><tr><td>Cell</td></tr></table>",
        "<table><tr><td>Cell</article><p>Inserted paragraph.</p></td></tr></table>",
        CHANGED,
    );
    pair(
        "declarative_shadow_root",
        "<div></div>",
        r#"<div><template shadowrootmode="open"><p>Inserted paragraph.</p></template></div>"#,
        CHANGED,
    );
    // ...and what they do not show does not.
    pair(
        "comments_do_not_count",
        "<!-- a -->",
        "<!-- Mirrored by a mirror --><!-- <p>Not shown.</p> -->",
        SAME,
    );
    pair(
        "script_double_escaped",
        "",
        "<script><!--<script>var a = 1;</script><p>Not shown.</p>--></script>",
        SAME,
    );
    pair("style_is_rawtext", "", "<style><p>Not shown.</p></style>", SAME);
    pair(
        "noembed_and_noframes_are_rawtext",
        "",
        "<noembed><p>Not shown.</p></noembed><noframes><p>Not shown.</p></noframes>",
        SAME,
    );
    pair(
        "textarea_is_rcdata",
        "<textarea>a <b> & c</textarea>",
        "<textarea>a &lt;b&gt; &amp; c</textarea>",
        SAME,
    );
    pair("html_cdata_is_a_comment", "", "<![CDATA[ Not shown ]]>", SAME);
    pair(
        "first_duplicate_attribute_wins",
        r#"<a href="http://{host}/world/1">More</a>"#,
        r#"<a href="http://{host}/world/1" href="https://elsewhere.invalid/x">More</a>"#,
        SAME,
    );
    pair(
        "attribute_quotes_and_spacing",
        r#"<img src="http://{host}/static/a.jpg" alt="a > b" title="t">"#,
        r#"<img src=http://{host}/static/a.jpg alt='a > b'title="t"/>"#,
        SAME,
    );
    pair(
        "self_closing_slash_on_a_div",
        "<div><p>Boxed.</p></div>",
        "<div/><p>Boxed.</p></div>",
        SAME,
    );
    pair(
        "character_references",
        "<p>It’s a café – “quoted” © 2026</p>",
        "<p>It&rsquo;s a caf&#xE9; &#8211; &ldquo;quoted&#x201D; &copy 2026</p>",
        SAME,
    );
    pair(
        "legacy_reference_in_an_attribute",
        r#"<a href="http://{host}/s?a=1&copy=2">Search</a>"#,
        r#"<a href="http://{host}/s?a=1&amp;copy=2">Search</a>"#,
        SAME,
    );
    pair("nul_in_text", "<p>Tail text.</p>", "<p>Tail\0 text.</p>", SAME);
    pair(
        "implied_end_tags",
        "<ul><li>One</li><li>Two</li></ul><dl><dt>T</dt><dd>D</dd></dl><p>Para one.</p><p>Para two.</p>\
         <table><tbody><tr><td>1</td><td>2</td></tr></tbody></table><select><option>A</option><option>B</option></select>",
        "<ul><li>One<li>Two</ul><dl><dt>T<dd>D</dl><p>Para one.<p>Para two.\
         <table><tr><td>1<td>2</table><select><option>A<option>B</select>",
        SAME,
    );
    pair(
        "template_is_inert",
        "<div></div>",
        "<div><template><p>Not shown.</p></template></div>",
        SAME,
    );
    // The charset prescan as the standard has it: the mirror's bytes are
    // windows-1251, and only a spec-conformant prescan finds that out.
    let cyrillic = "<p>Переговоры о трубопроводе продолжатся завтра.</p>";
    for (name, head) in [
        (
            "prescan_skips_comments",
            r#"<!-- <meta charset="utf-8"> --><meta charset="windows-1251">"#,
        ),
        (
            "prescan_needs_http_equiv",
            r#"<meta content="text/html; charset=utf-8"><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">"#,
        ),
        (
            "prescan_exact_tag_names",
            r#"<metadata charset="utf-8"><meta charset="windows-1251">"#,
        ),
    ] {
        let page = news_page(m, cyrillic).replace(r#"<meta charset="utf-8">"#, head);
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(&page);
        assert!(!unmappable);
        case(
            name,
            html(news_page(p, cyrillic)),
            Some(raw("text/html", bytes.into_owned())),
            SAME,
        );
    }

    // 2. Copies made by ordinary tools stay the same...
    case(
        "crawler_copy",
        html(news_page(p, "")),
        Some(html(crawler_copy(&news_page(m, ""), m, "crawler_copy"))),
        SAME,
    );
    let optional = "<details open=\"open\"><summary>Background</summary><p>The dispute began in 2014.</p></details>\
        <ol reversed=\"reversed\"><li>Three</li><li>Two</li></ol><p title=\"\">It&rsquo;s a note.</p>";
    case(
        "minified",
        html(news_page(p, optional)),
        Some(html(minify(&news_page(m, optional)))),
        SAME,
    );
    case(
        "reserialized",
        html(news_page(p, "")),
        Some(html(reserialize(&news_page(m, "")))),
        SAME,
    );
    let accented = "<p>Café “quoted” — naïve</p>";
    let page_1252 = news_page(m, accented).replace("charset=\"utf-8\"", "charset=\"windows-1252\"");
    let (bytes_1252, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&page_1252);
    assert!(!unmappable);
    case(
        "transcoded_windows_1252",
        html(news_page(p, accented)),
        Some(raw("text/html; charset=windows-1252", bytes_1252.into_owned())),
        SAME,
    );
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(news_page(m, accented).encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    case(
        "transcoded_utf16",
        html(news_page(p, accented)),
        Some(raw("text/html", utf16)),
        SAME,
    );
    let share = |host: &str| {
        let encoded = format!("http%3A%2F%2F{}%2Fc%2Fhost_rewrite", host.replace(':', "%3A"));
        let json = format!("http:\\/\\/{host}\\/c\\/host_rewrite");
        format!(
            r#"<p>Also published at {host}.</p><a href="https://share.invalid/?u={encoded}">Share</a> <a href="https://share.invalid/?j=%7B%22u%22%3A%22{json}%22%7D">Share as JSON</a>"#
        )
    };
    case(
        "host_rewrite",
        html(news_page(p, &share(p))),
        Some(html(news_page(m, &share(m)))),
        SAME,
    );
    let banner = news_page(m, "")
        .replace(
            "<header>",
            "<div class=\"mirror-banner\"><p>You are reading a mirror of The Daily Example. Bookmark this address.</p></div><header>",
        )
        .replace(
            &format!("<a href=\"http://{m}/business\">Business</a>"),
            &format!("<a href=\"http://{m}/mirrors\">Other mirrors</a> <a href=\"http://{m}/tor\">Onion</a>"),
        )
        .replace(
            "</aside>",
            "</aside><div class=\"ad\"><a href=\"https://ads.invalid/c?1\"><img src=\"https://ads.invalid/b.png\" alt=\"Advert\"></a></div><script>track()</script>",
        );
    case(
        "mirror_banner_menu_and_ads",
        html(news_page(p, "")),
        Some(html(banner)),
        SAME,
    );

    // ...the article hidden inside something that hides it is not the
    // article...
    let decoy = "<section><p>Officials deny that any dispute over the pipeline exists, and say the talks were routine.</p></section>";
    for (name, open, close) in [
        ("hidden_attribute", "<div hidden>", "</div>"),
        ("aria_hidden", "<div aria-hidden=\"true\">", "</div>"),
        ("template_wrapper", "<template>", "</template>"),
        ("display_none", "<div style=\"display: none\">", "</div>"),
        (
            "visibility_hidden",
            "<div style=\"color:red;visibility:hidden\">",
            "</div>",
        ),
    ] {
        let main = format!("{open}{}{close}{decoy}", article(m, ""));
        case(
            name,
            html(news_page(p, "")),
            Some(html(page_around(m, TITLE, &main))),
            ("diverged", Some("selector_missing")),
        );
    }
    // ...what a reader sees through another document counts...
    pair(
        "iframe_src",
        r#"<iframe src="https://video.invalid/embed/1"></iframe>"#,
        r#"<iframe src="https://video.invalid/embed/2"></iframe>"#,
        CHANGED,
    );
    pair(
        "iframe_srcdoc",
        r#"<iframe srcdoc="<p>Statement</p>"></iframe>"#,
        r#"<iframe srcdoc="<p>Altered statement</p>"></iframe>"#,
        CHANGED,
    );
    pair(
        "object_data",
        r#"<object data="http://{host}/static/chart.svg"></object>"#,
        r#"<object data="http://{host}/static/chart-2.svg"></object>"#,
        CHANGED,
    );
    pair(
        "embed_src",
        r#"<embed src="http://{host}/static/clip.mp4">"#,
        r#"<embed src="http://{host}/static/clip-2.mp4">"#,
        CHANGED,
    );
    pair(
        "noscript_content",
        "<noscript><p>Enable scripts to see the map.</p></noscript>",
        "<noscript><p>The map shows a different route.</p></noscript>",
        CHANGED,
    );
    // ...and so does the page around it.
    let overlay = format!(
        "{}<div style=\"position:fixed;top:0;left:0;width:100%;height:100%;z-index:9999;background:#fff\"><p>This content is unavailable.</p></div>",
        article(m, "")
    );
    case(
        "full_page_overlay",
        html(news_page(p, "")),
        Some(html(page_around(m, TITLE, &overlay))),
        ("diverged", Some("page_changed")),
    );
    let notice: String = (0..6)
        .map(|_| "<p>Access to the information resource has been restricted on the basis of a decision of the competent authorities. The owner of the resource has been notified and the restriction will remain in force until the violation is removed.</p>")
        .collect();
    case(
        "block_page_carrying_the_article",
        html(news_page(p, "")),
        Some(html(page_around(
            m,
            "Access restricted by the authorities",
            &format!("{notice}{}", article(m, "")),
        ))),
        ("diverged", Some("page_changed")),
    );
    // Bodies that are not pages never become `same`.
    let not_html = ("diverged", Some("not_html"));
    case(
        "json_as_html",
        html(news_page(p, "")),
        Some(raw("text/html", br#"{"error": "rate limited", "retry": 30}"#.to_vec())),
        not_html,
    );
    case(
        "empty_body",
        html(news_page(p, "")),
        Some(raw("text/html", Vec::new())),
        not_html,
    );
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&[7u8; 600]);
    case(
        "binary_as_html",
        html(news_page(p, "")),
        Some(raw("text/html", png)),
        not_html,
    );
    case(
        "cut_by_max_body",
        html(news_page(p, "")),
        Some(html(news_page(m, &format!("<!-- {} -->", "x".repeat(200_000))))),
        ("diverged", Some("truncated")),
    );

    // 4. What operators say does not count (with `content_exclude`, and the
    // mirror's image host as its alias).
    case(
        "excluded_widgets",
        html(news_page(
            p,
            r#"<span class="views">1,204 views</span> <time class="updated">Updated 4 minutes ago</time><div class="share"><a href="https://share.invalid/?u=1">Share</a></div>"#,
        )),
        Some(html(news_page(
            m,
            r#"<span class="views">9,877 views</span> <time class="updated">Updated 2 hours ago</time><div class="share"><a href="https://other.invalid/">Tweet</a></div>"#,
        ))),
        SAME,
    );
    case(
        "alias_assets",
        html(news_page(p, "")),
        Some(html(news_page(m, "").replace(
            &format!("http://{m}/static/photo.jpg"),
            "http://img.mirror.test/static/photo.jpg",
        ))),
        SAME,
    );

    // 5. Reasons.
    let small = |title: &str, body: &str| {
        format!("<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>")
    };
    case(
        "operator_fingerprint_in_body",
        html(news_page(p, "")),
        Some(html(small(
            "Notice",
            "<h1>Notice</h1><p>Reference: Court order 2024/117.</p>",
        ))),
        ("diverged", Some("block_page")),
    );
    case(
        "operator_fingerprint_in_header",
        html(news_page(p, "")),
        Some(Behavior::Raw {
            headers: vec![
                ("content-type", "text/html".into()),
                ("x-filter", "censorbox/2.1".into()),
            ],
            body: news_page(m, "").into_bytes(),
        }),
        ("diverged", Some("block_page")),
    );
    case(
        "built_in_block_page",
        html(news_page(p, "")),
        Some(html(block_page(m))),
        ("diverged", Some("block_page")),
    );
    case(
        "parking_redirect",
        html(news_page(p, "")),
        Some(Behavior::Redirect(
            "http://www.sedoparking.com/search?domain=example".into(),
        )),
        ("diverged", Some("parked")),
    );
    case(
        "parking_page",
        html(news_page(p, "")),
        Some(html(
            std::fs::read_to_string(Path::new(FIXTURES).join("parked.html")).unwrap(),
        )),
        ("diverged", Some("parked")),
    );
    case(
        "not_found_title",
        html(news_page(p, "")),
        Some(html(small(
            "Page not found – The Daily Example",
            "<p>Sorry, we could not find that page.</p>",
        ))),
        ("diverged", Some("soft_404")),
    );
    // The mirror answers any path it does not have with its home page,
    // which is also its answer to a path that cannot exist.
    case(
        "the_bases_own_not_found_page",
        html(news_page(p, "")),
        None,
        ("diverged", Some("soft_404")),
    );
    case(
        "not_copied_yet",
        html(news_page(p, "")),
        Some(Behavior::Status(404)),
        ("missing", None),
    );
    case(
        "gone",
        html(news_page(p, "")),
        Some(Behavior::Status(410)),
        ("missing", None),
    );
    cases.into_inner()
}

/// The mirror's home page: what it answers on paths it does not have.
fn home_page(host: &str) -> String {
    page_around(
        host,
        "The Daily Example",
        &format!(
            "<section><h2>Latest</h2><ul><li><a href=\"http://{host}/a/1\">Harbour reopens after storm</a></li><li><a href=\"http://{host}/a/3\">Rail strike called off</a></li></ul></section>"
        ),
    )
}

/// The shared fixture's block page, as a censor serves it on `authority`.
fn block_page(authority: &str) -> String {
    fixture("blockpage.html", "www.example.com", authority)
}

fn quoted(items: &[String]) -> String {
    items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ")
}

/// (verdict, reason) of every case on `base`, from `/status/{site}`.
fn judged(detail: &Value, base: &str) -> BTreeMap<String, (String, Option<String>)> {
    detail["articles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|article| {
            let entry = article["bases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["url"] == base)
                .unwrap();
            (
                article["path"].as_str().unwrap().to_string(),
                (
                    entry["verdict"].as_str().unwrap_or("null").to_string(),
                    entry["diverged_reason"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_case_gets_its_verdict_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let mirror = TestOrigin::start(Behavior::Status(404)).await;
    mirror.set(html(home_page(&mirror.authority())));
    let blocked = TestOrigin::start(Behavior::Status(404)).await;
    blocked.set(html(block_page(&blocked.authority())));
    let (p, m) = (primary.authority(), mirror.authority());
    let all_cases = cases(&p, &m);
    for case in &all_cases {
        primary.set_path(&case.path, case.primary.clone());
        if let Some(served) = &case.mirror {
            mirror.set_path(&case.path, served.clone());
        }
    }
    // Another site (a base belongs to one) without a selector, exclusions
    // or aliases: the whole page counts.
    let plain_primary = TestOrigin::start(Behavior::Status(404)).await;
    let plain_mirror = TestOrigin::start(Behavior::Status(404)).await;
    let (p2, m2) = (plain_primary.authority(), plain_mirror.authority());
    for case in cases(&p2, &m2) {
        if ["/c/excluded_widgets", "/c/alias_assets"].contains(&case.path.as_str()) {
            plain_primary.set_path(&case.path, case.primary.clone());
            plain_mirror.set_path(&case.path, case.mirror.clone().unwrap());
        }
    }
    plain_primary.set_path("/p/title_rcdata", html(page_around(&p2, "Q&amp;A: the <em> tag", "")));
    plain_mirror.set_path("/p/title_rcdata", html(page_around(&m2, "Q&A: the &lt;em&gt; tag", "")));
    plain_primary.set_path("/p/title_changed", html(page_around(&p2, TITLE, "")));
    plain_mirror.set_path(
        "/p/title_changed",
        html(page_around(&m2, "Ministers agree pipeline route", "")),
    );
    let cases = all_cases;
    std::fs::write(dir.path().join("blocks.csv"), CSV).unwrap();
    let paths: Vec<String> = cases.iter().map(|c| c.path.clone()).collect();
    let plain_paths: Vec<String> = [
        "/p/title_rcdata",
        "/p/title_changed",
        "/c/excluded_widgets",
        "/c/alias_assets",
    ]
    .map(String::from)
    .to_vec();
    let config = dir.path().join("mirrorgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:0"

[store]
path = "{store}"

[probe]
interval = "1h"
timeout = "3s"
per_host_rate = 1000
max_body = "128KiB"

[verdicts]
blockpage_fingerprints = "blocks.csv"

[[sites]]
name = "sel"
primary = "http://{p}"
mirrors = [{{ url = "http://{m}", aliases = ["img.mirror.test"] }}, "{blocked}"]
articles = [{paths}]
content_selector = "article"
content_exclude = [".views", "time.updated", ".share"]

[[sites]]
name = "plain"
primary = "http://{p2}"
mirrors = ["http://{m2}"]
articles = [{plain}]
"#,
            store = dir.path().join("state.db").display(),
            blocked = blocked.url(),
            paths = quoted(&paths),
            plain = quoted(&plain_paths),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;

    // The base's own not-found page is looked at after its articles: allow
    // it the time to arrive.
    let mirror_url = mirror.url();
    let expected: BTreeMap<String, (String, Option<String>)> = cases
        .iter()
        .map(|c| (c.path.clone(), (c.verdict.to_string(), c.reason.map(str::to_string))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let detail = loop {
        let detail = get_json(&daemon.url("/status/sel")).await;
        if judged(&detail, &mirror_url) == expected || Instant::now() > deadline {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let got = judged(&detail, &mirror_url);
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(path, want)| got.get(*path) != Some(want))
        .map(|(path, want)| format!("{path}: want {want:?}, got {:?}", got.get(path)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        expected.len(),
        wrong.join("\n")
    );
    // The primary is the reference throughout.
    for (path, (verdict, _)) in judged(&detail, &primary.url()) {
        assert_eq!(verdict, "same", "primary on {path}");
    }

    let plain = get_json(&daemon.url("/status/plain")).await;
    let plain_got = judged(&plain, &plain_mirror.url());
    let changed = ("diverged".to_string(), Some("content_changed".to_string()));
    assert_eq!(plain_got["/p/title_rcdata"], ("same".to_string(), None));
    assert_eq!(plain_got["/p/title_changed"], changed);
    // The same pages, without the exclusions and the alias: they differ.
    assert_eq!(plain_got["/c/excluded_widgets"], changed);
    assert_eq!(plain_got["/c/alias_assets"], changed);

    // Evidence: the passage that differs, and the rule that recognised a page.
    let evidence_url =
        |path: &str, base: &str| format!("/status/sel/evidence?path={}&base={}", urlencode(path), urlencode(base));
    let entry = &bases_of(&detail, "/c/comment_empty")[&mirror_url];
    assert_eq!(entry["evidence"], evidence_url("/c/comment_empty", &mirror_url));
    let evidence = get_json(&daemon.url(entry["evidence"].as_str().unwrap())).await;
    assert_eq!(evidence["diverged_reason"], "content_changed");
    let diff = evidence["diff"].as_str().unwrap();
    assert!(
        diff.contains("+") && diff.contains("Inserted paragraph."),
        "{evidence:#}"
    );
    assert!(diff.len() <= 4096, "a few KB at most");
    let fingerprinted = get_json(&daemon.url(&evidence_url("/c/operator_fingerprint_in_body", &mirror_url))).await;
    assert!(
        fingerprinted["rule"].as_str().unwrap().contains("test.body"),
        "{fingerprinted:#}"
    );
    assert_eq!(
        bases_of(&detail, "/c/minified")[&mirror_url]["evidence"],
        Value::Null,
        "no evidence for a same verdict"
    );
    let response = get(daemon.url("/status/sel/evidence?path=%2Fc%2Fgone")).await;
    assert_eq!(response.status(), 400);
    let response = get(daemon.url(&evidence_url("/c/comment_empty", "http://unknown.invalid"))).await;
    assert_eq!(response.status(), 404);
    let response = get(daemon.url(&evidence_url("/c/minified", &mirror_url))).await;
    assert_eq!(response.status(), 404);

    // /status counts verdicts and reasons per base: a fully blocked mirror
    // reads differently from one with a few edited articles.
    let status = get_json(&daemon.url("/status")).await;
    let blocked_summary = base_summary(&status["sites"][0], &blocked.url());
    assert_eq!(blocked_summary["verdicts"]["diverged"], cases.len());
    assert_eq!(blocked_summary["reasons"]["block_page"], cases.len());
    assert_eq!(blocked_summary["reasons"]["content_changed"], 0);
    let mirror_summary = base_summary(&status["sites"][0], &mirror_url);
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &cases {
        if let Some(reason) = case.reason {
            *reasons.entry(reason).or_default() += 1;
        }
    }
    for (reason, count) in &reasons {
        assert_eq!(mirror_summary["reasons"][*reason], *count, "{reason}");
    }
    assert_eq!(
        mirror_summary["verdicts"]["missing"],
        cases.iter().filter(|c| c.verdict == "missing").count()
    );
    let metrics = get_text(&daemon.url("/metrics")).await;
    let series = format!(
        "mirrorgate_diverged{{site=\"sel\",base=\"{}\",reason=\"block_page\"}}",
        blocked.url()
    );
    assert_eq!(metric(&metrics, &series), Some(cases.len() as f64), "{series}");

    // The log line for the blocked mirror names the reason and examples.
    let changes = daemon.log_entries(&[("message", "base state changed"), ("base", &blocked.url())]);
    let change = changes
        .last()
        .unwrap_or_else(|| panic!("no state change logged:\n{}", daemon.log()));
    let reason = change["fields"]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("block_page: {}", cases.len())), "{change:#}");
    let examples = change["fields"]["articles"].as_str().unwrap();
    assert_eq!(examples.matches("(block_page)").count(), 3, "{change:#}");

    // `check --format text` prints the verdict, its reason and the evidence.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(binary())
            .args(["check", "--format", "text", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let at = report
        .find("  /c/comment_empty  ->")
        .unwrap_or_else(|| panic!("{report}"));
    let section = &report[at..];
    let section = &section[..section[1..].find("\n  /").map_or(section.len(), |e| e + 1)];
    assert!(section.contains("diverged (content_changed)"), "{section}");
    assert!(section.contains("+Inserted paragraph."), "{section}");
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The verdict and reason of `base` on `path`, from `/status/{site}`.
async fn verdict_of(daemon: &Daemon, site: &str, path: &str, base: &str) -> (String, Option<String>) {
    let detail = get_json(&daemon.url(&format!("/status/{site}"))).await;
    judged(&detail, base).remove(path).unwrap()
}

/// Waits until `base` has `want` on `path`.
async fn judged_as(daemon: &Daemon, site: &str, path: &str, base: &str, want: (&str, Option<&str>)) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = verdict_of(daemon, site, path, base).await;
        if (got.0.as_str(), got.1.as_deref()) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} on {path}: want {want:?}, still {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn redirect_target(daemon: &Daemon, site: &str, path: &str) -> String {
    let response = get(daemon.url(&format!("/r/{site}{path}"))).await;
    assert_eq!(response.status(), 302, "/r/{site}{path}");
    response.headers()["location"].to_str().unwrap().to_string()
}

fn version_2(host: &str) -> String {
    news_page(host, "<p>Update: the ministers agreed to a new route on Wednesday.</p>")
}

#[tokio::test]
async fn references_come_from_the_primarys_newest_trusted_version() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let mirrors = [
        TestOrigin::start(Behavior::Status(404)).await,
        TestOrigin::start(Behavior::Status(404)).await,
        TestOrigin::start(Behavior::Status(404)).await,
    ];
    let served = ["/s/seized", "/s/updated", "/s/a", "/s/b", "/s/c"];
    let unsynced = ["/s/new-1", "/s/new-2"];
    for origin in std::iter::once(&primary).chain(&mirrors) {
        for path in served {
            origin.set_path(path, html(news_page(&origin.authority(), "")));
        }
    }
    for path in unsynced {
        primary.set_path(path, html(news_page(&primary.authority(), "")));
    }
    let articles: Vec<&str> = served.iter().chain(&unsynced).copied().collect();
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("state.db"),
        "interval = \"1s\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 1000",
        &[SiteSpec::new(
            "news",
            primary.url(),
            mirrors.iter().map(TestOrigin::url).collect(),
            articles,
        )
        .extra("content_selector = \"article\"")],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let [first, second, third] = &mirrors;
    for path in unsynced {
        // Not copied yet: missing there, and nothing against the mirror.
        assert_eq!(
            verdict_of(&daemon, "news", path, &first.url()).await,
            ("missing".to_string(), None)
        );
    }

    // The primary is seized (a block page) on one article, and updated on
    // another: one mirror follows the update, one keeps the old version, one
    // serves an old version it also altered.
    primary.set_path("/s/seized", html(block_page(&primary.authority())));
    primary.set_path("/s/updated", html(version_2(&primary.authority())));
    third.set_path("/s/updated", html(version_2(&third.authority())));
    second.set_path(
        "/s/updated",
        html(news_page(&second.authority(), "").replace("frank", "hostile")),
    );
    judged_as(
        &daemon,
        "news",
        "/s/seized",
        &primary.url(),
        ("diverged", Some("block_page")),
    )
    .await;
    judged_as(&daemon, "news", "/s/updated", &first.url(), ("stale", None)).await;
    for mirror in &mirrors {
        // The last good version stays the reference; readers go to mirrors.
        assert_eq!(
            verdict_of(&daemon, "news", "/s/seized", &mirror.url()).await,
            ("same".to_string(), None)
        );
    }
    let detail = get_json(&daemon.url("/status/news")).await;
    assert_eq!(article_of(&detail, "/s/seized")["reference_source"], "history");
    assert_eq!(
        redirect_target(&daemon, "news", "/s/seized").await,
        format!("{}/s/seized", first.url())
    );
    // An altered old copy is not stale.
    judged_as(
        &daemon,
        "news",
        "/s/updated",
        &second.url(),
        ("diverged", Some("content_changed")),
    )
    .await;
    judged_as(&daemon, "news", "/s/updated", &third.url(), ("same", None)).await;

    // The primary goes down: the newest version it served stays the
    // reference, though two mirrors agree on the older one.
    primary.set_path("/s/updated", Behavior::Status(503));
    judged_as(&daemon, "news", "/s/updated", &primary.url(), ("unreachable", None)).await;
    let rounds = rounds_completed(&daemon, 0).await["round"]["completed"]
        .as_u64()
        .unwrap();
    rounds_completed(&daemon, rounds + 2).await;
    assert_eq!(
        verdict_of(&daemon, "news", "/s/updated", &first.url()).await,
        ("stale".to_string(), None)
    );
    assert_eq!(
        verdict_of(&daemon, "news", "/s/updated", &third.url()).await,
        ("same".to_string(), None)
    );
    let detail = get_json(&daemon.url("/status/news")).await;
    assert_eq!(article_of(&detail, "/s/updated")["reference_source"], "history");
    assert_eq!(
        redirect_target(&daemon, "news", "/s/updated").await,
        format!("{}/s/updated", third.url())
    );

    // Round after round, two unsynced articles never made the mirror that
    // serves the others anything but up.
    let status = get_json(&daemon.url("/status")).await;
    assert_eq!(
        base_summary(&status["sites"][0], &first.url())["verdicts"]["missing"],
        2
    );
    let changes = daemon.log_entries(&[("message", "base state changed"), ("base", &first.url())]);
    let states: Vec<&str> = changes.iter().map(|c| c["fields"]["to"].as_str().unwrap()).collect();
    assert!(
        !states.contains(&"down"),
        "per-article 404s took the mirror down: {changes:#?}"
    );
}

#[tokio::test]
async fn observations_older_than_max_age_are_unknown_and_never_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let mirror = TestOrigin::start(Behavior::Status(404)).await;
    primary.set_path("/s/a", html(news_page(&primary.authority(), "")));
    mirror.set_path("/s/a", html(news_page(&mirror.authority(), "")));
    let config = dir.path().join("mirrorgate.toml");
    let store = dir.path().join("state.db");
    let write = |probe: &str| {
        write_config(
            &config,
            &store,
            probe,
            &[SiteSpec::new("news", primary.url(), vec![mirror.url()], vec!["/s/a"])
                .extra("content_selector = \"article\"\nprefer_primary = false")],
        )
    };
    write("interval = \"1h\"\ntimeout = \"2s\"\nper_host_rate = 1000");
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    assert_eq!(
        redirect_target(&daemon, "news", "/s/a").await,
        format!("{}/s/a", mirror.url())
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));

    // Back after downtime, with a mirror that now hangs: what the store
    // says it served is too old to send anyone there.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mirror.set_path("/s/a", Behavior::Hang);
    write("interval = \"1s\"\nmax_age = \"1s\"\ntimeout = \"10s\"\nper_host_rate = 1000");
    let daemon = Daemon::start(&config);
    judged_as(&daemon, "news", "/s/a", &primary.url(), ("same", None)).await;
    assert_eq!(
        verdict_of(&daemon, "news", "/s/a", &mirror.url()).await,
        ("unknown".to_string(), None)
    );
    assert_eq!(
        redirect_target(&daemon, "news", "/s/a").await,
        format!("{}/s/a", primary.url())
    );
}

#[tokio::test]
async fn nothing_computed_under_other_rules_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let mirror = TestOrigin::start(Behavior::Status(404)).await;
    // The same article; the mirror's menu differs, which counts only
    // without a selector. Both answer with validators, so an unchanged
    // body is the case a cache would skip.
    primary.set_path("/s/a", Behavior::Validated(news_page(&primary.authority(), "")));
    let other_menu = news_page(&mirror.authority(), "").replace(">Business<", ">Markets<");
    mirror.set_path("/s/a", Behavior::Validated(other_menu));
    let config = dir.path().join("mirrorgate.toml");
    let store = dir.path().join("state.db");
    let write = |extra: &'static str| {
        write_config(
            &config,
            &store,
            "interval = \"1h\"\ntimeout = \"2s\"\nper_host_rate = 1000",
            &[SiteSpec::new("news", primary.url(), vec![mirror.url()], vec!["/s/a"]).extra(extra)],
        )
    };
    write("content_selector = \"article\"");
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    assert_eq!(
        verdict_of(&daemon, "news", "/s/a", &mirror.url()).await,
        ("same".to_string(), None)
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));

    // A restart under other rules: the bodies are unchanged, the verdict is not.
    write("");
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    assert_eq!(
        verdict_of(&daemon, "news", "/s/a", &mirror.url()).await,
        ("diverged".to_string(), Some("content_changed".to_string()))
    );

    // And a reload back: the selector's verdict again.
    write("content_selector = \"article\"");
    daemon.signal("HUP");
    judged_as(&daemon, "news", "/s/a", &mirror.url(), ("same", None)).await;
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
}
