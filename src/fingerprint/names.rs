//! Element names and namespaces, as the tree builder compares them.
//!
//! Every name the HTML standard gives meaning to is at most 16 bytes, so a
//! name that short is packed, exactly, into a `u128`: comparing two of them
//! is one integer comparison, and known names can be matched as constants.
//! Longer names (custom elements) are kept as bytes, so no two different
//! names ever compare equal.

/// A lower-cased local name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Name {
    Short(u128),
    Long(Box<[u8]>),
}

/// Packs a name of at most 16 bytes, lower-cased (compile-time constants too).
pub(crate) const fn pack(raw: &[u8]) -> u128 {
    let mut packed = 0u128;
    let mut i = 0;
    while i < raw.len() && i < 16 {
        packed |= (raw[i].to_ascii_lowercase() as u128) << (8 * i);
        i += 1;
    }
    packed
}

impl Name {
    pub(crate) fn of(raw: &[u8]) -> Self {
        if raw.len() <= 16 {
            Name::Short(pack(raw))
        } else {
            Name::Long(raw.to_ascii_lowercase().into_boxed_slice())
        }
    }

    /// The packed form, when the name is one the standard could know.
    pub(crate) fn short(&self) -> Option<u128> {
        match self {
            Name::Short(packed) => Some(*packed),
            Name::Long(_) => None,
        }
    }

    /// The name's bytes, using `buffer` for a short one.
    pub(crate) fn write<'b>(&'b self, buffer: &'b mut [u8; 16]) -> &'b [u8] {
        match self {
            Name::Short(packed) => {
                *buffer = packed.to_le_bytes();
                let len = buffer.iter().position(|b| *b == 0).unwrap_or(16);
                &buffer[..len]
            }
            Name::Long(bytes) => bytes,
        }
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Short(packed) => packed.to_le_bytes().into_iter().take_while(|b| *b != 0).collect(),
            Name::Long(bytes) => bytes.to_vec(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Ns {
    Html,
    Svg,
    MathMl,
}

/// Packed names of the elements the tree builder and the canonical form
/// treat specially.
pub(crate) mod n {
    use super::pack;

    macro_rules! names {
        ($($name:ident = $text:literal),* $(,)?) => {
            $(pub const $name: u128 = pack($text);)*
        };
    }

    names! {
        A = b"a", ADDRESS = b"address", ANNOTATION_XML = b"annotation-xml", APPLET = b"applet",
        AREA = b"area", ARTICLE = b"article", ASIDE = b"aside", B = b"b", BASE = b"base",
        BASEFONT = b"basefont", BGSOUND = b"bgsound", BIG = b"big", BLOCKQUOTE = b"blockquote",
        BODY = b"body", BR = b"br", BUTTON = b"button", CAPTION = b"caption", CENTER = b"center",
        CODE = b"code", COL = b"col", COLGROUP = b"colgroup", DATALIST = b"datalist", DD = b"dd",
        DESC = b"desc", DETAILS = b"details", DIALOG = b"dialog", DIR = b"dir", DIV = b"div",
        DL = b"dl", DT = b"dt", EM = b"em", EMBED = b"embed", FIELDSET = b"fieldset",
        FIGCAPTION = b"figcaption", FIGURE = b"figure", FONT = b"font", FOOTER = b"footer",
        FOREIGNOBJECT = b"foreignobject", FORM = b"form", FRAME = b"frame", FRAMESET = b"frameset",
        H1 = b"h1", H2 = b"h2", H3 = b"h3", H4 = b"h4", H5 = b"h5", H6 = b"h6", HEAD = b"head",
        HEADER = b"header", HGROUP = b"hgroup", HR = b"hr", HTML = b"html", I = b"i",
        IFRAME = b"iframe", IMG = b"img", INPUT = b"input", KEYGEN = b"keygen",
        LEGEND = b"legend", LI = b"li", LINK = b"link", LISTING = b"listing", MAIN = b"main",
        MARQUEE = b"marquee", MATH = b"math", MENU = b"menu",
        META = b"meta", MI = b"mi", MN = b"mn", MO = b"mo", MS = b"ms",
        MTEXT = b"mtext", NAV = b"nav", NOBR = b"nobr", NOEMBED = b"noembed",
        NOFRAMES = b"noframes", NOSCRIPT = b"noscript", OBJECT = b"object", OL = b"ol",
        OPTGROUP = b"optgroup", OPTION = b"option", P = b"p", PARAM = b"param",
        PLAINTEXT = b"plaintext", PRE = b"pre", RB = b"rb", RP = b"rp", RT = b"rt", RTC = b"rtc",
        RUBY = b"ruby", S = b"s", SCRIPT = b"script", SEARCH = b"search", SECTION = b"section",
        SELECT = b"select", SMALL = b"small", SOURCE = b"source",
        STRIKE = b"strike", STRONG = b"strong", STYLE = b"style",
        SUMMARY = b"summary", SVG = b"svg", TABLE = b"table", TBODY = b"tbody",
        TD = b"td", TEMPLATE = b"template", TEXTAREA = b"textarea", TFOOT = b"tfoot", TH = b"th",
        THEAD = b"thead", TITLE = b"title", TR = b"tr", TRACK = b"track", TT = b"tt", U = b"u",
        UL = b"ul", WBR = b"wbr", XMP = b"xmp", AUDIO = b"audio", VIDEO = b"video",
    }
}
