//! Parsing a full sitemap: 50,000 URLs (the protocol's limit per file),
//! each with a lastmod, as a news site's archive sitemap has them. The
//! target is under 200 ms on one core.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirrorgate::discover::sitemap;

fn full_sitemap() -> String {
    let urls: String = (0..sitemap::MAX_URLS_PER_FILE)
        .map(|i| {
            format!(
                "<url><loc>https://www.example.com/Detail/2026/11/{:02}/{i}/article-title-{i}</loc>\
                 <lastmod>2026-11-{:02}T10:00:00+00:00</lastmod><changefreq>never</changefreq></url>\n",
                i % 28 + 1,
                i % 28 + 1
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n{urls}</urlset>\n"
    )
}

fn bench(c: &mut Criterion) {
    let xml = full_sitemap();
    let mut group = c.benchmark_group("sitemap");
    group.throughput(Throughput::Bytes(xml.len() as u64));
    group.sample_size(20);
    group.bench_function("parse_50000_urls", |b| {
        b.iter(|| {
            let parsed = sitemap::parse(xml.as_bytes()).expect("a valid sitemap");
            std::hint::black_box(parsed);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
