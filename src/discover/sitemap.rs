//! Sitemaps (sitemaps.org, Google News extensions), read as a stream of
//! XML events: no DTD is read and no entity but XML's five and character
//! references is expanded, so entity bombs and external entities are
//! plain text, never fetched or multiplied. The protocol's limits hold
//! while reading: 50,000 URLs per file (the size limit is the caller's,
//! on the bytes it hands over).

use quick_xml::Reader;
use quick_xml::events::Event;

/// URLs one sitemap file may list (sitemaps.org).
pub const MAX_URLS_PER_FILE: usize = 50_000;
/// Elements nested deeper than this are not a sitemap.
const MAX_DEPTH: usize = 16;

/// One `<url>` of a `urlset`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub loc: String,
    /// `lastmod`, or the news extension's `publication_date`, as written.
    pub date: Option<String>,
    pub title: Option<String>,
}

/// What one file lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sitemap {
    /// A `sitemapindex`: more sitemaps to read.
    Index(Vec<String>),
    UrlSet(Vec<Entry>),
}

/// Parses one sitemap file. Errors name what is wrong and where (byte offset).
pub fn parse(xml: &[u8]) -> Result<Sitemap, String> {
    let mut reader = Reader::from_reader(xml);
    // Text is trimmed whole at each end tag: trimming each piece would eat
    // the spaces around an entity.
    reader.config_mut().trim_text(false);
    let mut buf = Vec::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut kind: Option<bool> = None; // Some(true): index
    let mut children = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut current = Entry::default();
    let mut text = String::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => {
                let name = start.local_name().as_ref().to_ascii_lowercase();
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nest deeper than {MAX_DEPTH}: not a sitemap"));
                }
                if stack.is_empty() {
                    kind = match name.as_slice() {
                        b"sitemapindex" => Some(true),
                        b"urlset" => Some(false),
                        other => {
                            return Err(format!(
                                "the root element is <{}>, not <urlset> or <sitemapindex>",
                                String::from_utf8_lossy(other)
                            ));
                        }
                    };
                }
                if name == b"url" {
                    current = Entry::default();
                }
                text.clear();
                stack.push(name);
            }
            Event::Empty(_) => {}
            Event::Text(t) => {
                let decoded = t.decode().map_err(|e| format!("undecodable text: {e}"))?;
                text.push_str(&decoded);
            }
            Event::CData(t) => {
                let decoded = t.decode().map_err(|e| format!("undecodable text: {e}"))?;
                text.push_str(&decoded);
            }
            Event::GeneralRef(reference) => {
                // XML's own entities and character references only; a
                // DTD's entities stay unexpanded (and the text unusable).
                let name: &[u8] = &reference;
                let resolved = match name {
                    b"amp" => Some('&'),
                    b"lt" => Some('<'),
                    b"gt" => Some('>'),
                    b"quot" => Some('"'),
                    b"apos" => Some('\''),
                    _ => reference.resolve_char_ref().ok().flatten(),
                };
                match resolved {
                    Some(c) => text.push(c),
                    None => {
                        return Err(format!(
                            "entity &{}; is not one of XML's own: entities a DTD declares are never expanded",
                            String::from_utf8_lossy(name)
                        ));
                    }
                }
            }
            Event::End(_) => {
                let Some(name) = stack.pop() else { break };
                let parent = stack.last().map(Vec::as_slice);
                let value = text.trim().to_string();
                match (name.as_slice(), parent, kind) {
                    (b"loc", Some(b"sitemap"), Some(true)) => {
                        if children.len() >= MAX_URLS_PER_FILE {
                            return Err(format!("more than {MAX_URLS_PER_FILE} sitemaps in one index"));
                        }
                        children.push(value);
                    }
                    (b"loc", Some(b"url"), Some(false)) => current.loc = value,
                    (b"lastmod", Some(b"url"), _) => current.date = Some(value),
                    (b"publication_date", _, Some(false)) => current.date = Some(value),
                    (b"title", _, Some(false)) if stack.iter().any(|n| n == b"news") => current.title = Some(value),
                    (b"url", _, Some(false)) => {
                        if entries.len() >= MAX_URLS_PER_FILE {
                            return Err(format!("more than {MAX_URLS_PER_FILE} URLs in one sitemap"));
                        }
                        if !current.loc.is_empty() {
                            entries.push(std::mem::take(&mut current));
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions and DOCTYPEs
            // (whose entities are never used) say nothing here.
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element (truncated?)".into());
    }
    match kind {
        Some(true) => Ok(Sitemap::Index(children)),
        Some(false) => Ok(Sitemap::UrlSet(entries)),
        None => Err("no <urlset> or <sitemapindex> element".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_news_sitemap_gives_locations_dates_and_titles() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
 <url><loc>https://www.example.com/a?x=1&amp;y=2</loc>
  <news:news><news:publication><news:name>Ex</news:name><news:language>en</news:language></news:publication>
   <news:publication_date>2026-11-20T10:00:00Z</news:publication_date><news:title>Title &#x41;</news:title></news:news></url>
 <url><loc>https://www.example.com/b</loc><lastmod>2026-11-01</lastmod></url>
</urlset>"#;
        let Sitemap::UrlSet(entries) = parse(xml).unwrap() else {
            panic!()
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].loc, "https://www.example.com/a?x=1&y=2");
        assert_eq!(entries[0].date.as_deref(), Some("2026-11-20T10:00:00Z"));
        assert_eq!(entries[0].title.as_deref(), Some("Title A"));
        assert_eq!(entries[1].date.as_deref(), Some("2026-11-01"));
    }

    #[test]
    fn an_index_lists_its_sitemaps() {
        let xml = b"<sitemapindex><sitemap><loc>https://www.example.com/s1.xml.gz</loc></sitemap></sitemapindex>";
        assert_eq!(
            parse(xml).unwrap(),
            Sitemap::Index(vec!["https://www.example.com/s1.xml.gz".into()])
        );
    }

    #[test]
    fn entities_of_a_dtd_are_refused_never_expanded() {
        let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<urlset><url><loc>https://www.example.com/&lol2;&xxe;</loc></url></urlset>"#;
        assert!(parse(bomb).unwrap_err().contains("&lol2;"));
    }

    #[test]
    fn bad_documents_are_errors() {
        assert!(parse(b"<urlset><url><loc>x</loc>").unwrap_err().contains("ends inside"));
        assert!(parse(b"<html><body>hi</body></html>").unwrap_err().contains("<html>"));
        assert!(parse(b"<urlset><url></loc></urlset>").is_err());
        let deep = format!("<urlset>{}", "<a>".repeat(100));
        assert!(parse(deep.as_bytes()).unwrap_err().contains("deeper"));
        let many: String = (0..=MAX_URLS_PER_FILE)
            .map(|i| format!("<url><loc>/{i}</loc></url>"))
            .collect();
        assert!(
            parse(format!("<urlset>{many}</urlset>").as_bytes())
                .unwrap_err()
                .contains("50000")
        );
    }
}
