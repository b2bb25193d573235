//! Fingerprinting speed on a realistic 130 KB news page (target: normalize
//! and hash at 300 MB/s per core), beside raw SHA-256 for the ceiling.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirrorgate::fingerprint::{ContentSelector, Hash, Normalizer, RawHash};
use mirrorgate::origin::Origin;

/// The same shape as bench/run.py's corpus: a long menu, inline scripts,
/// one article, many absolute links.
fn page() -> String {
    let nav: String = (0..600)
        .map(|k| format!("<li><a href=\"https://news.example/section/{k}\">Section {k}</a></li>\n"))
        .collect();
    let numbers: Vec<String> = (0..3000).map(|n| n.to_string()).collect();
    let script = format!(
        "<script>window.cfg={{\"ads\":[{}],\"rendered\":1485250000}};</script>\n",
        numbers.join(", ")
    );
    let paragraphs: String = (0..12)
        .map(|p| {
            let sentence = format!(
                "Paragraph {p}: the quick brown fox jumps over the lazy dog, as reported by the correspondent on the scene. "
            );
            format!("<p>{}</p>\n", sentence.repeat(3))
        })
        .collect();
    let related: String = (0..700)
        .map(|k| format!("<li><a href=\"https://news.example/Detail/1/{k}\">Related story {k}</a></li>\n"))
        .collect();
    format!(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Article</title>{script}{script}</head><body>\n\
         <nav><ul>{nav}</ul></nav>\n<article><h1>Article</h1>\n{paragraphs}</article>\n\
         <aside><ul>{related}</ul></aside><footer>Also at alternate addresses.</footer></body></html>\n"
    )
}

fn fingerprint(c: &mut Criterion) {
    let bases: Vec<Origin> = [
        "https://news.example",
        "https://mirror.example.net",
        "http://127.0.0.1:8081",
    ]
    .iter()
    .map(|b| Origin::parse(b).expect("valid base"))
    .collect();
    let selector = ContentSelector::parse("article").expect("valid selector");
    let normalizer = Normalizer::simple(&bases[0], &bases, Some(selector));
    let body = page();
    let mut group = c.benchmark_group("fingerprint");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("normalize_and_hash", |b| {
        b.iter(|| normalizer.fingerprint(body.as_bytes(), Some("text/html; charset=utf-8")))
    });
    group.bench_function("raw_sha256", |b| b.iter(|| Hash::of(body.as_bytes())));
    group.bench_function("raw_blake3", |b| b.iter(|| RawHash::of(body.as_bytes())));
    group.finish();
}

criterion_group!(benches, fingerprint);
criterion_main!(benches);
