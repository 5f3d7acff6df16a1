//! The panel's form and query decoding: `application/x-www-form-urlencoded` pairs, names as
//! text and values as bytes (a path may be any bytes), and the bounded read of a form body.

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::{Reply, text};

/// The largest form body read (an edited text file is the largest form).
const MAX_FORM: usize = 2 * 1024 * 1024;
/// How long a form's body may take to arrive.
const FORM_TIME: std::time::Duration = std::time::Duration::from_secs(60);

/// The body of a form post, decoded; a reply when it is too big or broken.
pub async fn read_form(
    req: Request<hyper::body::Incoming>,
) -> Result<Vec<(String, Vec<u8>)>, Reply> {
    let reading = Limited::new(req.into_body(), MAX_FORM).collect();
    let body = match tokio::time::timeout(FORM_TIME, reading).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large or was cut off\n",
            ));
        }
        Err(_) => {
            return Err(text(
                StatusCode::REQUEST_TIMEOUT,
                "the form did not arrive in time\n",
            ));
        }
    };
    Ok(pairs(&body.to_bytes()))
}

/// The query string's pairs.
pub fn query(req: &Request<hyper::body::Incoming>) -> Vec<(String, Vec<u8>)> {
    pairs(req.uri().query().unwrap_or("").as_bytes())
}

/// `a=1&b=x+y` decoded (`+` is a space, `%XX` a byte): names as text, values as bytes.
pub fn pairs(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    raw.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.iter().position(|&b| b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &b""[..]),
            };
            let decode = |s: &[u8]| -> Vec<u8> {
                let spaced: Vec<u8> = s
                    .iter()
                    .map(|&b| if b == b'+' { b' ' } else { b })
                    .collect();
                percent_encoding::percent_decode(&spaced).collect()
            };
            (String::from_utf8_lossy(&decode(k)).into_owned(), decode(v))
        })
        .collect()
}

/// The first value of `name`.
pub fn value<'a>(pairs: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let p = pairs(b"path=%2Fpublic_html%2Fa+b.cgi&bit=256&bit=64&empty");
        assert_eq!(value(&p, "path"), Some(&b"/public_html/a b.cgi"[..]));
        assert_eq!(p.iter().filter(|(k, _)| k == "bit").count(), 2);
        assert_eq!(value(&p, "empty"), Some(&b""[..]));
    }
}
