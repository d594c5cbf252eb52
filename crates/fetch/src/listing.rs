//! The archive's bucket listing: Binance Vision is an S3 bucket, and its file browser lists
//! folders through the bucket's ListObjects API (a `prefix`, a `/` delimiter, XML pages of
//! up to a thousand entries with `IsTruncated` and a marker or continuation token to go on
//! from). [`Fetcher::list`] reads every page of one folder, with the retries and backoff of
//! file downloads; [`parse_page`] reads one page.
//!
//! Pages are asked in the original (version 1) form, `marker` to continue, as the archive's
//! own browser does; a server that answers with a `NextContinuationToken` (version 2) is
//! followed with `list-type=2` and the token. A page that would not move the listing on
//! (the same marker twice) ends it with an error rather than a loop.

use std::borrow::Cow;

use quick_xml::events::Event;

use crate::download::Attempt;
use crate::{Error, Fetcher, Result};

/// The listing endpoint of Binance Vision's bucket (what its file browser asks).
pub const DEFAULT_LISTING_URL: &str = "https://s3-ap-northeast-1.amazonaws.com/data.binance.vision";

/// Largest listing page read (a page of a thousand keys is about 300 KB).
const MAX_PAGE_BYTES: u64 = 16 << 20;

/// Pages one folder may take before the listing is refused (a million entries).
const MAX_PAGES: u32 = 1000;

/// One page of a bucket listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListingPage {
    /// Object keys (`Contents/Key`).
    pub keys: Vec<String>,
    /// Sub-folders (`CommonPrefixes/Prefix`), each ending with the delimiter.
    pub prefixes: Vec<String>,
    /// `IsTruncated`: more entries follow.
    pub truncated: bool,
    /// `NextMarker` (version 1, given when a delimiter is used).
    pub next_marker: Option<String>,
    /// `NextContinuationToken` (version 2).
    pub next_token: Option<String>,
}

/// Everything under one folder: its keys and sub-folders, in the server's (key) order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub keys: Vec<String>,
    pub prefixes: Vec<String>,
    /// Pages read.
    pub pages: u32,
}

/// Reads one ListBucketResult page; `url` names it in errors.
pub fn parse_page(xml: &[u8], url: &str) -> Result<ListingPage> {
    let bad = |reason: String| Error::BadAnswer {
        url: url.to_owned(),
        reason,
    };
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut page = ListingPage::default();
    let mut seen_root = false;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| bad(format!("not a bucket listing: {e}")))?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != "ListBucketResult" {
                        return Err(bad(format!(
                            "not a bucket listing: the document is <{name}>"
                        )));
                    }
                    seen_root = true;
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => {
                let s = t
                    .xml_content()
                    .map_err(|e| bad(format!("undecodable text: {e}")))?;
                text.push_str(&s);
            }
            Event::CData(t) => {
                let s = t
                    .decode()
                    .map_err(|e| bad(format!("undecodable text: {e}")))?;
                text.push_str(&s);
            }
            Event::GeneralRef(r) => {
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| bad(format!("bad character reference: {e}")))?
                {
                    text.push(c);
                } else {
                    let name = r
                        .decode()
                        .map_err(|e| bad(format!("undecodable entity: {e}")))?;
                    let entity = format!("&{name};");
                    let resolved = quick_xml::escape::unescape(&entity)
                        .map_err(|e| bad(format!("unknown entity {entity}: {e}")))?;
                    text.push_str(&resolved);
                }
            }
            Event::End(_) => {
                let parents: Vec<&str> = path.iter().map(String::as_str).collect();
                match parents.as_slice() {
                    ["ListBucketResult", "Contents", "Key"] => {
                        page.keys.push(std::mem::take(&mut text));
                    }
                    ["ListBucketResult", "CommonPrefixes", "Prefix"] => {
                        page.prefixes.push(std::mem::take(&mut text));
                    }
                    ["ListBucketResult", "IsTruncated"] => {
                        page.truncated = match text.trim() {
                            "true" => true,
                            "false" => false,
                            other => {
                                return Err(bad(format!(
                                    "the IsTruncated element is {other:?}, not true or false"
                                )));
                            }
                        };
                    }
                    ["ListBucketResult", "NextMarker"] => {
                        page.next_marker = Some(std::mem::take(&mut text));
                    }
                    ["ListBucketResult", "NextContinuationToken"] => {
                        page.next_token = Some(std::mem::take(&mut text));
                    }
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !seen_root || !path.is_empty() {
        return Err(bad("not a complete bucket listing".to_owned()));
    }
    Ok(page)
}

/// `s` percent-encoded for a query value (everything but unreserved characters).
fn encode(s: &str) -> Cow<'_, str> {
    let keep = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
    if s.bytes().all(keep) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// Where the listing continues after a page.
enum Next {
    Marker(String),
    Token(String),
}

impl Fetcher {
    /// Every key and sub-folder under `prefix` (a folder path ending with `/`, such as
    /// `data/spot/daily/klines/`), from the bucket listing at `listing_url`: with
    /// `delimiter`, sub-folders are listed as prefixes rather than their files; with
    /// `after`, only keys sorting after it (how a refresh lists only new files).
    pub async fn list(
        &self,
        listing_url: &str,
        prefix: &str,
        delimiter: bool,
        after: Option<&str>,
    ) -> Result<Listing> {
        let base = listing_url.trim_end_matches('/');
        let mut out = Listing::default();
        let mut next = after.map(|a| Next::Marker(a.to_owned()));
        loop {
            let mut query = String::new();
            if matches!(next, Some(Next::Token(_))) {
                query.push_str("list-type=2&");
            }
            if delimiter {
                query.push_str("delimiter=%2F&");
            }
            query.push_str("prefix=");
            query.push_str(&encode(prefix));
            match &next {
                Some(Next::Marker(m)) => {
                    query.push_str("&marker=");
                    query.push_str(&encode(m));
                }
                Some(Next::Token(t)) => {
                    query.push_str("&continuation-token=");
                    query.push_str(&encode(t));
                }
                None => {}
            }
            let url = format!("{base}/?{query}");
            let mut retries = 0;
            let page = self
                .with_retries(&url, &mut retries, |n| self.get_page(&url, n))
                .await?
                .ok_or_else(|| Error::Status {
                    url: url.clone(),
                    status: 404,
                    attempts: 1,
                })?;
            out.pages += 1;
            let last = page.keys.iter().chain(&page.prefixes).max().cloned();
            out.keys.extend(page.keys);
            out.prefixes.extend(page.prefixes);
            if !page.truncated {
                break;
            }
            let following = match (page.next_token, page.next_marker, last) {
                (Some(token), _, _) => Next::Token(token),
                (None, Some(marker), _) => Next::Marker(marker),
                (None, None, Some(last)) => Next::Marker(last),
                (None, None, None) => {
                    return Err(Error::BadAnswer {
                        url,
                        reason: "a truncated page with no entries and no marker".into(),
                    });
                }
            };
            let stuck = match (&following, &next) {
                (Next::Marker(a), Some(Next::Marker(b)))
                | (Next::Token(a), Some(Next::Token(b))) => a == b,
                _ => false,
            };
            if stuck {
                return Err(Error::BadAnswer {
                    url,
                    reason: format!("the listing does not move on after {} page(s)", out.pages),
                });
            }
            if out.pages >= MAX_PAGES {
                return Err(Error::BadAnswer {
                    url,
                    reason: format!("the folder takes more than {MAX_PAGES} pages"),
                });
            }
            next = Some(following);
        }
        Ok(out)
    }

    /// One listing page, at most [`MAX_PAGE_BYTES`]. A `200` that is not a listing (a
    /// maintenance page, a cut document) is retried like a `5xx`.
    async fn get_page(&self, url: &str, n: u32) -> Attempt<ListingPage> {
        let mut resp = match self.send(self.client().get(url), url, n).await {
            Attempt::Done(r) => r,
            Attempt::NotFound => return Attempt::NotFound,
            Attempt::Retry(e) => return Attempt::Retry(e),
            Attempt::Fatal(e) => return Attempt::Fatal(e),
        };
        if let Some(announced) = resp.content_length().filter(|&n| n > MAX_PAGE_BYTES) {
            return Attempt::Fatal(Error::TooLarge {
                url: url.to_owned(),
                bytes: announced,
                limit: MAX_PAGE_BYTES,
                announced: true,
            });
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.count_bytes(bytes.len() as u64);
                    if (body.len() + bytes.len()) as u64 > MAX_PAGE_BYTES {
                        return Attempt::Fatal(Error::TooLarge {
                            url: url.to_owned(),
                            bytes: (body.len() + bytes.len()) as u64,
                            limit: MAX_PAGE_BYTES,
                            announced: false,
                        });
                    }
                    body.extend_from_slice(&bytes);
                }
                Ok(None) => {
                    return match parse_page(&body, url) {
                        Ok(page) => Attempt::Done(page),
                        Err(e) => Attempt::Retry(e),
                    };
                }
                Err(source) => {
                    return Attempt::Retry(Error::Transfer {
                        url: url.to_owned(),
                        attempts: n,
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_gives_keys_prefixes_and_where_to_go_on() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>data.binance.vision</Name><Prefix>data/spot/daily/klines/</Prefix>
  <Marker></Marker><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>
  <IsTruncated>true</IsTruncated><NextMarker>data/spot/daily/klines/B&amp;B/</NextMarker>
  <Contents><Key>data/a.zip</Key><Size>12</Size></Contents>
  <Contents><Key><![CDATA[data/b.zip]]></Key></Contents>
  <CommonPrefixes><Prefix>data/spot/daily/klines/1INCHBTC/</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>data/spot/daily/klines/B&amp;B&#47;</Prefix></CommonPrefixes>
</ListBucketResult>"#;
        let page = parse_page(xml, "u").unwrap();
        assert_eq!(page.keys, ["data/a.zip", "data/b.zip"]);
        assert_eq!(
            page.prefixes,
            [
                "data/spot/daily/klines/1INCHBTC/",
                "data/spot/daily/klines/B&B/"
            ]
        );
        assert!(page.truncated);
        assert_eq!(
            page.next_marker.as_deref(),
            Some("data/spot/daily/klines/B&B/")
        );
        assert_eq!(page.next_token, None);
    }

    #[test]
    fn what_is_not_a_listing_is_refused_naming_the_url() {
        for body in [
            &b"<html><body>maintenance</body></html>"[..],
            b"<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
            b"<ListBucketResult><Contents><Key>a",
            b"",
        ] {
            let err = parse_page(body, "http://x/?prefix=data").unwrap_err();
            assert!(
                err.to_string().starts_with("http://x/?prefix=data: "),
                "{err}"
            );
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("data/spot/"), "data%2Fspot%2F");
        assert_eq!(encode("A-b_c.d~"), "A-b_c.d~");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[tokio::test]
    async fn a_page_that_is_not_a_listing_is_retried_and_sizes_are_bounded() {
        use std::collections::HashMap;
        use std::time::Duration;

        use crate::FetchConfig;
        use crate::test_server::{Answer, serve};

        let good = b"<ListBucketResult><IsTruncated>false</IsTruncated>\
            <Contents><Key>a/x.zip</Key></Contents></ListBucketResult>"
            .to_vec();
        let script = HashMap::from([
            (
                "/?prefix=a%2F".to_owned(),
                vec![
                    Answer::ok(b"<html>down for maintenance</html>".to_vec()),
                    Answer::ok(good),
                ],
            ),
            (
                "/?prefix=big%2F".to_owned(),
                vec![Answer::Announce {
                    length: 10_000_000_000_000,
                    body: b"<".to_vec(),
                }],
            ),
            ("/?prefix=endless%2F".to_owned(), vec![Answer::Endless]),
        ]);
        let (base, counts) = serve(script).await;
        let fetcher = Fetcher::new(FetchConfig {
            retries: 2,
            backoff: Duration::from_millis(1),
            ..FetchConfig::default()
        })
        .unwrap();
        let listing = fetcher.list(&base, "a/", false, None).await.unwrap();
        assert_eq!(listing.keys, ["a/x.zip"]);
        assert_eq!(
            counts.lock().unwrap()["/?prefix=a%2F"],
            2,
            "the html page was asked again"
        );

        let err = fetcher.list(&base, "big/", false, None).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    announced: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(counts.lock().unwrap()["/?prefix=big%2F"], 1, "not retried");
        let before = fetcher.stats().bytes_received;
        let err = fetcher
            .list(&base, "endless/", false, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    announced: false,
                    ..
                }
            ),
            "{err:?}"
        );
        let read = fetcher.stats().bytes_received - before;
        assert!(read <= MAX_PAGE_BYTES + 64 * 1024, "{read}");
    }
}
