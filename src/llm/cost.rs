//! Cost accounting: USD per million tokens by model, for the budget and the reports.
//!
//! Prices (USD per million tokens; checked 2026-12-02 against Anthropic's pricing page and
//! OpenAI's API pricing as mirrored by third-party price trackers — OpenAI's own page was
//! not reachable from here; re-check both when a model is added):
//!
//! | model | input | output | cache read | cache write |
//! |---|---|---|---|---|
//! | `claude-opus-4-5`, `claude-opus-4-6` | 5 | 25 | 0.50 | 6.25 |
//! | `claude-opus-4`, `claude-opus-4-1` | 15 | 75 | 1.50 | 18.75 |
//! | `claude-sonnet-4*`, `claude-3-7-sonnet` | 3 | 15 | 0.30 | 3.75 |
//! | `claude-haiku-4-5` | 1 | 5 | 0.10 | 1.25 |
//! | `claude-3-5-haiku` | 0.80 | 4 | 0.08 | 1 |
//! | `claude-3-haiku` | 0.25 | 1.25 | 0.03 | 0.30 |
//! | `gpt-5` | 1.25 | 10 | 0.125 | — |
//! | `gpt-5-mini` | 0.25 | 2 | 0.025 | — |
//! | `gpt-5-nano` | 0.05 | 0.40 | 0.005 | — |
//! | `gpt-4.1` | 2 | 8 | 0.50 | — |
//! | `gpt-4.1-mini` | 0.40 | 1.60 | 0.10 | — |
//! | `gpt-4.1-nano` | 0.10 | 0.40 | 0.025 | — |
//! | `gpt-4o` | 2.50 | 10 | 1.25 | — |
//! | `gpt-4o-mini` | 0.15 | 0.60 | 0.075 | — |
//! | `o3` | 2 | 8 | 0.50 | — |
//! | `o3-mini` | 1.10 | 4.40 | 0.55 | — |
//! | `o4-mini` | 1.10 | 4.40 | 0.275 | — |
//!
//! Anthropic's cache writes are the 5-minute ones (pace's breakpoints are ephemeral);
//! OpenAI reports no cache writes. A name matches a row when the row's name appears in it
//! at a boundary, so `anthropic/claude-sonnet-4-6`, Bedrock's
//! `us.anthropic.claude-sonnet-4-5-20250929-v1:0` and Vertex's `claude-sonnet-4-5@20250929`
//! all match `claude-sonnet-4`, while `gpt-5.4` matches nothing.
//!
//! `llm.prices` overrides the table per model. Any other model — a local one (llama.cpp,
//! Ollama, vLLM), whichever provider serves it, or one newer than this table — costs $0,
//! and the run says so once per model ([`Pricing::unpriced_note`]): `budget.max_usd` never
//! stops a free local day, and an unknown paid model is named instead of guessed at.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::Usage;
pub use crate::config::settings::ModelPrice as Price;

/// Anthropic's rates: cache reads 0.1× input, 5-minute cache writes 1.25× input.
const fn anthropic(input: f64, output: f64) -> Price {
    Price {
        input,
        output,
        cache_read: input * 0.1,
        cache_write: input * 1.25,
    }
}

/// OpenAI's rates: a cached-input price, no cache writes.
const fn openai(input: f64, cached: f64, output: f64) -> Price {
    Price {
        input,
        output,
        cache_read: cached,
        cache_write: input,
    }
}

/// Model name → price. The first row whose name matches wins: longer names first where
/// one contains another.
const TABLE: [(&str, Price); 21] = [
    ("claude-opus-4-5", anthropic(5.0, 25.0)),
    ("claude-opus-4-6", anthropic(5.0, 25.0)),
    ("claude-opus-4", anthropic(15.0, 75.0)),
    ("claude-3-opus", anthropic(15.0, 75.0)),
    ("claude-sonnet-4", anthropic(3.0, 15.0)),
    ("claude-3-7-sonnet", anthropic(3.0, 15.0)),
    ("claude-3-5-sonnet", anthropic(3.0, 15.0)),
    ("claude-haiku-4", anthropic(1.0, 5.0)),
    ("claude-3-5-haiku", anthropic(0.80, 4.0)),
    ("claude-3-haiku", anthropic(0.25, 1.25)),
    ("gpt-5-mini", openai(0.25, 0.025, 2.0)),
    ("gpt-5-nano", openai(0.05, 0.005, 0.40)),
    ("gpt-5", openai(1.25, 0.125, 10.0)),
    ("gpt-4.1-mini", openai(0.40, 0.10, 1.60)),
    ("gpt-4.1-nano", openai(0.10, 0.025, 0.40)),
    ("gpt-4.1", openai(2.0, 0.50, 8.0)),
    ("gpt-4o-mini", openai(0.15, 0.075, 0.60)),
    ("gpt-4o", openai(2.50, 1.25, 10.0)),
    ("o4-mini", openai(1.10, 0.275, 4.40)),
    ("o3-mini", openai(1.10, 0.55, 4.40)),
    ("o3", openai(2.0, 0.50, 8.0)),
];

/// The table plus `llm.prices`, and the models already noted as unpriced.
#[derive(Debug, Default)]
pub struct Pricing {
    overrides: Vec<(String, Price)>,
    noted: Mutex<BTreeSet<String>>,
}

impl Pricing {
    /// The table with `overrides` (`llm.prices`) taking precedence.
    pub fn new(overrides: Vec<(String, Price)>) -> Self {
        Self {
            overrides,
            noted: Mutex::new(BTreeSet::new()),
        }
    }

    /// The price of `model`: `llm.prices` (the name as written, or without a provider
    /// prefix), else the table; `None` when neither knows it.
    pub fn price(&self, model: &str) -> Option<Price> {
        let bare = strip_provider_prefix(model);
        self.overrides
            .iter()
            .find(|(name, _)| name == model || name == bare)
            .map(|(_, price)| *price)
            .or_else(|| known_price(model))
    }

    /// What `usage` cost with `model`; $0 when the model has no price.
    pub fn cost_usd(&self, model: &str, usage: &Usage) -> f64 {
        self.price(model).map_or(0.0, |price| cost_at(price, usage))
    }

    /// The one-line note for a model without a price, the first time it is seen (then
    /// `None`): its calls count as $0.
    pub fn unpriced_note(&self, model: &str) -> Option<String> {
        if self.price(model).is_some() {
            return None;
        }
        let mut noted = self.noted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        noted.insert(model.to_string()).then(|| {
            format!(
                "model `{model}` has no price in pace's table (a local or unknown model): its calls count as $0; set `llm.prices.{model}` to count them"
            )
        })
    }
}

/// `usage` at `price`.
pub fn cost_at(price: Price, usage: &Usage) -> f64 {
    let tokens = |n: u64| n as f64;
    (tokens(usage.input_tokens) * price.input
        + tokens(usage.output_tokens) * price.output
        + tokens(usage.cache_read_tokens) * price.cache_read
        + tokens(usage.cache_write_tokens) * price.cache_write)
        / 1_000_000.0
}

/// The table's price for `model`, if a row matches it.
pub fn known_price(model: &str) -> Option<Price> {
    let name = strip_provider_prefix(model).to_ascii_lowercase();
    TABLE
        .iter()
        .find(|(row, _)| matches_row(&name, row))
        .map(|(_, price)| *price)
}

/// `row` appears in `name` at the start or after `.` (Bedrock's `us.anthropic.…`), and is
/// followed by the end, `-` (a version or date), `@` (Vertex) or `:` (a tag).
fn matches_row(name: &str, row: &str) -> bool {
    name.match_indices(row).any(|(at, _)| {
        let before_ok = at == 0 || name[..at].ends_with('.');
        let after = name[at + row.len()..].chars().next();
        before_ok && matches!(after, None | Some('-' | '@' | ':'))
    })
}

/// `anthropic/claude-sonnet-4-6` → `claude-sonnet-4-6`.
pub fn strip_provider_prefix(model: &str) -> &str {
    model.rsplit_once('/').map_or(model, |(_, name)| name)
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
        let p = Pricing::default();
        let m = usage(1_000_000, 1_000_000, 0, 0);
        // Opus 4.5 and 4.6 cost a third of Opus 4 and 4.1.
        assert!(close(p.cost_usd("claude-opus-4-6", &m), 30.0));
        assert!(close(p.cost_usd("claude-opus-4-5-20251101", &m), 30.0));
        assert!(close(p.cost_usd("claude-opus-4-1-20250805", &m), 90.0));
        assert!(close(p.cost_usd("claude-opus-4-20250514", &m), 90.0));
        assert!(close(p.cost_usd("claude-sonnet-4-6", &m), 18.0));
        assert!(close(p.cost_usd("anthropic/claude-sonnet-4-5-20250929", &m), 18.0));
        assert!(close(
            p.cost_usd("us.anthropic.claude-sonnet-4-5-20250929-v1:0", &m),
            18.0
        ));
        assert!(close(p.cost_usd("claude-sonnet-4-5@20250929", &m), 18.0));
        assert!(close(p.cost_usd("claude-haiku-4-5-20251001", &m), 6.0));
        assert!(close(p.cost_usd("claude-3-5-haiku-20241022", &m), 4.8));
        assert!(close(p.cost_usd("gpt-4o", &m), 12.5));
        assert!(close(p.cost_usd("openai/gpt-4o-mini", &m), 0.75));
        assert!(close(p.cost_usd("gpt-4.1-mini", &m), 2.0));
        assert!(close(p.cost_usd("gpt-5-2025-08-07", &m), 11.25));
        assert!(close(p.cost_usd("o3-mini", &m), 5.5), "o3-mini is not o3");
        assert!(close(p.cost_usd("o3", &m), 10.0));
        // Unknown and local models cost nothing (no Sonnet fallback).
        for model in [
            "mystery-model",
            "gpt-5.4",
            "qwen2.5-coder:32b",
            "SmolLM2-135M-Instruct",
            "my-claude-sonnet-4",
        ] {
            assert!(p.price(model).is_none(), "{model}");
            assert!(close(p.cost_usd(model, &m), 0.0), "{model}");
        }
    }

    #[test]
    fn cache_rates() {
        let p = Pricing::default();
        // 1M cache reads at 0.1 × $3, 1M 5-minute cache writes at 1.25 × $3.
        assert!(close(p.cost_usd("claude-sonnet-4-6", &usage(0, 0, 1_000_000, 0)), 0.3));
        assert!(close(p.cost_usd("claude-sonnet-4-6", &usage(0, 0, 0, 1_000_000)), 3.75));
        assert!(close(p.cost_usd("claude-sonnet-4-6", &usage(1000, 200, 0, 0)), 0.006));
        // OpenAI's cached input has its own rate (half of gpt-4o's input).
        assert!(close(p.cost_usd("gpt-4o", &usage(0, 0, 1_000_000, 0)), 1.25));
    }

    #[test]
    fn overrides_win_and_unpriced_models_are_noted_once() {
        let local = Price {
            input: 0.0,
            output: 0.0,
            cache_read: 0.0,
            cache_write: 0.0,
        };
        let mine = Price {
            input: 1.0,
            output: 2.0,
            cache_read: 0.5,
            cache_write: 1.5,
        };
        let p = Pricing::new(vec![
            ("claude-sonnet-4-6".into(), local),
            ("mistral-large".into(), mine),
        ]);
        let m = usage(1_000_000, 1_000_000, 1_000_000, 1_000_000);
        assert!(close(p.cost_usd("claude-sonnet-4-6", &m), 0.0));
        assert!(close(p.cost_usd("openrouter/mistral-large", &m), 5.0));
        assert!(p.unpriced_note("mistral-large").is_none());
        let note = p.unpriced_note("qwen2.5").unwrap();
        assert!(
            note.contains("`qwen2.5`") && note.contains("$0") && note.contains("llm.prices.qwen2.5"),
            "{note}"
        );
        assert!(p.unpriced_note("qwen2.5").is_none());
    }
}
