//! Fingerprints of whole pages: the shared fixtures, the shapes real copies
//! take, and the tricks that must not pass for the article.

use super::*;

const PRIMARY: &str = include_str!("../../tests/fixtures/primary-v1.html");
const PRIMARY_V2: &str = include_str!("../../tests/fixtures/primary-v2.html");
const FAITHFUL: &str = include_str!("../../tests/fixtures/mirror-faithful-v1.html");
const RELATIVE: &str = include_str!("../../tests/fixtures/mirror-relative-v1.html");
const TAMPERED: &str = include_str!("../../tests/fixtures/mirror-tampered-v1.html");
const BLOCKPAGE: &str = include_str!("../../tests/fixtures/blockpage.html");
const PARKED: &str = include_str!("../../tests/fixtures/parked.html");
const HTML: Option<&str> = Some("text/html; charset=utf-8");
const ARTICLE: &str = "/Detail/2017/01/24/507408/Trump-Russia-Daesh";

fn bases() -> Vec<Origin> {
    [
        "https://www.example.com",
        "https://www.example.co.uk",
        "https://mirror.example.net",
    ]
    .iter()
    .map(|b| Origin::parse(b).unwrap())
    .collect()
}

fn normalizer(selector: Option<&str>) -> Normalizer {
    with_exclude(selector, &[])
}

fn with_exclude(selector: Option<&str>, exclude: &[&str]) -> Normalizer {
    let bases = bases();
    let selector = selector.map(|s| ContentSelector::parse(s).unwrap());
    let exclude: Vec<ContentSelector> = exclude.iter().map(|s| ContentSelector::parse(s).unwrap()).collect();
    Normalizer::new(SiteSpec {
        primary: &bases[0],
        bases: &bases,
        aliases: &["img.example.co.uk".to_string()],
        selector: selector.as_ref(),
        exclude: &exclude,
        fingerprints: Arc::default(),
    })
}

/// The page's URL on the base whose host it names.
fn url_of(page: &str) -> Url {
    let host = ["www.example.co.uk", "mirror.example.net"]
        .into_iter()
        .find(|h| page.contains(h))
        .unwrap_or("www.example.com");
    Url::parse(&format!("https://{host}{ARTICLE}")).unwrap()
}

fn read(n: &Normalizer, page: &str) -> Reading {
    n.read(page.as_bytes(), HTML, Some(&url_of(page)))
}

fn hash(n: &Normalizer, page: &str) -> Hash {
    read(n, page).fingerprint.normalized
}

fn canonical(n: &Normalizer, page: &str) -> String {
    n.normalize_html(page.as_bytes(), HTML, Some(&url_of(page)))
}

#[test]
fn shared_fixtures_with_article_selector() {
    let n = normalizer(Some("article"));
    let reference = hash(&n, PRIMARY);
    assert_eq!(hash(&n, FAITHFUL), reference, "faithful mirror");
    assert_eq!(hash(&n, RELATIVE), reference, "relative-link mirror");
    assert_ne!(hash(&n, TAMPERED), reference, "tampered");
    assert_ne!(hash(&n, BLOCKPAGE), reference, "block page");
    assert_ne!(hash(&n, PARKED), reference, "parked");
    assert_ne!(hash(&n, PRIMARY_V2), reference, "updated article");
    let page = read(&n, FAITHFUL).fingerprint.page;
    assert_eq!(
        page.differs_from(&read(&n, PRIMARY).fingerprint.page),
        None,
        "banner and menu"
    );
}

#[test]
fn shared_fixtures_without_selector() {
    let n = normalizer(None);
    let reference = hash(&n, PRIMARY);
    assert_ne!(hash(&n, FAITHFUL), reference, "the banner is page content");
    assert_eq!(hash(&n, RELATIVE), reference, "relative links and scripts");
    assert_ne!(hash(&n, TAMPERED), reference);
    assert_ne!(hash(&n, BLOCKPAGE), reference);
    assert_ne!(hash(&n, PARKED), reference);
    let without_banner = FAITHFUL.replace(
        "<div class=\"mirror-banner\">You are reading a mirror. Bookmark it.</div>\n",
        "\n",
    );
    assert_eq!(
        hash(&n, &without_banner),
        reference,
        "the banner is the only difference"
    );
}

#[test]
fn block_and_parking_pages_are_classified() {
    let n = normalizer(Some("article"));
    let blocked = read(&n, BLOCKPAGE);
    assert_eq!(
        blocked.fingerprint.page.class,
        Some(PageClass::BlockPage),
        "{:?}",
        blocked.rule
    );
    assert_eq!(read(&n, PARKED).fingerprint.page.class, Some(PageClass::Parked));
    assert_eq!(read(&n, PRIMARY).fingerprint.page.class, None);
    assert!(!blocked.fingerprint.page.trusted(true));
    assert!(read(&n, PRIMARY).fingerprint.page.trusted(true));
    // Without the selected element, a page is fingerprinted by its text,
    // so block and parking pages stay apart.
    assert_ne!(hash(&n, BLOCKPAGE), hash(&n, PARKED));
    let text = canonical(&n, BLOCKPAGE);
    assert!(text.contains("Access to this website has been restricted"), "{text}");
    assert!(!text.contains("<h1"), "text only: {text}");
}

#[test]
fn operator_fingerprints_mark_block_pages() {
    let bases = bases();
    let csv = "name,scope,location_found,pattern_type,pattern\nx.1,nat,body,contains,court-order-42\n";
    let n = Normalizer::new(SiteSpec {
        primary: &bases[0],
        bases: &bases,
        aliases: &[],
        selector: None,
        exclude: &[],
        fingerprints: Arc::new(BlockFingerprints::parse_csv(csv).unwrap()),
    });
    let page = format!("{}<!-- court-order-42 -->", PRIMARY);
    let reading = read(&n, &page);
    assert_eq!(reading.fingerprint.page.class, Some(PageClass::BlockPage));
    assert_eq!(reading.rule.as_deref(), Some("fingerprint x.1"));
}

#[test]
fn the_rules_key_changes_with_every_rule_and_only_then() {
    let key = |selector: Option<&str>, exclude: &[&str], csv: &str, dropped_bases: usize| {
        let bases = bases();
        let selector = selector.map(|s| ContentSelector::parse(s).unwrap());
        let exclude: Vec<ContentSelector> = exclude.iter().map(|s| ContentSelector::parse(s).unwrap()).collect();
        Normalizer::new(SiteSpec {
            primary: &bases[0],
            bases: &bases[..bases.len() - dropped_bases],
            aliases: &[],
            selector: selector.as_ref(),
            exclude: &exclude,
            fingerprints: Arc::new(BlockFingerprints::parse_csv(csv).unwrap()),
        })
        .key()
    };
    let csv = "name,scope,location_found,pattern_type,pattern\nx.1,nat,body,contains,court-order-42\n";
    let same = key(Some("article"), &[".views"], csv, 0);
    // Built twice, from the same file: a restart or a reload reuses work.
    assert_eq!(same, key(Some("article"), &[".views"], csv, 0));
    let others = [
        key(Some("main"), &[".views"], csv, 0),
        key(Some("article"), &[], csv, 0),
        key(Some("article"), &[".views"], &csv.replace("42", "43"), 0),
        key(Some("article"), &[".views"], csv, 1),
        key(None, &[".views"], csv, 0),
    ];
    for (n, other) in others.iter().enumerate() {
        assert_ne!(same, *other, "rule change {n}");
    }
}

#[test]
fn not_html_and_empty_bodies() {
    let n = normalizer(Some("article"));
    for body in [&b""[..], b"{\"json\": true}", b"%PDF-1.4\x00\x01\x02binary"] {
        let reading = n.read(body, HTML, None);
        assert_eq!(reading.fingerprint.page.class, Some(PageClass::NotHtml), "{body:?}");
    }
}

#[test]
fn host_spellings_are_mapped() {
    let n = normalizer(None);
    let page = |link: &str| format!("<p><a href=\"{link}\">x</a> see {link}</p>");
    let reference = hash(&n, &page("https://www.example.com/a"));
    for spelling in [
        "http://www.example.co.uk/a",
        "HTTPS://WWW.EXAMPLE.CO.UK/a",
        "//mirror.example.net/a",
        "https://example.co.uk/a",
        "https://www.example.com./a",
    ] {
        assert_eq!(hash(&n, &page(spelling)), reference, "{spelling}");
    }
    for other in [
        "https://www.example.co.uk.evil.test/a",
        "https://www.example.com:8443/a",
        "https://evil.test/a",
        "https://www.example.com/b",
    ] {
        assert_ne!(hash(&n, &page(other)), reference, "{other}");
    }
}

#[test]
fn what_does_not_count() {
    let n = normalizer(None);
    let a = "<div class=\"a\" id=\"b\">\n  Hello   <b>world</b>\n</div><!-- x -->";
    let b = "<head><meta name=x><script>var t=1</script><style>p{}</style></head>\
             <div id='b' class=a data-x=1 style='color:red'>Hello <b>world</b></div><!-- y -->";
    assert_eq!(hash(&n, a), hash(&n, b));
    assert_ne!(hash(&n, a), hash(&n, "<div>Hello <b>World</b></div>"));
    assert_ne!(hash(&n, a), hash(&n, "<div>Hello world</div>"), "bold is seen");
    assert_ne!(hash(&n, a), hash(&n, "<div>Helloworld</div>"), "a space is seen");
    assert_eq!(
        hash(&n, "<p>text</p>"),
        hash(&n, "<p>text</p><template><p>tpl <b>x</b></p></template>")
    );
}

#[test]
fn what_counts_that_did_not_before() {
    let n = normalizer(Some("article"));
    let base = "<article><p>Story.</p></article>";
    for changed in [
        "<article><p>Story.</p><xmp>EXTRA</xmp></article>",
        "<article><p>Story.</p><noscript>EXTRA</noscript></article>",
        "<article><p>Story.</p><iframe src=/ad></iframe></article>",
        "<article><p>Story.</p><iframe srcdoc='<p>EXTRA'></iframe></article>",
        "<article><p>Story.</p><object data=/x.pdf></object></article>",
        "<article><p>Story.</p><!-->EXTRA</article>",
        "<article><p>Story.</p><!--->EXTRA</article>",
        "<article><p>Story.</p><!-- a --!>EXTRA</article>",
        "<article><p>Story.</p><svg><style><p>EXTRA</p></style></svg></article>",
        "<article><p>Story.</p><svg><text><![CDATA[EXTRA]]></text></svg></article>",
        "<article><p>Story.</p><script><!--<script></script>--></script>EXTRA</article>",
        "<article><p>Story.</p><template shadowrootmode=open>EXTRA</template></article>",
        "<article/><p>Story.</p>EXTRA",
    ] {
        assert_ne!(hash(&n, changed), hash(&n, base), "{changed}");
    }
}

#[test]
fn entities_and_spellings_of_the_same_text() {
    let n = normalizer(Some("article"));
    let reference = hash(&n, "<article><p title=\"It’s\">It’s &lt;here&gt;</p></article>");
    for spelling in [
        "<article><p title='It&rsquo;s'>It&rsquo;s &#60;here&#x3e;</p></article>",
        "<article><p title=It&#8217;s>It&#8217;s &LT;here&GT</p></article>",
        "<ARTICLE><P TITLE=\"It&#x2019;s\">It&#X2019;s &lt;here&gt;</ARTICLE>",
    ] {
        assert_eq!(hash(&n, spelling), reference, "{spelling}");
    }
}

#[test]
fn the_selection_boundary_follows_the_tree_builder() {
    let n = normalizer(Some(".story"));
    let reference = hash(&n, "<ul><li class=story>A</li><li>B</li></ul>");
    assert_eq!(hash(&n, "<ul><li class=story>A<li>B</ul>"), reference, "implied </li>");
    assert_eq!(
        hash(&n, "<ul><li class=story>A<li>C</ul>"),
        reference,
        "what follows the implied end tag is not the story"
    );
    let n = normalizer(Some("article"));
    assert_ne!(
        hash(&n, "<article><table><tr><td>x</td></tr></table></article>"),
        hash(&n, "<article><table><tr><td>x</article>EXTRA</td></tr></table>"),
        "</article> in a cell is ignored: what follows stays in the article"
    );
}

#[test]
fn hidden_selected_elements_are_not_the_article() {
    let n = normalizer(Some("article"));
    let visible = read(&n, "<article><p>Story.</p></article>").fingerprint.page;
    assert!(visible.has(PageFacts::SELECTION_VISIBLE));
    for hidden in [
        "<div hidden><article><p>Story.</p></article></div>",
        "<div aria-hidden=\"true\"><article><p>Story.</p></article></div>",
        "<div style=\"display:none\"><article><p>Story.</p></article></div>",
        "<div style=\"visibility:hidden\"><article><p>Story.</p></article></div>",
        "<template><article><p>Story.</p></article></template>",
        "<article style='opacity:0'><p>Story.</p></article>",
    ] {
        let page = read(&n, hidden).fingerprint.page;
        assert!(!page.has(PageFacts::SELECTION_VISIBLE), "{hidden}");
        assert!(page.has(PageFacts::SELECTION_HIDDEN), "{hidden}");
        assert!(!page.trusted(true));
    }
    // A late `<body hidden>` hides everything already read.
    let late = read(&n, "<article><p>Story.</p></article><body hidden>")
        .fingerprint
        .page;
    assert!(!late.has(PageFacts::SELECTION_VISIBLE));
}

#[test]
fn excluded_elements_never_count() {
    let n = with_exclude(Some("article"), &[".views", "time.updated"]);
    assert_eq!(
        hash(
            &n,
            "<article><p>Story.</p><span class=views>12 views</span><time class=updated>now</time></article>"
        ),
        hash(
            &n,
            "<article><p>Story.</p><span class='views x'>9,912 views</span><time class=updated>4 min ago</time></article>"
        ),
    );
    assert_ne!(
        hash(&n, "<article><p>Story.</p><time>now</time></article>"),
        hash(&n, "<article><p>Story.</p><time>later</time></article>"),
    );
}

#[test]
fn aliases_map_like_their_base() {
    let n = normalizer(Some("article"));
    assert_eq!(
        hash(
            &n,
            "<article><img src='https://img.example.co.uk/images/3332.jpg'></article>"
        ),
        hash(
            &n,
            "<article><img src='https://www.example.com/images/3332.jpg'></article>"
        ),
    );
}

#[test]
fn crawler_copies_minified_and_reserialized_copies_are_the_same() {
    for selector in [Some("article"), None] {
        let n = normalizer(selector);
        let reference = hash(&n, PRIMARY);
        // wget --convert-links --adjust-extension: page-relative links, `.html` names.
        let crawled = PRIMARY
            .replace(
                "https://www.example.com/Detail/2017/01/23/related",
                "../../23/related.html",
            )
            .replace(
                "https://www.example.com/images/3332.jpg",
                "../../../../../images/3332.jpg",
            )
            .replace(
                "https://www.example.com/section/world",
                "../../../../../section/world.html",
            )
            .replace(
                "https://www.example.com/section/politics",
                "../../../../../section/politics.html",
            )
            .replace("\"https://www.example.com/\"", "\"../../../../../index.html\"")
            .replace("https://www.example.com/contact", "../../../../../contact.html")
            .replace(
                "<!DOCTYPE html>",
                "<!DOCTYPE html>\n<!-- Mirrored from www.example.com by HTTrack -->",
            );
        assert_eq!(hash(&n, &crawled), reference, "crawler copy ({selector:?})");
        // A minifier: whitespace collapsed, quotes and optional tags dropped.
        let minified = minify(PRIMARY);
        assert_eq!(hash(&n, &minified), reference, "minified ({selector:?}):\n{minified}");
        // A re-serialization by an HTML5 parser.
        let reserialized = reserialize(PRIMARY);
        assert_eq!(
            hash(&n, &reserialized),
            reference,
            "re-serialized ({selector:?}):\n{reserialized}"
        );
        // A transcoded copy.
        let declared = PRIMARY.replace("utf-8", "windows-1252");
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(&declared);
        let transcoded = n
            .read(&latin1, Some("text/html; charset=windows-1252"), Some(&url_of(PRIMARY)))
            .fingerprint
            .normalized;
        assert_eq!(transcoded, reference, "transcoded ({selector:?})");
        // Transcoded to UTF-16: with a byte order mark, or declared by the
        // header alone. Its zero bytes do not make it binary.
        let utf16le: Vec<u8> = PRIMARY.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf16be: Vec<u8> = PRIMARY.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let with_bom = [&[0xFF, 0xFE][..], &utf16le].concat();
        for (body, content_type) in [
            (&with_bom, "text/html"),
            (&utf16le, "text/html; charset=utf-16le"),
            (&utf16be, "text/html; charset=UTF-16BE"),
        ] {
            let reading = n.read(body, Some(content_type), Some(&url_of(PRIMARY)));
            assert_eq!(reading.fingerprint.page.class, None, "{content_type}");
            assert_eq!(
                reading.fingerprint.normalized, reference,
                "UTF-16, {content_type} ({selector:?})"
            );
        }
        // Entities re-encoded.
        let spelled = PRIMARY.replace("Trump's", "Trump’s");
        for encoded in [
            PRIMARY.replace("Trump's", "Trump&rsquo;s"),
            PRIMARY.replace("Trump's", "Trump&#8217;s"),
            PRIMARY.replace("Trump's", "Trump&#x2019;s"),
        ] {
            assert_eq!(hash(&n, &encoded), hash(&n, &spelled), "entities ({selector:?})");
        }
        assert_eq!(
            hash(&n, &PRIMARY.replace('\'', "&#39;")),
            reference,
            "&#39; ({selector:?})"
        );
    }
}

/// What html-minifier's aggressive settings do to a page.
fn minify(page: &str) -> String {
    let mut out = page.to_string();
    for (from, to) in [
        ("\n", ""),
        ("</p>", ""),
        ("</li>", ""),
        ("</body></html>", ""),
        ("<html lang=\"en\"><head>", "<html lang=en>"),
        ("</head><body>", ""),
        ("<meta charset=\"utf-8\">", "<meta charset=utf-8>"),
        (" alt=\"\"", " alt=\"\""),
        ("href=\"https://www.example.com/\"", "href=https://www.example.com/"),
    ] {
        out = out.replace(from, to);
    }
    let comment = regex::Regex::new("<!--.*?-->").unwrap();
    comment.replace_all(&out, "").into_owned()
}

/// html5ever's parse and serialize: what an HTML5 re-serializer writes.
fn reserialize(page: &str) -> String {
    use html5ever::tendril::TendrilSink;
    let dom = html5ever::parse_document(markup5ever_rcdom::RcDom::default(), Default::default()).one(page);
    let mut out = Vec::new();
    let document: markup5ever_rcdom::SerializableHandle = dom.document.clone().into();
    html5ever::serialize(&mut out, &document, Default::default()).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn page_around_the_selection_is_compared() {
    let n = normalizer(Some("article"));
    let reference = read(&n, PRIMARY).fingerprint.page;
    // A block page that carries the article out of sight: another title.
    let carried = PRIMARY.replace(
        "<title>Trump's desire to work with Russia against Daesh is hopeful | Example News</title>",
        "<title>Access denied</title>",
    );
    let reading = read(&n, &carried);
    assert_eq!(reading.fingerprint.normalized, hash(&n, PRIMARY));
    assert!(reading.fingerprint.page.differs_from(&reference).is_some());
    // An overlay over the whole page.
    let overlaid = PRIMARY.replace(
        "<body>",
        "<body><div style='position:fixed;inset:0;background:#fff'>Please wait</div>",
    );
    assert!(read(&n, &overlaid).fingerprint.page.differs_from(&reference).is_some());
    // Five times the text around the article.
    let padded = PRIMARY.replace("<footer>", &format!("<footer>{}", "More text here. ".repeat(400)));
    assert!(read(&n, &padded).fingerprint.page.differs_from(&reference).is_some());
}

#[test]
fn late_base_is_part_of_the_page() {
    let n = normalizer(Some("article"));
    let reference = hash(&n, "<article><a href=\"/donate\">Give</a></article>");
    let early = "<head><base href=\"https://www.example.co.uk/\"></head><article><a href=\"donate\">Give</a></article>";
    assert_eq!(hash(&n, early), reference, "a base that maps to the site, read first");
    let late = "<article><a href=\"/donate\">Give</a><base href=\"https://evil.test/\"></article>";
    assert_ne!(hash(&n, late), reference, "a base after the links retargets them");
}

#[test]
fn charset_is_decoded() {
    let n = normalizer(None);
    let a = n
        .fingerprint("<p>café</p>".as_bytes(), Some("text/html; charset=utf-8"))
        .normalized;
    let b = n
        .fingerprint(b"<p>caf\xe9</p>", Some("text/html; charset=iso-8859-1"))
        .normalized;
    assert_eq!(a, b);
    let c = n
        .fingerprint(b"<meta charset=\"iso-8859-1\"><p>caf\xe9</p>", Some("text/html"))
        .normalized;
    assert_eq!(a, c, "meta charset from the prescan");
    let d = n
        .fingerprint(
            b"<meta content=\"text/html; charset=iso-8859-1\"><p>caf\xe9</p>",
            Some("text/html"),
        )
        .normalized;
    assert_ne!(a, d, "content= without http-equiv is not a declaration");
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in "<p>café</p>".encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    assert_eq!(n.fingerprint(&utf16, Some("text/html")).normalized, a);
}

#[test]
fn non_html_is_hashed_as_is() {
    let n = normalizer(None);
    let body = br#"{"url":"https://www.example.co.uk/a"}"#;
    let fp = n.fingerprint(body, Some("application/json"));
    // Not HTML: the fingerprint is the SHA-256 of the bytes as served; the
    // raw hash (BLAKE3) only says whether they changed.
    assert_eq!(fp.normalized, Hash::of(body));
    assert_eq!(fp.raw, RawHash::of(body));
    // The same for a body that only turns out binary after it was taken for HTML.
    let mut binary = b"<html>".to_vec();
    binary.extend(std::iter::repeat_n(0u8, 100_000));
    let fp = n.fingerprint(&binary, Some("text/html"));
    assert_eq!(fp.normalized, Hash::of(&binary));
    assert_eq!(fp.raw, RawHash::of(&binary));
    // And for a long HTML page fed in chunks, the raw hash covers every byte.
    let page = format!("<article><p>{}</p></article>", "word ".repeat(50_000));
    let mut fingerprinter = n.start(Some("text/html"), None);
    for chunk in page.as_bytes().chunks(1000) {
        fingerprinter.update(chunk);
    }
    assert_eq!(fingerprinter.finish().fingerprint.raw, RawHash::of(page.as_bytes()));
}

#[test]
fn deep_nesting_stops_deterministically() {
    let n = normalizer(Some("article"));
    let page = format!("<article>{}x{}</article>", "<div>".repeat(4000), "</div>".repeat(4000));
    let reading = read(&n, &page);
    assert_eq!(reading.text.unwrap_or_default().trim(), "x");
    assert_eq!(reading.fingerprint.page.class, None);
    let deeper = format!("<article>{}x</article>", "<div>".repeat(200_000));
    let first = read(&n, &deeper).fingerprint;
    assert_eq!(first, read(&n, &deeper).fingerprint);
    assert_eq!(first.page.class, Some(PageClass::Truncated));
}

#[test]
fn streaming_in_pieces_equals_one_piece() {
    let n = normalizer(Some("article"));
    let url = url_of(FAITHFUL);
    let whole = n.read(FAITHFUL.as_bytes(), HTML, Some(&url)).fingerprint;
    for size in [1, 7, 64, 1000] {
        let mut fingerprinter = n.start(HTML, Some(&url));
        for piece in FAITHFUL.as_bytes().chunks(size) {
            fingerprinter.update(piece);
        }
        assert_eq!(fingerprinter.finish().fingerprint, whole, "pieces of {size}");
    }
    let mut sniffed = n.start(None, Some(&url));
    for byte in FAITHFUL.as_bytes() {
        sniffed.update(std::slice::from_ref(byte));
    }
    assert_eq!(sniffed.finish().fingerprint, whole);
}

#[test]
fn html_sniffing() {
    assert!(is_html(b"  <!DOCTYPE html><p>", None));
    assert!(is_html(b"<html>", Some("")));
    assert!(!is_html(b"<!DOCTYPE html>", Some("text/plain")));
    assert!(!is_html(b"{}", None));
}

#[test]
fn hash_round_trips_through_text() {
    let h = Hash::of(b"abc");
    assert_eq!(
        h.to_string(),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(Hash::parse(&h.to_string()), Some(h));
}

#[test]
fn entities_match_html5ever() {
    let ours: std::collections::BTreeMap<String, String> = entities::NAMED
        .iter()
        .map(|(name, value)| (String::from_utf8(name.to_vec()).unwrap(), value.to_string()))
        .collect();
    let theirs: std::collections::BTreeMap<String, String> = web_atoms::NAMED_ENTITIES
        .entries()
        // html5ever also lists every prefix of a name, with no value.
        .filter(|(_, (a, _))| *a != 0)
        .map(|(name, (a, b))| {
            let mut value = String::new();
            value.extend(char::from_u32(*a));
            if *b != 0 {
                value.extend(char::from_u32(*b));
            }
            (name.to_string(), value)
        })
        .collect();
    assert_eq!(ours, theirs);
}
