//! Which charset a page is in, when neither a BOM nor the Content-Type
//! header says: the HTML standard's prescan of the first 1024 bytes
//! (13.2.3.2), which is what browsers do. It skips comments, reads
//! `<meta charset>` and, only together with `http-equiv="content-type"`,
//! `<meta content="...; charset=...">`, and needs `meta` as a whole tag
//! name (`<metadata>` is not one).

use encoding_rs::Encoding;

/// How far into a page the prescan looks.
pub(crate) const PRESCAN_BYTES: usize = 1024;

fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// The encoding the prescan finds in `head`, if any.
pub(crate) fn prescan(head: &[u8]) -> Option<&'static Encoding> {
    let bytes = &head[..head.len().min(PRESCAN_BYTES)];
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.starts_with(b"<!--") {
            at += 4 + memchr::memmem::find(&rest[4..], b"-->")? + 3;
            continue;
        }
        if rest.len() >= 6 && rest[..5].eq_ignore_ascii_case(b"<meta") && (is_space(rest[5]) || rest[5] == b'/') {
            at += 5;
            if let Some(encoding) = meta(bytes, &mut at) {
                return Some(encoding);
            }
            continue;
        }
        let letter_after = |i: usize| rest.get(i).is_some_and(u8::is_ascii_alphabetic);
        if rest.starts_with(b"<") && (letter_after(1) || (rest.get(1) == Some(&b'/') && letter_after(2))) {
            at += rest.iter().position(|b| is_space(*b) || *b == b'>')?;
            while attribute(bytes, &mut at)?.is_some() {}
            continue;
        }
        if rest.starts_with(b"<!") || rest.starts_with(b"</") || rest.starts_with(b"<?") {
            at += memchr::memchr(b'>', rest)? + 1;
            continue;
        }
        at += 1;
    }
    None
}

/// The attributes of a `<meta>` tag; `at` is just past `<meta`.
fn meta(bytes: &[u8], at: &mut usize) -> Option<&'static Encoding> {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut got_pragma = false;
    let mut need_pragma: Option<bool> = None;
    let mut charset: Option<&'static Encoding> = None;
    while let Some((name, value)) = attribute(bytes, at).flatten() {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        match name.as_slice() {
            b"http-equiv" if value == b"content-type" => got_pragma = true,
            b"content" if charset.is_none() => {
                if let Some(found) = from_content(&value) {
                    charset = Some(found);
                    need_pragma = Some(true);
                }
            }
            b"charset" => {
                charset = Encoding::for_label(value.trim_ascii());
                need_pragma = Some(false);
            }
            _ => {}
        }
    }
    match need_pragma {
        None => return None,
        Some(true) if !got_pragma => return None,
        _ => {}
    }
    let charset = charset?;
    // A page cannot declare itself UTF-16 from inside: bytes that read as
    // ASCII are not UTF-16.
    Some(
        if charset == encoding_rs::UTF_16BE || charset == encoding_rs::UTF_16LE {
            encoding_rs::UTF_8
        } else if charset == encoding_rs::X_USER_DEFINED {
            encoding_rs::WINDOWS_1252
        } else {
            charset
        },
    )
}

/// The standard's "get an attribute": Some(None) at the end of the tag,
/// None when the bytes run out first.
#[allow(clippy::option_option)]
fn attribute(bytes: &[u8], at: &mut usize) -> Option<Option<(Vec<u8>, Vec<u8>)>> {
    while is_space(*bytes.get(*at)?) || bytes[*at] == b'/' {
        *at += 1;
    }
    if bytes[*at] == b'>' {
        return Some(None);
    }
    let mut name = Vec::new();
    let mut value = Vec::new();
    loop {
        let b = *bytes.get(*at)?;
        if b == b'=' && !name.is_empty() {
            *at += 1;
            break;
        }
        if is_space(b) {
            while is_space(*bytes.get(*at)?) {
                *at += 1;
            }
            if bytes[*at] != b'=' {
                return Some(Some((name, value)));
            }
            *at += 1;
            break;
        }
        if b == b'/' || b == b'>' {
            return Some(Some((name, value)));
        }
        name.push(b.to_ascii_lowercase());
        *at += 1;
    }
    while is_space(*bytes.get(*at)?) {
        *at += 1;
    }
    let b = *bytes.get(*at)?;
    if b == b'"' || b == b'\'' {
        loop {
            *at += 1;
            let c = *bytes.get(*at)?;
            if c == b {
                *at += 1;
                return Some(Some((name, value)));
            }
            value.push(c.to_ascii_lowercase());
        }
    }
    if b == b'>' {
        return Some(Some((name, value)));
    }
    value.push(b.to_ascii_lowercase());
    *at += 1;
    loop {
        let c = *bytes.get(*at)?;
        if is_space(c) || c == b'>' {
            return Some(Some((name, value)));
        }
        value.push(c.to_ascii_lowercase());
        *at += 1;
    }
}

/// "Extract a character encoding from a meta element" (`content`).
pub(crate) fn from_content(content: &[u8]) -> Option<&'static Encoding> {
    let lower = content.to_ascii_lowercase();
    let mut at = 0;
    loop {
        at += memchr::memmem::find(&lower[at..], b"charset")? + 7;
        let mut i = at;
        while lower.get(i).is_some_and(|b| is_space(*b)) {
            i += 1;
        }
        if lower.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while lower.get(i).is_some_and(|b| is_space(*b)) {
            i += 1;
        }
        let rest = &content[i..];
        let value = match rest.first()? {
            quote @ (b'"' | b'\'') => {
                let end = memchr::memchr(*quote, &rest[1..])?;
                &rest[1..1 + end]
            }
            _ => {
                let end = rest
                    .iter()
                    .position(|b| is_space(*b) || *b == b';')
                    .unwrap_or(rest.len());
                &rest[..end]
            }
        };
        return Encoding::for_label(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prescan_follows_the_standard() {
        let found = |head: &str| prescan(head.as_bytes()).map(|e| e.name());
        assert_eq!(found("<meta charset=\"iso-8859-1\">"), Some("windows-1252"));
        assert_eq!(found("<META CHARSET=koi8-r>"), Some("KOI8-R"));
        assert_eq!(
            found("<meta http-equiv=Content-Type content='text/html; charset=windows-1251'>"),
            Some("windows-1251")
        );
        // `content` needs `http-equiv`; a comment hides what it holds;
        // `metadata` is not `meta`; UTF-16 cannot be declared from inside.
        assert_eq!(found("<meta content='text/html; charset=windows-1251'>"), None);
        assert_eq!(found("<!-- <meta charset=koi8-r> --><p>"), None);
        assert_eq!(found("<metadata charset=koi8-r>"), None);
        assert_eq!(found("<meta charset=utf-16le>"), Some("UTF-8"));
        // Attribute values in other tags are skipped whole.
        assert_eq!(
            found("<a title='<meta charset=koi8-r>'>x</a><meta charset=gbk>"),
            Some("GBK")
        );
        assert_eq!(found("<meta charset=koi8-r"), None);
    }
}
