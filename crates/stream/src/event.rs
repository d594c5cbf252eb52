//! Binance combined-stream messages: `{"stream": "btcusdt@kline_1m", "data": {"e": "kline",
//! "E": ..., "s": "BTCUSDT", "k": {...}}}`. The kline object's fields (`t`, `T`, `o`, `h`,
//! `l`, `c`, `v`, `q`, `n`, `V`, `Q`, `x`) become a [`Kline`] through the same conversion
//! as a REST row, so a streamed bar and a downloaded one are the same value.

use marketdb_model::{Field, Freq, Kline, validate_symbol};
use serde::Deserialize;

use crate::{Error, Result};

/// One kline event of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct KlineEvent {
    /// The exchange's event time (`E`), ms UTC.
    pub event_time: i64,
    pub freq: Freq,
    /// Whether the bar is closed (`x`); an open bar's values still change.
    pub closed: bool,
    pub kline: Kline,
}

/// What one text frame holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Kline(KlineEvent),
    /// Another event or an answer to a request (`{"result": null, "id": 1}`): not ours.
    Other,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    e: String,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(default)]
    k: Option<Body>,
}

#[derive(Deserialize)]
struct Body {
    t: i64,
    #[serde(rename = "T")]
    close_time: i64,
    s: String,
    i: String,
    o: Raw,
    c: Raw,
    h: Raw,
    l: Raw,
    v: Raw,
    n: i64,
    x: bool,
    q: Raw,
    #[serde(rename = "V")]
    taker_base: Raw,
    #[serde(rename = "Q")]
    taker_quote: Raw,
}

/// A [`Field`] read by type, not by trying each variant: serde's untagged enums build an
/// error per failed variant, which was the largest cost of parsing a frame.
struct Raw(Field);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Raw, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Raw;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a decimal string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Raw, E> {
                Ok(Raw(Field::Text(v.to_owned())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Raw, E> {
                Ok(Raw(Field::Int(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Raw, E> {
                Ok(Raw(
                    i64::try_from(v).map_or(Field::Num(v as f64), Field::Int)
                ))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Raw, E> {
                Ok(Raw(Field::Num(v)))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Parses one text frame; an error names what is wrong (the caller logs it and goes on).
pub fn parse_frame(text: &str) -> Result<Frame> {
    let bad = |reason: String| Error::BadFrame {
        reason,
        frame: text.chars().take(120).collect(),
    };
    let env: Envelope =
        serde_json::from_str(text).map_err(|e| bad(format!("not a stream message: {e}")))?;
    let Some(data) = env.data else {
        return Ok(Frame::Other);
    };
    if data.e != "kline" {
        return Ok(Frame::Other);
    }
    let k = data
        .k
        .ok_or_else(|| bad("kline event without its \"k\" object".to_owned()))?;
    let freq = Freq::parse(&k.i).map_err(|e| bad(format!("interval {:?}: {e}", k.i)))?;
    let symbol = validate_symbol(&k.s).map_err(|e| bad(e.to_string()))?;
    if let Some(stream) = &env.stream {
        let expected = stream_name(&symbol, freq);
        if !stream.eq_ignore_ascii_case(&expected) {
            return Err(bad(format!("stream {stream:?} carries a {expected} event")));
        }
    }
    let row = [
        Field::Int(k.t),
        k.o.0,
        k.h.0,
        k.l.0,
        k.c.0,
        k.v.0,
        Field::Int(k.close_time),
        k.q.0,
        Field::Int(k.n),
        k.taker_base.0,
        k.taker_quote.0,
        Field::Int(0),
    ];
    let kline = Kline::from_binance(&symbol, &row).map_err(|e| bad(e.to_string()))?;
    Ok(Frame::Kline(KlineEvent {
        event_time: data.event_time,
        freq,
        closed: k.x,
        kline,
    }))
}

/// The stream name of (symbol, freq): `btcusdt@kline_1m`.
pub fn stream_name(symbol: &str, freq: Freq) -> String {
    format!("{}@kline_{}", symbol.to_ascii_lowercase(), freq.as_str())
}

/// A combined-stream kline message as Binance sends it (decimal strings for prices and
/// volumes), for replay servers and tests.
pub fn kline_message(k: &Kline, freq: Freq, closed: bool, event_time: i64) -> String {
    // Written out rather than built as a JSON value: the replay server sends hundreds of
    // thousands of these in the benchmark. The symbol is the one string that needs quoting.
    let symbol = serde_json::Value::from(k.symbol.as_str()).to_string();
    format!(
        "{{\"stream\":\"{stream}\",\"data\":{{\"e\":\"kline\",\"E\":{event_time},\"s\":{symbol},\"k\":{{\"t\":{t},\"T\":{tc},\"s\":{symbol},\"i\":\"{i}\",\"f\":100,\"L\":200,\"o\":\"{o}\",\"c\":\"{c}\",\"h\":\"{h}\",\"l\":\"{l}\",\"v\":\"{v}\",\"n\":{n},\"x\":{closed},\"q\":\"{q}\",\"V\":\"{bv}\",\"Q\":\"{bq}\",\"B\":\"0\"}}}}}}",
        stream = stream_name(&k.symbol, freq).escape_default(),
        t = k.open_time,
        tc = k.close_time,
        i = freq.as_str(),
        o = k.open,
        c = k.close,
        h = k.high,
        l = k.low,
        v = k.volume,
        n = k.trades_count,
        q = k.quote_volume,
        bv = k.taker_buy_volume,
        bq = k.taker_buy_quote_volume,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar() -> Kline {
        Kline {
            symbol: "BTCUSDT".to_owned(),
            open_time: 1_700_000_040_000,
            open: 37_000.1,
            high: 37_010.25,
            low: 36_990.0,
            close: 37_005.5,
            volume: 12.345,
            close_time: 1_700_000_099_999,
            quote_volume: 456_789.125,
            trades_count: 321,
            taker_buy_volume: 6.5,
            taker_buy_quote_volume: 240_000.75,
        }
    }

    #[test]
    fn a_message_round_trips_to_the_same_kline() {
        let k = bar();
        let text = kline_message(&k, Freq::M1, true, 1_700_000_100_012);
        let Frame::Kline(ev) = parse_frame(&text).unwrap() else {
            panic!("not a kline: {text}");
        };
        assert_eq!(ev.kline, k);
        assert_eq!(ev.freq, Freq::M1);
        assert!(ev.closed);
        assert_eq!(ev.event_time, 1_700_000_100_012);
        // Numbers instead of decimal strings are the same values.
        let numeric = text
            .replace("\"o\":\"37000.1\"", "\"o\":37000.1")
            .replace("\"V\":\"6.5\"", "\"V\":6.5")
            .replace("\"l\":\"36990\"", "\"l\":36990");
        assert_ne!(numeric, text);
        let Frame::Kline(ev) = parse_frame(&numeric).unwrap() else {
            panic!("not a kline: {numeric}");
        };
        assert_eq!(ev.kline, k);
        let null = text.replace("\"o\":\"37000.1\"", "\"o\":null");
        assert!(parse_frame(&null).is_err(), "a null price is refused");
    }

    #[test]
    fn binance_documented_example_parses() {
        // The example of Binance's WebSocket documentation, in a combined-stream envelope.
        let text = r#"{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}}"#;
        let Frame::Kline(ev) = parse_frame(text).unwrap() else {
            panic!("not a kline");
        };
        assert!(!ev.closed);
        assert_eq!(ev.kline.symbol, "BNBBTC");
        assert_eq!(ev.kline.open_time, 1_672_515_780_000);
        assert_eq!(ev.kline.close_time, 1_672_515_839_999);
        assert_eq!(ev.kline.high, 0.0025);
        assert_eq!(ev.kline.trades_count, 100);
        assert_eq!(ev.kline.taker_buy_quote_volume, 0.5);
    }

    #[test]
    fn other_messages_are_not_klines_and_broken_ones_are_errors() {
        assert_eq!(
            parse_frame(r#"{"result":null,"id":1}"#).unwrap(),
            Frame::Other
        );
        let trade = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1}}"#;
        assert_eq!(parse_frame(trade).unwrap(), Frame::Other);
        let text = kline_message(&bar(), Freq::M1, true, 1);
        for (broken, says) in [
            ("{not json".to_owned(), "not a stream message"),
            (text.replace("\"o\":\"37000.1\"", "\"o\":\"abc\""), "open"),
            (text.replace("\"i\":\"1m\"", "\"i\":\"7m\""), "interval"),
            (
                text.replace("\"s\":\"BTCUSDT\",\"i\"", "\"s\":\"\",\"i\""),
                "symbol",
            ),
            (
                text.replace("btcusdt@kline_1m", "ethusdt@kline_1m"),
                "carries",
            ),
            (text.replace(",\"k\":{", ",\"kk\":{"), "without"),
        ] {
            assert_ne!(broken, text, "the replacement for {says:?} applies");
            let err = parse_frame(&broken).unwrap_err().to_string();
            assert!(err.contains(says), "{err:?} should mention {says:?}");
        }
    }
}
