//! Cost accounting: USD per million tokens by model.
//!
//! Prices (input / output, USD per million tokens):
//!
//! | model | input | output |
//! |---|---|---|
//! | `claude-opus-4*` | 15 | 75 |
//! | `claude-sonnet-4*` | 3 | 15 |
//! | `claude-haiku-4*` | 1 | 5 |
//! | `gpt-4o-mini*` | 0.15 | 0.60 |
//! | `gpt-4o*` | 2.50 | 10 |
//! | anything else ([`FALLBACK`]) | 3 | 15 |
//!
//! Haiku 4.5 is priced at Anthropic's list price for that model ($1/$5); the original
//! pace used $0.80/$4, which is Haiku 3.5's price. Cache reads cost 0.1× the input rate,
//! cache writes (5-minute TTL) 1.25×. A provider prefix (`anthropic/`, `openai/`, …) is
//! ignored. Unknown models served by an OpenAI-compatible server that is not OpenAI
//! (Ollama, vLLM, LM Studio: `llm.base_url` set to another host) cost nothing: see
//! [`Pricing::for_endpoint`].

use super::Usage;
use crate::config::settings::Provider;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// The price of models not in the table (the original's fallback: Sonnet's price).
pub const FALLBACK: Price = Price {
    input: 3.0,
    output: 15.0,
};
/// Cache reads cost this fraction of the input rate.
pub const CACHE_READ_FACTOR: f64 = 0.10;
/// Cache writes cost this multiple of the input rate.
pub const CACHE_WRITE_FACTOR: f64 = 1.25;

/// Prefix of a model name → price. Longer prefixes first where one contains another.
const TABLE: [(&str, Price); 5] = [
    (
        "claude-opus-4",
        Price {
            input: 15.0,
            output: 75.0,
        },
    ),
    (
        "claude-sonnet-4",
        Price {
            input: 3.0,
            output: 15.0,
        },
    ),
    (
        "claude-haiku-4",
        Price {
            input: 1.0,
            output: 5.0,
        },
    ),
    (
        "gpt-4o-mini",
        Price {
            input: 0.15,
            output: 0.60,
        },
    ),
    (
        "gpt-4o",
        Price {
            input: 2.50,
            output: 10.0,
        },
    ),
];

/// How unknown models are priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pricing {
    /// Unknown models cost [`FALLBACK`].
    Standard,
    /// Unknown models are local and cost nothing (known models keep their price, e.g.
    /// `gpt-4o` through a gateway).
    LocalServer,
}

impl Pricing {
    /// `LocalServer` for the `openai` provider pointed at a host other than OpenAI's.
    pub fn for_endpoint(provider: Provider, base_url: Option<&str>) -> Self {
        match (provider, base_url) {
            (Provider::OpenAi, Some(url)) if !url.contains("api.openai.com") => Self::LocalServer,
            _ => Self::Standard,
        }
    }

    pub fn price(self, model: &str) -> Price {
        match (known_price(model), self) {
            (Some(price), _) => price,
            (None, Self::Standard) => FALLBACK,
            (None, Self::LocalServer) => Price {
                input: 0.0,
                output: 0.0,
            },
        }
    }

    pub fn cost_usd(self, model: &str, usage: &Usage) -> f64 {
        let price = self.price(model);
        #[allow(clippy::cast_precision_loss)] // token counts are far below 2^52
        let tokens = |n: u64| n as f64;
        (tokens(usage.input_tokens) * price.input
            + tokens(usage.output_tokens) * price.output
            + tokens(usage.cache_read_tokens) * price.input * CACHE_READ_FACTOR
            + tokens(usage.cache_write_tokens) * price.input * CACHE_WRITE_FACTOR)
            / 1_000_000.0
    }
}

/// The table's price for `model`, if it is listed.
pub fn known_price(model: &str) -> Option<Price> {
    let name = strip_provider_prefix(model).to_ascii_lowercase();
    TABLE
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, price)| *price)
}

/// `anthropic/claude-sonnet-4-6` → `claude-sonnet-4-6`.
pub fn strip_provider_prefix(model: &str) -> &str {
    model.rsplit_once('/').map_or(model, |(_, name)| name)
}

/// Cost of one call with standard pricing.
pub fn cost_usd(model: &str, usage: &Usage) -> f64 {
    Pricing::Standard.cost_usd(model, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn table_prices() {
        let m = usage(1_000_000, 1_000_000, 0, 0);
        assert!(close(cost_usd("claude-opus-4-6", &m), 90.0));
        assert!(close(cost_usd("claude-sonnet-4-6", &m), 18.0));
        assert!(close(cost_usd("anthropic/claude-sonnet-4-5-20250929", &m), 18.0));
        assert!(close(cost_usd("claude-haiku-4-5-20251001", &m), 6.0));
        assert!(close(cost_usd("gpt-4o", &m), 12.5));
        assert!(close(cost_usd("openai/gpt-4o-mini", &m), 0.75));
        assert!(close(cost_usd("mystery-model", &m), 18.0));
    }

    #[test]
    fn cache_rates() {
        // 1M cache reads at 0.1 × $3, 1M cache writes at 1.25 × $3.
        assert!(close(cost_usd("claude-sonnet-4-6", &usage(0, 0, 1_000_000, 0)), 0.3));
        assert!(close(cost_usd("claude-sonnet-4-6", &usage(0, 0, 0, 1_000_000)), 3.75));
        assert!(close(cost_usd("claude-sonnet-4-6", &usage(1000, 200, 0, 0)), 0.006));
    }

    #[test]
    fn local_servers_are_free_for_unknown_models_only() {
        let local = Pricing::for_endpoint(Provider::OpenAi, Some("http://localhost:11434/v1"));
        assert_eq!(local, Pricing::LocalServer);
        let m = usage(1_000_000, 1_000_000, 0, 0);
        assert!(close(local.cost_usd("ollama/qwen2.5-coder:32b", &m), 0.0));
        assert!(close(local.cost_usd("gpt-4o", &m), 12.5));
        assert_eq!(Pricing::for_endpoint(Provider::OpenAi, None), Pricing::Standard);
        assert_eq!(
            Pricing::for_endpoint(Provider::OpenAi, Some("https://api.openai.com/v1")),
            Pricing::Standard
        );
        assert_eq!(
            Pricing::for_endpoint(Provider::Anthropic, Some("http://proxy:8080")),
            Pricing::Standard
        );
    }
}
