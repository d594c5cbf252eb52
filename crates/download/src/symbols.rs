//! Symbol sets of a download: names, `all`, globs (`*USDT`, `BTC?USDT`, any case) and
//! regular expressions (`re:^BTC`) matched against the catalog of the market, kind and
//! interval asked for, narrowed by a quote asset; delisted symbols only when asked. The
//! result fills [`DownloadRequest::symbols`] and the listed life of each symbol
//! ([`DownloadRequest::lives`]), so the plan asks only for periods a symbol existed in.

use std::collections::BTreeSet;

use marketdb_store::AsyncMarketDB;

use crate::catalog::lives_of;
use crate::request::{DownloadRequest, Listed};
use crate::{Error, Result};

/// What `--symbols` (with `--quote` and `--include-delisted`) asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymbolSet {
    /// Names and patterns, as given.
    pub items: Vec<String>,
    /// Only symbols quoted in this asset (`USDT`: `BTCUSDT`, `BTCUSDT_240329`).
    pub quote: Option<String>,
    /// Patterns also match symbols the catalog marks delisted.
    pub include_delisted: bool,
}

/// One item of a set.
#[derive(Debug)]
enum Item {
    Name(String),
    All,
    Glob(String),
    Regex(regex::Regex),
}

/// Whether `item` is a pattern rather than a name.
pub fn is_pattern(item: &str) -> bool {
    item.eq_ignore_ascii_case("all") || item.contains(['*', '?']) || item.starts_with("re:")
}

fn parse_item(item: &str) -> Result<Item> {
    if item.eq_ignore_ascii_case("all") {
        return Ok(Item::All);
    }
    if let Some(re) = item.strip_prefix("re:") {
        return regex::Regex::new(re)
            .map(Item::Regex)
            .map_err(|e| Error::invalid(format!("--symbols {item:?}"), format!("{e}")));
    }
    if item.contains(['*', '?']) {
        return Ok(Item::Glob(item.to_ascii_uppercase()));
    }
    Ok(Item::Name(item.to_owned()))
}

/// `*` any run of characters, `?` one character (ASCII case folded by the caller).
fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether `symbol` is quoted in `quote`: its name before any `_` suffix ends with it.
fn quoted_in(symbol: &str, quote: &str) -> bool {
    let base = symbol.split('_').next().unwrap_or(symbol);
    base.len() > quote.len()
        && base
            .to_ascii_uppercase()
            .ends_with(&quote.to_ascii_uppercase())
}

impl Item {
    fn matches(&self, symbol: &str) -> bool {
        match self {
            Item::Name(n) => n == symbol,
            Item::All => true,
            Item::Glob(g) => glob_matches(g.as_bytes(), symbol.to_ascii_uppercase().as_bytes()),
            Item::Regex(r) => r.is_match(symbol),
        }
    }
}

/// Fills `req.symbols` and `req.lives` from `set` and the catalog in `db`. Names are kept
/// as given (a name the catalog does not know is asked as before, without a life);
/// patterns need a catalog of the request's market, kind and interval.
pub async fn apply(
    db: Option<&AsyncMarketDB>,
    req: &mut DownloadRequest,
    set: &SymbolSet,
) -> Result<()> {
    let items = set
        .items
        .iter()
        .map(|i| parse_item(i.trim()))
        .collect::<Result<Vec<_>>>()?;
    let lives = match db {
        Some(db) => lives_of(db, req.market, req.kind, req.file_freq()).await?,
        None => Default::default(),
    };
    let has_patterns = items.iter().any(|i| !matches!(i, Item::Name(_)));
    if has_patterns && lives.is_empty() {
        return Err(Error::invalid(
            "--symbols",
            format!(
                "patterns need the catalog of {} {}{}: run `marketdb catalog refresh --market {} --kind {}` first",
                req.market,
                req.kind.as_str(),
                req.file_freq().map_or(String::new(), |f| format!(" {f}")),
                req.market,
                req.kind.as_str()
            ),
        ));
    }
    if let Some(q) = &set.quote
        && (q.trim().is_empty() || !q.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(Error::invalid(
            format!("--quote {q:?}"),
            "expected an asset name such as USDT",
        ));
    }
    let quoted = |s: &str| set.quote.as_deref().is_none_or(|q| quoted_in(s, q));
    let mut chosen = BTreeSet::new();
    for item in &items {
        match item {
            Item::Name(n) => {
                if quoted(n) {
                    chosen.insert(n.clone());
                }
            }
            pattern => chosen.extend(
                lives
                    .values()
                    .filter(|l| set.include_delisted || !l.delisted)
                    .filter(|l| pattern.matches(&l.symbol) && quoted(&l.symbol))
                    .map(|l| l.symbol.clone()),
            ),
        }
    }
    if chosen.is_empty() {
        return Err(Error::invalid(
            format!("--symbols {}", set.items.join(",")),
            "matches no symbol of the catalog",
        ));
    }
    req.lives = chosen
        .iter()
        .filter_map(|s| {
            let l = lives.get(s)?;
            Some((
                s.clone(),
                Listed {
                    first: l.first,
                    end: l.delisted.then_some(l.end),
                    monthly: l.monthly,
                },
            ))
        })
        .collect();
    req.symbols = chosen.into_iter().collect();
    Ok(())
}

/// Names and patterns to match symbols against (the `catalog` listing's `--symbols`).
#[derive(Debug)]
pub struct Matcher(Vec<Item>);

impl Matcher {
    /// Parses `items`; no item matches every symbol.
    pub fn new(items: &[String]) -> Result<Matcher> {
        items
            .iter()
            .map(|i| parse_item(i.trim()))
            .collect::<Result<Vec<_>>>()
            .map(Matcher)
    }

    /// Whether `symbol` matches one of the items (every symbol when there are none).
    pub fn matches(&self, symbol: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|i| i.matches(symbol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        let m = |p: &str, n: &str| glob_matches(p.as_bytes(), n.as_bytes());
        assert!(m("*USDT", "BTCUSDT"));
        assert!(!m("*USDT", "BTCUSDC"));
        assert!(m("BTC*", "BTCUSDT"));
        assert!(m("B?CUSDT", "BTCUSDT"));
        assert!(!m("B?USDT", "BTCUSDT"));
        assert!(m("*", ""));
        assert!(m("*US*T", "ETHUSDT"));
        assert!(!m("USDT", "BTCUSDT"));
    }

    #[test]
    fn quotes_ignore_contract_suffixes_and_need_a_base() {
        assert!(quoted_in("BTCUSDT", "usdt"));
        assert!(quoted_in("BTCUSDT_240329", "USDT"));
        assert!(quoted_in("BTCUSD_PERP", "USD"));
        assert!(!quoted_in("USDT", "USDT"));
        assert!(!quoted_in("BTCUSDC", "USDT"));
    }

    #[test]
    fn patterns_are_told_from_names_and_bad_regexes_are_named() {
        assert!(is_pattern("all") && is_pattern("*USDT") && is_pattern("re:^BTC"));
        assert!(!is_pattern("BTCUSDT"));
        let err = parse_item("re:(").err().unwrap();
        assert!(err.to_string().starts_with("--symbols \"re:(\""), "{err}");
    }
}
