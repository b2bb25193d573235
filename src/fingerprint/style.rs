//! What an inline `style` attribute says about visibility.
//!
//! Only the declarations that decide whether a reader sees an element are
//! read: the ones that remove it (`display: none`, `opacity: 0`, off-screen
//! or zero-sized boxes...) and `visibility`, which a descendant can undo.
//! Style sheets are not read: a class that hides is invisible to a
//! fingerprint, which is why hiding by inline style is caught here at least.

/// What a style attribute does to its element.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StyleEffect {
    /// The element and everything in it is not shown, whatever it contains.
    pub removed: bool,
    /// `visibility`: Some(false) hides, Some(true) shows again, None inherits.
    pub visible: Option<bool>,
    /// A fixed or absolute box covering the whole viewport.
    pub covers_viewport: bool,
}

/// Lower-cased declarations, last one wins, `!important` and comments dropped.
fn declarations(style: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(style).to_ascii_lowercase();
    let mut without_comments = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find("/*") {
        without_comments.push_str(&rest[..open]);
        rest = rest[open + 2..].split_once("*/").map_or("", |(_, after)| after);
    }
    without_comments.push_str(rest);
    let mut out: Vec<(String, String)> = Vec::new();
    for declaration in without_comments.split(';') {
        let Some((property, value)) = declaration.split_once(':') else {
            continue;
        };
        let property = property.trim().to_string();
        let value = value.trim().trim_end_matches("!important").trim().to_string();
        out.retain(|(p, _)| *p != property);
        out.push((property, value));
    }
    out
}

/// A CSS length or number that is zero (`0`, `0px`, `0.0em`, `0%`).
fn is_zero(value: &str) -> bool {
    let number = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
    !number.is_empty() && number.parse::<f64>().is_ok_and(|n| n == 0.0)
}

/// A length of at most one pixel (the "visually hidden" idiom's box).
fn at_most_one_pixel(value: &str) -> bool {
    is_zero(value)
        || value
            .strip_suffix("px")
            .and_then(|n| n.trim().parse::<f64>().ok())
            .is_some_and(|n| n <= 1.0)
}

/// A length far off the screen (`-9999px`, `-100vw`...).
fn off_screen(value: &str) -> bool {
    let number = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
    let Ok(number) = number.parse::<f64>() else {
        return false;
    };
    if value.ends_with("px") {
        number <= -1000.0
    } else if ["vw", "vh", "%", "em", "rem"].iter().any(|unit| value.ends_with(unit)) {
        number <= -100.0
    } else {
        false
    }
}

fn full_extent(value: &str) -> bool {
    matches!(value, "100%" | "100vw" | "100vh" | "100dvh" | "100svh" | "100lvh")
}

pub(crate) fn effect(style: &[u8]) -> StyleEffect {
    let declarations = declarations(style);
    let get = |name: &str| declarations.iter().find(|(p, _)| p == name).map(|(_, v)| v.as_str());
    let positioned = matches!(get("position"), Some("fixed" | "absolute"));
    let clipped = matches!(get("overflow"), Some("hidden" | "clip"))
        || matches!(get("overflow-x"), Some("hidden" | "clip")) && matches!(get("overflow-y"), Some("hidden" | "clip"));
    let zero_box = ["height", "max-height", "width", "max-width"]
        .iter()
        .any(|p| get(p).is_some_and(is_zero));
    let pixel_box = get("width").is_some_and(at_most_one_pixel) && get("height").is_some_and(at_most_one_pixel);
    let removed = get("display") == Some("none")
        || get("opacity").is_some_and(is_zero)
        || get("content-visibility") == Some("hidden")
        || get("font-size").is_some_and(is_zero)
        || get("transform").is_some_and(|t| t.replace(' ', "").contains("scale(0)"))
        || get("clip-path").is_some_and(|c| c.replace(' ', "") == "inset(50%)" || c.replace(' ', "") == "circle(0)")
        || (clipped && (zero_box || pixel_box))
        || (positioned && ["left", "top", "right"].iter().any(|p| get(p).is_some_and(off_screen)));
    let visible = match get("visibility") {
        Some("hidden" | "collapse") => Some(false),
        Some("visible") => Some(true),
        _ => None,
    };
    let at_zero = |p: &str| get(p).is_some_and(is_zero);
    let inset = get("inset").is_some_and(|v| v.split_whitespace().all(is_zero));
    let stretched = (at_zero("top") || at_zero("bottom"))
        && (at_zero("left") || at_zero("right"))
        && (get("width").is_some_and(full_extent) || (at_zero("left") && at_zero("right")))
        && (get("height").is_some_and(full_extent) || (at_zero("top") && at_zero("bottom")));
    StyleEffect {
        removed,
        visible,
        covers_viewport: positioned && (inset || stretched),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_hides() {
        for style in [
            "display:none",
            "DISPLAY : none !important",
            "color:red; display: none",
            "opacity: 0",
            "opacity:0.0",
            "font-size:0px",
            "height:0;overflow:hidden",
            "position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0,0,0,0)",
            "position: absolute; left: -9999px",
            "content-visibility: hidden",
            "transform: scale(0)",
            "/* x */display:/* y */none",
        ] {
            assert!(effect(style.as_bytes()).removed, "{style}");
        }
        for style in [
            "display:block",
            "display:none; display:block",
            "opacity:0.5",
            "height:0",
            "left:-5px",
            "",
        ] {
            assert!(!effect(style.as_bytes()).removed, "{style}");
        }
        assert_eq!(effect(b"visibility:hidden").visible, Some(false));
        assert_eq!(effect(b"visibility: visible").visible, Some(true));
        assert_eq!(effect(b"color:blue").visible, None);
    }

    #[test]
    fn what_covers_the_viewport() {
        for style in [
            "position:fixed;inset:0",
            "position:fixed;top:0;left:0;width:100%;height:100%;z-index:9999",
            "position:absolute;top:0;right:0;bottom:0;left:0;background:#fff",
        ] {
            assert!(effect(style.as_bytes()).covers_viewport, "{style}");
        }
        for style in [
            "position:fixed;bottom:0;left:0;width:100%;height:60px",
            "top:0;left:0;width:100%;height:100%",
        ] {
            assert!(!effect(style.as_bytes()).covers_viewport, "{style}");
        }
    }
}
