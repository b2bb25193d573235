//! Fingerprinting speed on the pages of bench/run.py's corpus: the
//! realistic one as a mirror serves it (its own origin in every absolute
//! link, `//host` and JSON-escaped forms in inline scripts, a banner and
//! scripts of its own), with and without `content_selector`, and the first
//! corpus's page for continuity; beside the raw-body hashes.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirrorgate::fingerprint::{ContentSelector, Hash, Normalizer, RawHash};
use mirrorgate::origin::Origin;

/// The first corpus's page: a long menu, inline scripts, one article, many
/// absolute links to a host that is no configured base.
fn old_page() -> String {
    let nav: String = (0..600)
        .map(|k| format!("<li><a href=\"https://news.example/section/{k}\">Section {k}</a></li>\n"))
        .collect();
    let numbers: Vec<String> = (0..3000).map(|n| n.to_string()).collect();
    let script = format!(
        "<script>window.cfg={{\"ads\":[{}],\"rendered\":1485250000}};</script>\n",
        numbers.join(", ")
    );
    let related: String = (0..700)
        .map(|k| format!("<li><a href=\"https://news.example/Detail/1/{k}\">Related story {k}</a></li>\n"))
        .collect();
    format!(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Article</title>{script}{script}</head><body>\n\
         <nav><ul>{nav}</ul></nav>\n<article><h1>Article</h1>\n{}</article>\n\
         <aside><ul>{related}</ul></aside><footer>Also at alternate addresses.</footer></body></html>\n",
        paragraphs(1)
    )
}

fn paragraphs(article: usize) -> String {
    (0..12)
        .map(|p| {
            let sentence = format!(
                "Paragraph {p} of article {article}: the quick brown fox jumps over the lazy dog, as reported by the correspondent on the scene. "
            );
            format!("<p>{}</p>\n", sentence.repeat(3))
        })
        .collect()
}

/// `realistic_page(i, origin, "proxy", …)` of bench/run.py: the page as the
/// proxy mirror at `origin` serves it.
fn mirror_page(origin: &str) -> String {
    let i = 1;
    let host = origin.split_once("://").map_or(origin, |(_, h)| h);
    let link = |path: String, n: usize| {
        if n.is_multiple_of(3) {
            format!("//{host}{path}")
        } else {
            format!("{origin}{path}")
        }
    };
    let escaped = |url: String| format!("\"{}\"", url.replace('/', "\\/"));
    let nav: String = (0..600)
        .map(|k| {
            format!(
                "<li><a href=\"{}\">Section {k}</a></li>\n",
                link(format!("/section/{k}"), k)
            )
        })
        .collect();
    let ads: Vec<String> = (0..2400).map(|n| n.to_string()).collect();
    let related_urls: Vec<String> = (0..40).map(|k| escaped(format!("{origin}/Detail/{i}/{k}"))).collect();
    let script = format!(
        "<script>window.cfg={{\"ads\": [{}], \"rendered\": 1485250000}};window.related=[{}];window.canonical={};</script>\n",
        ads.join(", "),
        related_urls.join(","),
        escaped(format!("{origin}/news/{i}.html"))
    );
    let extra =
        format!("<script src=\"{origin}/proxy/inject.js?v=3\"></script><script>var _mirror={{'id':'p1'}};</script>\n");
    let banner = format!("<div class=\"mirror-banner\">You are reading a mirror of this site at {host}.</div>\n");
    let images: String = (0..4)
        .map(|k| {
            format!(
                "<img src=\"{}\" alt=\"Photo {k}\">",
                link(format!("/images/{i}/{k}"), k)
            )
        })
        .collect();
    let related: String = (0..700)
        .map(|k| {
            format!(
                "<li><a href=\"{}\">Related story {k}</a></li>\n",
                link(format!("/Detail/{i}/{k}"), k)
            )
        })
        .collect();
    format!(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Article {i}</title>\
         <link rel=\"canonical\" href=\"{}\">{script}{script}{extra}</head><body>\n{banner}\
         <nav><ul>{nav}</ul></nav>\n<article><h1>Article {i}</h1>\n{images}{}</article>\n\
         <aside><ul>{related}</ul></aside><footer>Also at alternate addresses.</footer></body></html>\n",
        link(format!("/news/{i}"), 1),
        paragraphs(i)
    )
}

fn fingerprint(c: &mut Criterion) {
    let bases: Vec<Origin> = [
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8082",
        "http://127.0.0.1:8083",
        "http://127.0.0.1:8084",
    ]
    .iter()
    .map(|b| Origin::parse(b).expect("valid base"))
    .collect();
    let selector = ContentSelector::parse("article").expect("valid selector");
    let with_selector = Normalizer::simple(&bases[0], &bases, Some(selector));
    let without_selector = Normalizer::simple(&bases[0], &bases, None);
    let mirror = mirror_page(bases[1].as_str());
    let old = old_page();
    let mut group = c.benchmark_group("fingerprint");
    group.throughput(Throughput::Bytes(mirror.len() as u64));
    group.bench_function("normalize_and_hash", |b| {
        b.iter(|| with_selector.fingerprint(mirror.as_bytes(), Some("text/html; charset=utf-8")))
    });
    group.bench_function("normalize_and_hash_no_selector", |b| {
        b.iter(|| without_selector.fingerprint(mirror.as_bytes(), Some("text/html; charset=utf-8")))
    });
    group.bench_function("raw_sha256", |b| b.iter(|| Hash::of(mirror.as_bytes())));
    group.bench_function("raw_blake3", |b| b.iter(|| RawHash::of(mirror.as_bytes())));
    group.throughput(Throughput::Bytes(old.len() as u64));
    group.bench_function("normalize_and_hash_first_corpus_page", |b| {
        b.iter(|| with_selector.fingerprint(old.as_bytes(), Some("text/html; charset=utf-8")))
    });
    group.finish();
}

criterion_group!(benches, fingerprint);
criterion_main!(benches);
