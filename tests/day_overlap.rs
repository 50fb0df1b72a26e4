//! FORGE's first sandbox session starts while PRIME writes the story card: its container
//! is ready when FORGE's first command comes. Whatever ends the day before FORGE runs (an
//! invalid card, a signal, an LLM outage), that container is gone when pace exits.

use std::sync::Arc;
use std::time::Duration;

use crate::support::fake_llm::{Reply, Turn};
use crate::support::scenario::{Day, Scenario};
use crate::support::scripts;

/// The names of the containers carrying `label` (running or not).
fn containers(label: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn left_behind(day: &Day) -> Vec<String> {
    let run = day.run_json(1);
    containers(&format!("pace.run-id={}", run["run_id"].as_str().unwrap()))
}

/// The greeter's day with PRIME's answer held back by `delay`, replaced by `prime` if given.
fn slow_prime(delay: Duration, prime: Option<&'static str>) -> Arc<dyn Fn(&Turn) -> Reply + Send + Sync> {
    let inner = scripts::greeter_day1();
    Arc::new(move |turn: &Turn| {
        if turn.agent == "PRIME" {
            let reply = prime.map_or_else(|| inner(turn), |text| Reply::Text(text.to_string()));
            return Reply::Delayed(delay, Box::new(reply));
        }
        inner(turn)
    })
}

/// Polls for 3.5 s until a FORGE container of the pace with this `pid` exists (run ids end
/// with the pid; other tests' days run meanwhile); returns the FORGE calls made by then.
/// PRIME's answer is held back longer than that, so a container seen here started beside
/// PRIME, not after it.
async fn forge_container_while(day: &Day, pid: u32) -> Option<usize> {
    let suffix = format!("-{pid}");
    for _ in 0..35 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = std::process::Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                "label=pace.day=1",
                "--format",
                "{{.Names}} {{.Label \"pace.run-id\"}}",
            ])
            .output()
            .unwrap();
        let ours = String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.contains("-forge-") && l.ends_with(&suffix));
        if ours {
            return Some(day.llm.calls_of("FORGE"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn forge_session_starts_while_prime_writes_the_card() {
    require_docker!();
    let day = Scenario::greeter()
        .script(slow_prime(Duration::from_secs(5), None))
        .start()
        .await;
    let mut child = day.spawn(&["--day", "1"]);
    let forge_calls = forge_container_while(&day, child.id()).await;
    assert_eq!(
        forge_calls,
        Some(0),
        "FORGE's container exists before FORGE's first LLM call (it starts beside PRIME)"
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{}", day.log());
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    assert_eq!(left_behind(&day), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_story_card_holds_and_removes_the_unused_session() {
    require_docker!();
    let day = Scenario::greeter()
        .script(slow_prime(Duration::from_millis(800), Some("no card here, just prose")))
        .start()
        .await;
    day.pace(&["--day", "1"]).await.expect_exit(1);
    let run = day.run_json(1);
    assert_eq!(run["decision"], "HOLD", "{run}");
    assert_eq!(day.llm.calls_of("FORGE"), 0);
    assert_eq!(
        left_behind(&day),
        Vec::<String>::new(),
        "the session started for FORGE is removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_prime_writes_leaves_no_session_container() {
    require_docker!();
    let day = Scenario::greeter()
        .script(slow_prime(Duration::from_secs(30), None))
        .start()
        .await;
    let mut child = day.spawn(&["--day", "1"]);
    assert!(
        forge_container_while(&day, child.id()).await.is_some(),
        "the session never started"
    );
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(143));
    assert_eq!(left_behind(&day), Vec::<String>::new());
}
