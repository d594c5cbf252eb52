//! Which streams go on which connection: one `symbol@kline_interval` stream per
//! (symbol, freq), at most the market's per-connection limit on one combined-stream
//! connection (`{base}/stream?streams=a/b/c`), more connections above it.

use marketdb_fetch::Market;
use marketdb_model::{Freq, validate_symbol};

use crate::event::stream_name;
use crate::{Error, Result};

/// One (symbol, freq) stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subscription {
    pub symbol: String,
    pub freq: Freq,
}

/// The exchange's public WebSocket base URL of `market`.
pub fn default_ws_base(market: Market) -> &'static str {
    match market {
        Market::Spot => "wss://stream.binance.com:9443",
        Market::Um => "wss://fstream.binance.com",
        Market::Cm => "wss://dstream.binance.com",
    }
}

/// Most streams the exchange serves on one connection (1024 spot, 200 futures).
pub fn stream_limit(market: Market) -> usize {
    match market {
        Market::Spot => 1024,
        Market::Um | Market::Cm => 200,
    }
}

/// Every (symbol, freq) pair, checked: symbols valid and unique, `1s` only on spot.
pub fn subscriptions(
    market: Market,
    symbols: &[String],
    freqs: &[Freq],
) -> Result<Vec<Subscription>> {
    if symbols.is_empty() || freqs.is_empty() {
        return Err(Error::Config(
            "a stream needs at least one symbol and one freq".to_owned(),
        ));
    }
    if market != Market::Spot && freqs.contains(&Freq::S1) {
        return Err(Error::Config(format!(
            "freq 1s: the {market} market has no 1s kline streams (spot only)"
        )));
    }
    let mut out = Vec::with_capacity(symbols.len() * freqs.len());
    for s in symbols {
        let symbol = validate_symbol(s).map_err(|e| Error::Config(format!("symbol {s:?}: {e}")))?;
        for &freq in freqs {
            out.push(Subscription {
                symbol: symbol.clone(),
                freq,
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The connections' URLs and streams: `subs` cut into groups of at most `limit`.
pub fn shard(base: &str, subs: &[Subscription], limit: usize) -> Result<Vec<Shard>> {
    if limit == 0 {
        return Err(Error::Config(
            "streams per connection must be at least 1".to_owned(),
        ));
    }
    let base = base.trim_end_matches('/');
    if !(base.starts_with("ws://") || base.starts_with("wss://")) {
        return Err(Error::Config(format!(
            "websocket url {base:?}: expected ws:// or wss://"
        )));
    }
    Ok(subs
        .chunks(limit)
        .map(|group| {
            let names: Vec<String> = group
                .iter()
                .map(|s| stream_name(&s.symbol, s.freq))
                .collect();
            Shard {
                url: format!("{base}/stream?streams={}", names.join("/")),
                subscriptions: group.to_vec(),
            }
        })
        .collect())
}

/// One connection's streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub url: String,
    pub subscriptions: Vec<Subscription>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn streams_are_cut_at_the_limit_in_a_stable_order() {
        let subs = subscriptions(
            Market::Um,
            &names(&["ethusdt", "BTCUSDT", "btcusdt", "SOLUSDT"]),
            &[Freq::M5, Freq::M1],
        )
        .unwrap();
        assert_eq!(subs.len(), 6, "btcusdt given twice is one symbol");
        let shards = shard("ws://127.0.0.1:9/", &subs, 4).unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(
            shards[0].url,
            "ws://127.0.0.1:9/stream?streams=btcusdt@kline_1m/btcusdt@kline_5m/ethusdt@kline_1m/ethusdt@kline_5m"
        );
        assert_eq!(
            shards[1].url,
            "ws://127.0.0.1:9/stream?streams=solusdt@kline_1m/solusdt@kline_5m"
        );
    }

    #[test]
    fn bad_configurations_are_refused_by_name() {
        let err = subscriptions(Market::Um, &names(&["BTCUSDT"]), &[Freq::S1]).unwrap_err();
        assert!(err.to_string().contains("1s"), "{err}");
        let err = subscriptions(Market::Spot, &names(&["BTC-USDT"]), &[Freq::M1]).unwrap_err();
        assert!(err.to_string().contains("BTC-USDT"), "{err}");
        assert!(subscriptions(Market::Spot, &[], &[Freq::M1]).is_err());
        let subs = subscriptions(Market::Spot, &names(&["BTCUSDT"]), &[Freq::S1]).unwrap();
        let err = shard("http://x", &subs, 10).unwrap_err();
        assert!(err.to_string().contains("http://x"), "{err}");
        assert!(shard("ws://x", &subs, 0).is_err());
    }
}
