//! Pure: which content coding a client gets, from its `Accept-Encoding` (RFC 9110 §12.5.3),
//! and which media types are worth compressing.

use http::HeaderValue;

use super::Coding;

/// The coding to send, or `None` for the body as it is (identity).
///
/// q-values are honoured: a coding with `q=0` is refused, a higher q wins, and on a tie br is
/// preferred to gzip (smaller). A coding the client does not name is acceptable only through
/// `*`. Identity wins only when the client names it with a higher q than every coding it
/// accepts (unnamed, it is "acceptable" with no weight, as nginx and Apache read it). No
/// `Accept-Encoding` at all gets identity: a client that sent none may not decode.
pub fn choose<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<Coding> {
    let mut q = Weights::default();
    for item in values.flat_map(|v| v.as_bytes().split(|&b| b == b',')) {
        let mut parts = item.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        if name.is_empty() {
            continue;
        }
        let weight = match parts.find_map(q_param) {
            None => 1000,
            Some(Some(w)) => w,
            // An unreadable q-value: the entry is ignored, as a malformed one.
            Some(None) => continue,
        };
        let slot = if name.eq_ignore_ascii_case(b"br") {
            &mut q.br
        } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            &mut q.gzip
        } else if name.eq_ignore_ascii_case(b"identity") {
            &mut q.identity
        } else if name == b"*" {
            &mut q.any
        } else {
            continue;
        };
        *slot = Some(slot.map_or(weight, |w: u16| w.max(weight)));
    }
    let br = q.br.or(q.any).unwrap_or(0);
    let gzip = q.gzip.or(q.any).unwrap_or(0);
    let (coding, best) = if br >= gzip {
        (Coding::Brotli, br)
    } else {
        (Coding::Gzip, gzip)
    };
    if best == 0 || q.identity.is_some_and(|i| i > best) {
        return None;
    }
    Some(coding)
}

/// The weights (per mille) the client gave, where it gave one.
#[derive(Default)]
struct Weights {
    br: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

/// A `q=` parameter: `None` when the parameter is another one, `Some(None)` when its value is
/// not a q-value (`0`, `0.5`, `1.000`: at most three decimals), else its weight per mille.
fn q_param(param: &[u8]) -> Option<Option<u16>> {
    let param = param.trim_ascii();
    let value = param
        .strip_prefix(b"q=")
        .or_else(|| param.strip_prefix(b"Q="))?;
    let (whole, frac) = match value.iter().position(|&b| b == b'.') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &b""[..]),
    };
    let digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    if whole.len() != 1 || frac.len() > 3 || !digits(whole) || !digits(frac) {
        return Some(None);
    }
    let mut weight = u16::from(whole[0] - b'0') * 1000;
    for (i, &d) in frac.iter().enumerate() {
        weight += u16::from(d - b'0') * [100, 10, 1][i];
    }
    Some((weight <= 1000).then_some(weight))
}

/// Media types that gain from compression: text, and the text-like types of the web. Images,
/// audio, video, archives and fonts in WOFF are compressed already and are left alone.
const COMPRESSIBLE: &[&str] = &[
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/wasm",
    "application/x-sh",
    "application/rtf",
    "application/postscript",
    "application/vnd.ms-fontobject",
    "font/ttf",
    "font/otf",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
];

/// Whether a body of this `Content-Type` is worth compressing.
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .as_bytes();
    let starts = |p: &[u8]| essence.len() >= p.len() && essence[..p.len()].eq_ignore_ascii_case(p);
    let ends = |s: &[u8]| {
        essence.len() >= s.len() && essence[essence.len() - s.len()..].eq_ignore_ascii_case(s)
    };
    starts(b"text/")
        || ends(b"+json")
        || ends(b"+xml")
        || COMPRESSIBLE
            .iter()
            .any(|t| t.as_bytes().eq_ignore_ascii_case(essence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(values: &[&'static str]) -> Option<Coding> {
        let values: Vec<HeaderValue> = values.iter().map(|v| HeaderValue::from_static(v)).collect();
        choose(values.iter())
    }

    #[test]
    fn accept_encoding_is_negotiated_by_q_values() {
        use Coding::*;
        let table: &[(&[&'static str], Option<Coding>)] = &[
            (&[], None),
            (&[""], None),
            (&["gzip"], Some(Gzip)),
            (&["x-gzip"], Some(Gzip)),
            (&["GZIP, deflate"], Some(Gzip)),
            (&["gzip, deflate, br"], Some(Brotli)),
            (&["br;q=0.5, gzip"], Some(Gzip)),
            (&["br;q=0.5, gzip;q=0.4"], Some(Brotli)),
            (&["gzip;q=0"], None),
            (&["gzip;q=0.000"], None),
            (&["gzip;q=0, br;q=0"], None),
            (&["identity"], None),
            (&["identity;q=1, gzip;q=0.5"], None),
            (&["identity;q=0.5, gzip"], Some(Gzip)),
            (&["*"], Some(Brotli)),
            (&["*;q=0.5, br;q=0"], Some(Gzip)),
            (&["*;q=0"], None),
            (&["deflate, compress"], None),
            (&["gzip;q=2"], None),
            (&["gzip;q=abc, br"], Some(Brotli)),
            (&["gzip ; q=0.8 ; foo=bar"], Some(Gzip)),
            (&["deflate", "gzip"], Some(Gzip)),
            (&["gzip", "gzip;q=0"], Some(Gzip)),
        ];
        for (values, want) in table {
            assert_eq!(pick(values), *want, "{values:?}");
        }
    }

    #[test]
    fn text_like_types_are_compressible_and_compressed_ones_are_not() {
        for t in [
            "text/html",
            "text/css; charset=utf-8",
            "TEXT/Plain",
            "application/json",
            "application/javascript",
            "image/svg+xml",
            "application/ld+json",
            "application/xml",
            "application/atom+xml",
        ] {
            assert!(compressible(t), "{t}");
        }
        for t in [
            "image/png",
            "image/jpeg",
            "application/gzip",
            "application/zip",
            "font/woff2",
            "video/mp4",
            "application/octet-stream",
            "",
        ] {
            assert!(!compressible(t), "{t}");
        }
    }
}
