//! The Binance REST API for what Vision does not publish yet: klines (spot
//! `/api/v3/klines`, USD-M `/fapi/v1/klines`, COIN-M `/dapi/v1/klines`) and funding rates
//! (`/fapi/v1/fundingRate`, `/dapi/v1/fundingRate`), one page per request.
//!
//! Rate limits are the exchange's, not ours to discover by being banned: every answer's
//! `X-MBX-USED-WEIGHT-1M` header says how much of the minute's weight the IP has used, and
//! a request that would pass [`RestConfig::weight_budget`] waits for the next window. A
//! `429` or `418` waits its `Retry-After` (at least the backoff, so never a busy loop); a
//! `Retry-After` longer than [`RestConfig::max_retry_after`] ends the run with
//! [`Error::RateLimited`] instead of sleeping for hours. Only closed bars are returned:
//! the bar still open at `now` is dropped.

use marketdb_model::time::now_ms;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use marketdb_model::{Field, Freq, FundingRate, Kline};

use crate::backoff::Jitter;
use crate::{Error, Market, Result};

/// Largest JSON answer read (a full page of 1500 klines is about 250 KB).
const MAX_BODY: usize = 16 << 20;

/// How a [`RestClient`] talks to the API.
#[derive(Clone, Debug)]
pub struct RestConfig {
    /// Base URL; [`Market::rest_base`] by default.
    pub base_url: String,
    /// Retries after the first attempt of one request.
    pub retries: u32,
    /// Delay before the first retry; doubled each retry (with jitter), up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read_timeout: Duration,
    /// Longest a whole request may take.
    pub timeout: Duration,
    /// Request weight this client lets the IP use per window; above it, it waits for the
    /// next window. Binance allows 6000 (spot) and 2400 (futures) per minute; the default
    /// keeps a tenth free for other programs on the same address.
    pub weight_budget: u64,
    /// The weight window (a minute at Binance).
    pub weight_window: Duration,
    /// Longest `Retry-After` waited; a longer one is an error.
    pub max_retry_after: Duration,
}

impl RestConfig {
    /// The defaults for `market`.
    pub fn for_market(market: Market) -> RestConfig {
        RestConfig {
            base_url: market.rest_base().to_owned(),
            retries: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
            weight_budget: match market {
                Market::Spot => 5400,
                Market::Um | Market::Cm => 2160,
            },
            weight_window: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Counters of one client, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestStats {
    /// Requests sent (retries included).
    pub requests: u64,
    /// Requests repeated after a failure or a rate-limit answer.
    pub retries: u64,
    /// Waits for the next weight window.
    pub weight_waits: u64,
}

/// The weight the exchange last reported, in the window it reported it for.
#[derive(Debug, Default)]
struct Weight {
    window: i64,
    used: u64,
}

/// A client of one market's REST API; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RestClient {
    market: Market,
    client: reqwest::Client,
    config: RestConfig,
    weight: Mutex<Weight>,
    jitter: Jitter,
    requests: AtomicU64,
    retries: AtomicU64,
    weight_waits: AtomicU64,
}

/// One request's result, for the retry loop.
enum Attempt<T> {
    Done(T),
    /// Retry after at least this long (a `Retry-After`), or after the backoff.
    Retry(Error, Option<Duration>),
    Fatal(Error),
}

impl RestClient {
    pub fn new(market: Market, config: RestConfig) -> Result<RestClient> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("marketdb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::Client { source })?;
        Ok(RestClient {
            market,
            client,
            config,
            weight: Mutex::new(Weight::default()),
            jitter: Jitter::default(),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            weight_waits: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    pub fn stats(&self) -> RestStats {
        RestStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            weight_waits: self.weight_waits.load(Ordering::Relaxed),
        }
    }

    /// Most rows one klines request returns.
    pub fn kline_limit(&self) -> u32 {
        self.market.kline_page()
    }

    /// The weight of one full klines request (Binance's published weights).
    fn kline_weight(&self) -> u64 {
        match self.market {
            Market::Spot => 2,
            Market::Um | Market::Cm => 10,
        }
    }

    /// One page of closed klines with open times in `[start, end_exclusive)`, ascending;
    /// bars that close at or after `now_ms` are dropped. Empty when the exchange has none.
    pub async fn klines_page(
        &self,
        symbol: &str,
        freq: Freq,
        start: i64,
        end_exclusive: i64,
        now_ms: i64,
    ) -> Result<Vec<Kline>> {
        let path = match self.market {
            Market::Spot => "api/v3/klines",
            Market::Um => "fapi/v1/klines",
            Market::Cm => "dapi/v1/klines",
        };
        let url = format!(
            "{}/{path}?symbol={symbol}&interval={}&startTime={start}&endTime={}&limit={}",
            self.config.base_url.trim_end_matches('/'),
            freq.as_str(),
            end_exclusive - 1,
            self.kline_limit()
        );
        let rows: Vec<Vec<Field>> = self.get_json(&url, self.kline_weight()).await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut last = i64::MIN;
        for row in rows {
            let k = Kline::from_binance(symbol, &row).map_err(|e| Error::BadAnswer {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            in_order(&url, "bar", k.open_time, start, end_exclusive, &mut last)?;
            if k.close_time < now_ms {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// One page of funding rates with times in `[start, end_exclusive)`, ascending.
    pub async fn funding_page(
        &self,
        symbol: &str,
        start: i64,
        end_exclusive: i64,
    ) -> Result<Vec<FundingRate>> {
        let path = match self.market {
            Market::Spot => {
                return Err(Error::Unsupported {
                    what: "funding rates on the spot market".to_owned(),
                });
            }
            Market::Um => "fapi/v1/fundingRate",
            Market::Cm => "dapi/v1/fundingRate",
        };
        let url = format!(
            "{}/{path}?symbol={symbol}&startTime={start}&endTime={}&limit=1000",
            self.config.base_url.trim_end_matches('/'),
            end_exclusive - 1,
        );
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Row {
            funding_time: i64,
            funding_rate: Field,
            #[serde(default)]
            mark_price: Option<Field>,
        }
        let rows: Vec<Row> = self.get_json(&url, 1).await?;
        let number = |f: &Field| match f {
            Field::Int(i) => Some(*i as f64),
            Field::Num(x) => Some(*x),
            Field::Text(s) => s.trim().parse().ok(),
        };
        let mut out = Vec::with_capacity(rows.len());
        let mut last = i64::MIN;
        for r in rows {
            let Some(rate) = number(&r.funding_rate) else {
                return Err(Error::BadAnswer {
                    url,
                    reason: format!("funding rate {:?} is not a number", r.funding_rate),
                });
            };
            in_order(
                &url,
                "funding time",
                r.funding_time,
                start,
                end_exclusive,
                &mut last,
            )?;
            out.push(FundingRate {
                symbol: symbol.to_owned(),
                funding_time: r.funding_time,
                funding_rate: rate,
                // Old answers carry an empty mark price.
                mark_price: r.mark_price.as_ref().and_then(number),
                index_price: None,
            });
        }
        Ok(out)
    }

    /// GETs `url` (of request weight `weight`) and decodes its JSON, with the weight
    /// budget, retries and `Retry-After` applied.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str, weight: u64) -> Result<T> {
        let mut n = 1;
        loop {
            self.wait_for_weight(weight).await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            match self.attempt(url, n).await {
                Attempt::Done(body) => {
                    return serde_json::from_slice(&body).map_err(|e| Error::BadAnswer {
                        url: url.to_owned(),
                        reason: e.to_string(),
                    });
                }
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(e, _) if n > self.config.retries => return Err(e),
                Attempt::Retry(e, at_least) => {
                    let delay = self
                        .jitter
                        .delay(self.config.backoff, self.config.max_backoff, n)
                        .max(at_least.unwrap_or_default());
                    tracing::info!(url, attempt = n, error = %e, ?delay, "retrying");
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Reserves `weight` in the current window before a request is sent, waiting for the
    /// next window while the reservation would pass the budget. Every request of this
    /// client (its concurrent callers included: a stream's backfills share one client)
    /// reserves first, so together they never pass the budget, whatever the answers say
    /// later; an answer's reported weight only raises the count (other clients of the IP).
    async fn wait_for_weight(&self, weight: u64) {
        let window_ms = i64::try_from(self.config.weight_window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut waited = false;
        loop {
            let now = now_ms();
            let wait = {
                let mut w = self.weight.lock().unwrap_or_else(|p| p.into_inner());
                let current = now.div_euclid(window_ms);
                if w.window != current {
                    *w = Weight {
                        window: current,
                        used: 0,
                    };
                }
                // A request heavier than the whole budget still goes, alone in its window.
                if w.used + weight <= self.config.weight_budget || w.used == 0 {
                    w.used += weight;
                    None
                } else {
                    Some((current + 1) * window_ms - now)
                }
            };
            let Some(ms) = wait else {
                return;
            };
            if !waited {
                self.weight_waits.fetch_add(1, Ordering::Relaxed);
                waited = true;
            }
            let ms = u64::try_from(ms).unwrap_or(0) + 5;
            tracing::info!(
                wait_ms = ms,
                "request weight budget used: waiting for the next window"
            );
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// Notes the used weight an answer reports.
    fn note_weight(&self, headers: &reqwest::header::HeaderMap) {
        let used = headers
            .iter()
            .filter(|(name, _)| {
                let n = name.as_str();
                n.starts_with("x-mbx-used-weight-") && n.ends_with('m')
            })
            .filter_map(|(_, v)| v.to_str().ok()?.trim().parse::<u64>().ok())
            .max();
        if let Some(used) = used {
            let window_ms = i64::try_from(self.config.weight_window.as_millis())
                .unwrap_or(i64::MAX)
                .max(1);
            let mut w = self.weight.lock().unwrap_or_else(|p| p.into_inner());
            let current = now_ms().div_euclid(window_ms);
            if w.window != current {
                *w = Weight {
                    window: current,
                    used: 0,
                };
            }
            w.used = w.used.max(used);
        }
    }

    async fn attempt(&self, url: &str, n: u32) -> Attempt<Vec<u8>> {
        let mut resp = match self.client.get(url).send().await {
            Ok(r) => r,
            Err(source) => {
                return Attempt::Retry(
                    Error::Transfer {
                        url: url.to_owned(),
                        attempts: n,
                        source,
                    },
                    None,
                );
            }
        };
        self.note_weight(resp.headers());
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 418 {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if let Some(after) = after
                && after > self.config.max_retry_after
            {
                return Attempt::Fatal(Error::RateLimited {
                    url: url.to_owned(),
                    status: status.as_u16(),
                    retry_after_secs: after.as_secs(),
                });
            }
            tracing::warn!(url, status = status.as_u16(), ?after, "rate limited");
            return Attempt::Retry(
                Error::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                    attempts: n,
                },
                after,
            );
        }
        if !status.is_success() {
            let err = Error::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                attempts: n,
            };
            return if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
                Attempt::Retry(err, None)
            } else {
                Attempt::Fatal(err)
            };
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    if body.len() + bytes.len() > MAX_BODY {
                        return Attempt::Fatal(Error::BadAnswer {
                            url: url.to_owned(),
                            reason: format!("answer larger than {MAX_BODY} bytes"),
                        });
                    }
                    body.extend_from_slice(&bytes);
                }
                Ok(None) => return Attempt::Done(body),
                Err(source) => {
                    return Attempt::Retry(
                        Error::Transfer {
                            url: url.to_owned(),
                            attempts: n,
                            source,
                        },
                        None,
                    );
                }
            }
        }
    }
}

/// Checks that a row's time `t` lies in `[start, end_exclusive)` and after `last` (then
/// moves `last` to it): an answer outside the asked range or out of order is refused.
fn in_order(
    url: &str,
    what: &str,
    t: i64,
    start: i64,
    end_exclusive: i64,
    last: &mut i64,
) -> Result<()> {
    if t < start || t >= end_exclusive || t <= *last {
        return Err(Error::BadAnswer {
            url: url.to_owned(),
            reason: format!("{what} at {t} is outside the asked range or out of order"),
        });
    }
    *last = t;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::test_server::{Answer, serve};

    const T0: i64 = 1_704_067_200_000; // 2024-01-01
    const MIN: i64 = 60_000;

    fn row(t: i64, close: f64) -> String {
        format!(
            r#"[{t},"1.0","2.0","0.5","{close}","10.0",{},"15.0",7,"4.0","6.0","0"]"#,
            t + MIN - 1
        )
    }

    fn page(times: &[i64]) -> Vec<u8> {
        let rows: Vec<String> = times.iter().map(|&t| row(t, t as f64 / 1e12)).collect();
        format!("[{}]", rows.join(",")).into_bytes()
    }

    fn klines_path(start: i64, end: i64) -> String {
        format!(
            "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime={start}&endTime={}&limit=1500",
            end - 1
        )
    }

    fn config(base: &str) -> RestConfig {
        RestConfig {
            base_url: base.to_owned(),
            retries: 2,
            backoff: Duration::from_millis(1),
            read_timeout: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            ..RestConfig::for_market(Market::Um)
        }
    }

    #[tokio::test]
    async fn a_page_keeps_closed_bars_exactly_and_drops_the_open_one() {
        let end = T0 + 3 * MIN;
        let script = HashMap::from([(
            klines_path(T0, end),
            vec![Answer::ok(page(&[T0, T0 + MIN, T0 + 2 * MIN]))],
        )]);
        let (base, counts) = serve(script).await;
        let client = RestClient::new(Market::Um, config(&base)).unwrap();
        // "now" inside the third bar: it is still open.
        let got = client
            .klines_page("BTCUSDT", Freq::M1, T0, end, T0 + 2 * MIN + 5)
            .await
            .unwrap();
        let times: Vec<i64> = got.iter().map(|k| k.open_time).collect();
        assert_eq!(times, [T0, T0 + MIN]);
        assert_eq!(got[1].close, (T0 + MIN) as f64 / 1e12);
        assert_eq!(got[1].close_time, T0 + 2 * MIN - 1);
        assert_eq!(got[0].trades_count, 7);
        assert_eq!(counts.lock().unwrap()[&klines_path(T0, end)], 1);
        assert_eq!(
            client.stats(),
            RestStats {
                requests: 1,
                retries: 0,
                weight_waits: 0
            }
        );
    }

    #[tokio::test]
    async fn a_429_waits_its_retry_after_and_a_long_one_is_an_error() {
        let end = T0 + MIN;
        let limited = Answer::status(429).with_header("Retry-After", "1");
        let banned = Answer::status(418).with_header("Retry-After", "7200");
        let other = T0 + 10 * MIN;
        let script = HashMap::from([
            (klines_path(T0, end), vec![limited, Answer::ok(page(&[T0]))]),
            (klines_path(other, other + MIN), vec![banned]),
        ]);
        let (base, counts) = serve(script).await;
        let client = RestClient::new(Market::Um, config(&base)).unwrap();
        let started = std::time::Instant::now();
        let got = client
            .klines_page("BTCUSDT", Freq::M1, T0, end, i64::MAX)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "the Retry-After was not waited"
        );
        assert_eq!(client.stats().retries, 1);
        assert_eq!(counts.lock().unwrap()[&klines_path(T0, end)], 2);

        let err = client
            .klines_page("BTCUSDT", Freq::M1, other, other + MIN, i64::MAX)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::RateLimited {
                    status: 418,
                    retry_after_secs: 7200,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            counts.lock().unwrap()[&klines_path(other, other + MIN)],
            1,
            "a ban is not retried"
        );
    }

    #[tokio::test]
    async fn a_used_weight_at_the_budget_waits_for_the_next_window() {
        let end = T0 + MIN;
        let heavy = Answer::ok(page(&[T0])).with_header("X-MBX-USED-WEIGHT-1M", "2160");
        let script = HashMap::from([(klines_path(T0, end), vec![heavy])]);
        let (base, counts) = serve(script).await;
        let client = RestClient::new(
            Market::Um,
            RestConfig {
                weight_window: Duration::from_millis(1000),
                ..config(&base)
            },
        )
        .unwrap();
        // Three requests: at least one follows an answer in the same window, even if a
        // window ends between two of them.
        for _ in 0..3 {
            client
                .klines_page("BTCUSDT", Freq::M1, T0, end, i64::MAX)
                .await
                .unwrap();
        }
        assert_eq!(counts.lock().unwrap()[&klines_path(T0, end)], 3);
        let stats = client.stats();
        assert!(stats.weight_waits >= 1, "{stats:?}");
    }

    #[tokio::test]
    async fn answers_out_of_range_out_of_order_or_not_json_are_errors() {
        let end = T0 + 5 * MIN;
        let outside = T0 + 100 * MIN;
        let script = HashMap::from([
            (klines_path(T0, end), vec![Answer::ok(page(&[T0, outside]))]),
            (
                klines_path(T0 + MIN, end),
                vec![Answer::ok(page(&[T0 + 2 * MIN, T0 + MIN]))],
            ),
            (
                klines_path(T0 + 2 * MIN, end),
                vec![Answer::ok(b"[[1,2".to_vec())],
            ),
            (
                klines_path(T0 + 3 * MIN, end),
                vec![Answer::ok(br#"[[1,"x"]]"#.to_vec())],
            ),
            (klines_path(T0 + 4 * MIN, end), vec![Answer::status(400)]),
        ]);
        let (base, _) = serve(script).await;
        let client = RestClient::new(Market::Um, config(&base)).unwrap();
        for k in 0..4 {
            let err = client
                .klines_page("BTCUSDT", Freq::M1, T0 + k * MIN, end, i64::MAX)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::BadAnswer { .. }), "page {k}: {err:?}");
        }
        let err = client
            .klines_page("BTCUSDT", Freq::M1, T0 + 4 * MIN, end, i64::MAX)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Status {
                    status: 400,
                    attempts: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn funding_pages_parse_strings_and_empty_mark_prices() {
        let end = T0 + 86_400_000;
        let path = format!(
            "/fapi/v1/fundingRate?symbol=BTCUSDT&startTime={T0}&endTime={}&limit=1000",
            end - 1
        );
        let body = format!(
            r#"[{{"symbol":"BTCUSDT","fundingTime":{T0},"fundingRate":"0.00010000","markPrice":"42000.5"}},
               {{"symbol":"BTCUSDT","fundingTime":{},"fundingRate":"-0.00002500","markPrice":""}}]"#,
            T0 + 8 * 3_600_000
        );
        let (base, _) = serve(HashMap::from([(path, vec![Answer::ok(body)])])).await;
        let client = RestClient::new(Market::Um, config(&base)).unwrap();
        let got = client.funding_page("BTCUSDT", T0, end).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].funding_time, got[0].funding_rate, got[0].mark_price),
            (T0, 0.0001, Some(42000.5))
        );
        assert_eq!((got[1].funding_rate, got[1].mark_price), (-0.000025, None));
        let spot = RestClient::new(Market::Spot, config(&base)).unwrap();
        assert!(matches!(
            spot.funding_page("BTCUSDT", T0, end).await,
            Err(Error::Unsupported { .. })
        ));
    }
}
