//! What a model costs: the price table kept in the repository as data
//! (`crates/aos-engines/data/llm-prices.json`, with its source and the date it was
//! recorded), overridable per model in configuration. Money is integer micro-dollars
//! throughout; a cost is rounded up to the next micro-dollar.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// One model's prices, in micro-dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: i64,
    /// Cached input tokens; the input price when absent.
    #[serde(default)]
    pub cached_input: Option<i64>,
    #[serde(default)]
    pub output: i64,
    /// The model's largest completion: the worst case reserved against a budget when the
    /// request sets no `max_tokens`.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// `o200k_base` or `cl100k_base`, for counting tokens when the upstream reports none.
    #[serde(default)]
    pub encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PriceFile {
    source: String,
    recorded: String,
    models: BTreeMap<String, Price>,
}

const BUILTIN: &str = include_str!("../../data/llm-prices.json");

/// Prices by model name.
#[derive(Debug, Clone)]
pub struct PriceTable {
    models: HashMap<String, Price>,
    pub source: String,
    pub recorded: String,
}

impl PriceTable {
    /// The table in the repository with `overrides` from configuration on top.
    pub fn load(overrides: &BTreeMap<String, Price>) -> Result<Self, String> {
        let file: PriceFile =
            serde_json::from_str(BUILTIN).map_err(|e| format!("the built-in price table is invalid: {e}"))?;
        let mut models: HashMap<String, Price> = file.models.into_iter().collect();
        for (model, price) in overrides {
            models.insert(model.clone(), price.clone());
        }
        for (model, price) in &models {
            let negative = price.input < 0 || price.output < 0 || price.cached_input.is_some_and(|p| p < 0);
            if negative {
                return Err(format!("proxy.prices.{model}: prices must not be negative"));
            }
        }
        Ok(Self {
            models,
            source: file.source,
            recorded: file.recorded,
        })
    }

    /// The price of `model`: its own entry, else the longest configured name it starts
    /// with followed by `-` (dated snapshots such as `gpt-4o-2024-08-06`).
    pub fn price(&self, model: &str) -> Option<&Price> {
        if let Some(price) = self.models.get(model) {
            return Some(price);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.len() > name.len() && model.starts_with(name.as_str()))
            .filter(|(name, _)| model.as_bytes().get(name.len()) == Some(&b'-'))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| price)
    }
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    /// Of `input`, how many were served from the provider's cache.
    pub cached_input: u64,
    pub output: u64,
}

/// The most one call can cost (a million dollars): keeps counters far from overflow
/// whatever an upstream reports.
pub const MAX_CALL_COST: i64 = 1_000_000_000_000;

/// The cost of `tokens` at `price`, in micro-dollars, rounded up (at most
/// [`MAX_CALL_COST`]).
pub fn cost(price: &Price, tokens: Tokens) -> i64 {
    let per_million = |tokens: u64, rate: i64| u128::from(tokens) * u128::try_from(rate.max(0)).unwrap_or(0);
    let cached = tokens.cached_input.min(tokens.input);
    let total = per_million(tokens.input - cached, price.input)
        + per_million(cached, price.cached_input.unwrap_or(price.input))
        + per_million(tokens.output, price.output);
    i64::try_from(total.div_ceil(1_000_000))
        .unwrap_or(MAX_CALL_COST)
        .min(MAX_CALL_COST)
}

/// Micro-dollars as a decimal dollar string (`1234567` → `"1.234567"`), for display.
pub fn dollars(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_loads_and_overrides_win() {
        let table = PriceTable::load(&BTreeMap::new()).unwrap();
        assert_eq!(table.price("gpt-4o-mini").unwrap().input, 150_000);
        assert!(!table.source.is_empty() && table.recorded.len() == 10);
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "gpt-4o-mini".to_owned(),
            Price {
                input: 1,
                cached_input: None,
                output: 2,
                max_output_tokens: None,
                encoding: None,
            },
        );
        overrides.insert("house-model".to_owned(), overrides["gpt-4o-mini"].clone());
        let table = PriceTable::load(&overrides).unwrap();
        assert_eq!(table.price("gpt-4o-mini").unwrap().input, 1);
        assert_eq!(table.price("house-model").unwrap().output, 2);
    }

    #[test]
    fn dated_snapshots_take_the_longest_prefix() {
        let table = PriceTable::load(&BTreeMap::new()).unwrap();
        assert_eq!(table.price("gpt-4o-mini-2024-07-18").unwrap().input, 150_000);
        assert_eq!(table.price("gpt-4o-2024-08-06").unwrap().input, 2_500_000);
        assert!(table.price("gpt-4omni").is_none());
        assert!(table.price("unknown").is_none());
    }

    #[test]
    fn costs_are_exact_integers_rounded_up() {
        let price = Price {
            input: 2_500_000,
            cached_input: Some(1_250_000),
            output: 10_000_000,
            max_output_tokens: None,
            encoding: None,
        };
        // 1000 in (400 cached) + 500 out: 600*2.5 + 400*1.25 + 500*10 = 1500+500+5000 = 7000 micro-dollars.
        let tokens = Tokens {
            input: 1000,
            cached_input: 400,
            output: 500,
        };
        assert_eq!(cost(&price, tokens), 7000);
        // One input token at $0.15/M is 0.15 micro-dollars: rounded up to 1.
        let mini = PriceTable::load(&BTreeMap::new())
            .unwrap()
            .price("gpt-4o-mini")
            .unwrap()
            .clone();
        assert_eq!(
            cost(
                &mini,
                Tokens {
                    input: 1,
                    ..Tokens::default()
                }
            ),
            1
        );
        assert_eq!(cost(&mini, Tokens::default()), 0);
        assert_eq!(dollars(1_234_567), "1.234567");
        assert_eq!(dollars(-5), "-0.000005");
    }
}
