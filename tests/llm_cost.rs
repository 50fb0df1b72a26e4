//! Honest cost (issue 11, item 4): `llm.prices` overrides the table, a local or unknown
//! model costs $0 with one note per run (so `budget.max_usd` never stops a free local
//! day), a replay reports the cost recorded with the cassette, and run.json carries the
//! cache-write tokens.

use crate::support::scenario::Scenario;

const LOCAL_MODELS: (&str, &str) = (
    "  model: claude-sonnet-4-6\n  analysis_model: claude-haiku-4-5-20251001\n",
    "  model: smollm2-135m-instruct\n  analysis_model: smollm2-135m-instruct\n",
);

#[tokio::test(flavor = "multi_thread")]
async fn a_local_model_behind_the_anthropic_provider_is_free_and_noted_once() {
    require_docker!();
    // A budget a single priced call would exceed.
    let day = Scenario::greeter()
        .edit_config(LOCAL_MODELS.0, LOCAL_MODELS.1)
        .config("budget:\n  max_usd: 0.000001\n")
        .start()
        .await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    let run = day.run_json(1);
    assert_eq!(run["decision"], "SHIP");
    assert_eq!(run["totals"]["cost_usd"].as_f64(), Some(0.0), "{run}");
    assert!(run["totals"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(run["totals"]["cache_write_tokens"].as_u64(), Some(0), "{run}");
    let note = "model `smollm2-135m-instruct` has no price in pace's table";
    assert_eq!(ran.stderr().matches(note).count(), 1, "{}", ran.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_prices_override_the_table_and_the_budget_counts_them() {
    require_docker!();
    // Haiku at a price no one would pay: PRIME's one call spends the budget.
    let day = Scenario::greeter()
        .edit_config(
            "  max_retries: 2\n",
            "  max_retries: 2\n  prices:\n    claude-haiku-4-5-20251001: { input: 100000, output: 100000 }\n",
        )
        .config("budget:\n  max_usd: 1.0\n")
        .start()
        .await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(5);

    assert_eq!(day.llm.calls_of("PRIME"), 1, "{}", ran.text());
    assert_eq!(day.llm.calls_of("FORGE"), 0);
    let run = day.run_json(1);
    assert_eq!(run["decision"], "BUDGET");
    assert!(run["totals"]["cost_usd"].as_f64().unwrap() > 1.0, "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_reports_the_recorded_cost_not_todays_price() {
    require_docker!();
    // Recorded with Sonnet and Haiku at 10× their list price (as if prices had dropped since).
    let recorded = Scenario::greeter()
        .edit_config(
            "  max_retries: 2\n",
            "  max_retries: 2\n  prices:\n    claude-sonnet-4-6: { input: 30, output: 150 }\n    claude-haiku-4-5-20251001: { input: 10, output: 50 }\n",
        )
        .start()
        .await;
    recorded.pace(&["--day", "1"]).await.expect_exit(0);
    let recorded_cost = recorded.run_json(1)["totals"]["cost_usd"].as_f64().unwrap();
    let cassette = recorded.project.path(".pace/day-1/transcript.jsonl");

    let replayed = Scenario::greeter()
        .edit_config(
            "  provider: anthropic\n",
            &format!("  provider: replay\n  cassette: {}\n", cassette.display()),
        )
        .start()
        .await;
    replayed.pace(&["--day", "1"]).await.expect_exit(0);
    let replay_cost = replayed.run_json(1)["totals"]["cost_usd"].as_f64().unwrap();
    assert_eq!(replayed.llm.requests.lock().unwrap().len(), 0, "replay called the fake");
    assert!(recorded_cost > 0.0);
    assert!(
        (replay_cost - recorded_cost).abs() < 1e-9,
        "{replay_cost} != {recorded_cost}"
    );
}
