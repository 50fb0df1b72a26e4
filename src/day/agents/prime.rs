//! PRIME: the story card for the day, from the plan's target, the product context, recent
//! gate reports and the scope deferred by the previous day.

use super::PRIME;
use crate::artifacts::{read_yaml, write_yaml};
use crate::day::DayError;
use crate::day::context::{AskError, DayContext, render, untrusted};
use crate::llm::ResponseSchema;
use crate::schemas::{GateReport, StoryCard, answer_schema, parse_story_card};

const SYSTEM: &str = include_str!("prompts/prime.md");
/// How many earlier gate reports PRIME sees.
const RECENT_GATES: u32 = 3;

pub enum PrimeOutcome {
    Card(StoryCard),
    /// The model never produced a valid card: the day holds with this reason.
    Invalid(String),
}

pub async fn run(ctx: &DayContext, attempt: u32) -> Result<PrimeOutcome, DayError> {
    let path = ctx.day_dir.story_card();
    // A re-run or `--retry` keeps the card (the original did too): the work continues.
    if let Some(card) = read_yaml::<StoryCard>(&path) {
        return Ok(PrimeOutcome::Card(card));
    }
    let timer = ctx.start_agent(PRIME, attempt);
    let system = render(
        SYSTEM,
        &[
            ("product", &ctx.settings.product.name),
            ("product_description", &ctx.settings.product.description),
            ("target", &ctx.plan.target),
        ],
    );
    let day = ctx.plan.day;
    let result = ctx
        .ask_validated(
            PRIME,
            system,
            user_message(ctx),
            ResponseSchema {
                name: "story_card".into(),
                schema: answer_schema::story_card(),
            },
            |text| parse_story_card(text, day),
        )
        .await;
    let outcome = match result {
        Ok(card) => {
            write_yaml(&path, &card, &ctx.redactor)?;
            PrimeOutcome::Card(card)
        }
        Err(AskError::Invalid(reason)) => PrimeOutcome::Invalid(reason),
        Err(AskError::Llm(e)) => {
            ctx.finish_agent_with(timer, Some("ERROR"), vec![e.to_string()]);
            return Err(e.into());
        }
    };
    let decision = matches!(outcome, PrimeOutcome::Card(_))
        .then_some("done")
        .unwrap_or("HOLD");
    let detail = match &outcome {
        PrimeOutcome::Card(card) => vec![format!("story: {}", card.story)],
        PrimeOutcome::Invalid(reason) => vec![format!("hold: {reason}")],
    };
    ctx.finish_agent_with(timer, Some(decision), detail);
    Ok(outcome)
}

fn user_message(ctx: &DayContext) -> String {
    let day = ctx.plan.day;
    let mut parts = vec![
        format!("Day: {day}"),
        format!("Today's story target from the plan: {}", ctx.plan.target),
    ];
    if let Some(criterion) = &ctx.plan.gate_criterion {
        parts.push(format!("The plan's gate criterion for today: {criterion}"));
    }
    if let Some(notes) = &ctx.plan.notes {
        parts.push(format!("Plan notes: {notes}"));
    }
    if day > 1
        && let Some(previous) = read_yaml::<GateReport>(&ctx.pace.day(day - 1).gate_report())
        && !previous.deferred.is_empty()
    {
        parts.push(format!(
            "Scope deferred by Day {} (fold it into today's story if it fits the target):\n- {}",
            day - 1,
            previous.deferred.join("\n- ")
        ));
    }
    if let Some(product) = ctx.context_doc("product.md") {
        parts.push(format!("Product context:\n{product}"));
    }
    let recent: Vec<String> = (day.saturating_sub(RECENT_GATES).max(1)..day)
        .filter_map(|d| {
            let text = std::fs::read_to_string(ctx.pace.day(d).gate_report()).ok()?;
            Some(untrusted(&format!("gate report day {d}"), &text))
        })
        .collect();
    if recent.is_empty() {
        parts.push("No earlier gate reports.".into());
    } else {
        parts.push(format!("Recent gate reports:\n{}", recent.join("\n")));
    }
    parts.join("\n\n")
}
