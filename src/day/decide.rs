//! The decisions of a day (contract "The day"), as pure functions over the three reviews.

use crate::schemas::{Decision, GateReport, ReviewReport};

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Ship; the advisories (agent, text) go to the backlog.
    Ship { advisories: Vec<(String, String)> },
    /// Back to FORGE (or escalate when no attempt is left) with this reason.
    Hold { reason: String },
    /// An ADVISORY gets one retry per day before it is backlogged.
    AdvisoryRetry { reason: String },
}

/// GATE, SENTINEL and CONDUIT → one verdict. A HOLD of any of them wins; an ADVISORY
/// retries once when `advisory_retry_available`, else the advisories are backlogged.
pub fn combine(gate: &GateReport, reviews: &[&ReviewReport], advisory_retry_available: bool) -> Verdict {
    let mut holds = Vec::new();
    if gate.gate_decision == Decision::Hold {
        holds.push(format!(
            "GATE: {}",
            non_empty(&gate.hold_reason, "held without a reason")
        ));
    }
    for r in reviews {
        if r.decision == Decision::Hold {
            let reason = if r.hold_reason.is_empty() {
                r.blockers.join("; ")
            } else {
                r.hold_reason.clone()
            };
            holds.push(format!("{}: {}", r.agent, non_empty(&reason, "held without a reason")));
        }
    }
    if !holds.is_empty() {
        return Verdict::Hold {
            reason: holds.join(" | "),
        };
    }
    let advisories: Vec<(String, String)> = reviews
        .iter()
        .filter(|r| r.decision == Decision::Advisory)
        .flat_map(|r| r.advisories.iter().map(|a| (r.agent.clone(), a.clone())))
        .collect();
    if !advisories.is_empty() && advisory_retry_available {
        let mut by_agent: Vec<String> = Vec::new();
        for r in reviews.iter().filter(|r| r.decision == Decision::Advisory) {
            by_agent.push(format!("{} ADVISORY (one retry): {}", r.agent, r.advisories.join("; ")));
        }
        return Verdict::AdvisoryRetry {
            reason: by_agent.join(" | "),
        };
    }
    Verdict::Ship { advisories }
}

fn non_empty<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.trim().is_empty() { fallback } else { s }
}

pub fn is_clearance_day(day: u32, every: u32) -> bool {
    every > 0 && day.is_multiple_of(every)
}

/// Backlog items an agent evaluated as resolved: a finding whose `check` names the item
/// id with PASS (the original cleared all of an agent's items on any SHIP).
pub fn cleared_ids(review: &ReviewReport, open_ids: &[String]) -> Vec<String> {
    open_ids
        .iter()
        .filter(|id| {
            review
                .findings
                .iter()
                .any(|f| f.check.trim() == id.as_str() && f.result == "PASS")
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas::{Finding, TestRun};

    fn gate(decision: Decision) -> GateReport {
        GateReport {
            day: 1,
            agent: "GATE".into(),
            criteria_results: vec![],
            blockers: vec![],
            deferred: vec![],
            hold_reason: if decision == Decision::Hold {
                "tests fail".into()
            } else {
                String::new()
            },
            gate_decision: decision,
            test_run: TestRun::default(),
        }
    }

    fn review(agent: &str, decision: Decision) -> ReviewReport {
        ReviewReport {
            day: 1,
            agent: agent.into(),
            findings: vec![Finding {
                check: "sentinel-day1-1".into(),
                result: "PASS".into(),
                evidence: "ok".into(),
            }],
            advisories: if decision == Decision::Advisory {
                vec!["pin the image".into()]
            } else {
                vec![]
            },
            blockers: vec![],
            hold_reason: if decision == Decision::Hold {
                "secret in code".into()
            } else {
                String::new()
            },
            decision,
        }
    }

    #[test]
    fn any_hold_wins_and_names_every_agent() {
        let s = review("SENTINEL", Decision::Hold);
        let c = review("CONDUIT", Decision::Advisory);
        match combine(&gate(Decision::Hold), &[&s, &c], true) {
            Verdict::Hold { reason } => {
                assert!(
                    reason.contains("GATE: tests fail") && reason.contains("SENTINEL: secret in code"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn advisory_retries_once_then_ships_with_backlog() {
        let s = review("SENTINEL", Decision::Ship);
        let c = review("CONDUIT", Decision::Advisory);
        assert!(matches!(
            combine(&gate(Decision::Ship), &[&s, &c], true),
            Verdict::AdvisoryRetry { .. }
        ));
        assert_eq!(
            combine(&gate(Decision::Ship), &[&s, &c], false),
            Verdict::Ship {
                advisories: vec![("CONDUIT".into(), "pin the image".into())]
            }
        );
    }

    #[test]
    fn clearance_days_and_cleared_items() {
        assert!(
            is_clearance_day(7, 7) && is_clearance_day(14, 7) && !is_clearance_day(6, 7) && !is_clearance_day(7, 0)
        );
        let r = review("SENTINEL", Decision::Ship);
        let ids = [
            "sentinel-day1-1".to_string(),
            "sentinel-day1-2".into(),
            "sentinel-day1-10".into(),
        ];
        assert_eq!(cleared_ids(&r, &ids), vec!["sentinel-day1-1"]);
        // A PASS for item 10 does not clear item 1.
        let mut other = review("SENTINEL", Decision::Ship);
        other.findings[0].check = "sentinel-day1-10".into();
        assert_eq!(
            cleared_ids(&other, &["sentinel-day1-1".to_string()]),
            Vec::<String>::new()
        );
    }
}
