//! Rewards of both roles and the composite format scheme.
//!
//! Reference: `CodeIORewardManager.__call__` and `_get_problem_generator_rewards_and_valid_programs`
//! in `rewards/reward_managers.py`.
//!
//! Proposer (one rollout that proposed a task):
//! - invalid (did not parse, or the sandbox refused it) → its solve rate counts as 1 and its
//!   format score as 0, so its reward is **−1**;
//! - valid but not in the `<think>`/`<answer>` layout → **−1**;
//! - valid and well formatted → learnability `r = 1 − s` if `0 < s` (else 0, so `s = 1` also
//!   gives 0), where `s` is the solver's mean accuracy over `n_samples` answers; enabled
//!   intrinsic rewards are combined with `r` (default: added); if `r = 0` the reward is
//!   **−0.5** (and intrinsic rewards are not paid).
//!
//! Solver (one rollout that answered a task):
//! - bad format (layout, or no code block for induction) → **−1**;
//! - well formatted, accuracy `a > 0` → `a` (1 for deduction/abduction and binary induction);
//! - well formatted and wrong → **−0.5**.

use super::config::{IntrinsicCombine, Learnability, RewardConfig, ValidProgramFilter};
use super::intrinsic::{self, TypeCounter};
use super::task::TaskType;

/// Reward of a badly formatted or invalid rollout.
pub const FORMAT_PENALTY: f64 = -1.0;
/// Reward of a well-formed rollout that earned nothing.
pub const WRONG_PENALTY: f64 = -0.5;

/// Mean accuracy over the solver samples that got a verdict (`None`: no verdict, left out as
/// the reference leaves out `None`); 0 when none did.
pub fn solve_rate(samples: &[Option<f64>]) -> f64 {
    let judged: Vec<f64> = samples.iter().flatten().copied().collect();
    if judged.is_empty() {
        0.0
    } else {
        judged.iter().sum::<f64>() / judged.len() as f64
    }
}

/// The proposer's base reward from the solve rate `s`.
pub fn learnability(s: f64, conversion: Learnability) -> f64 {
    match conversion {
        Learnability::OneMinus => {
            if s > 0.0 {
                1.0 - s
            } else {
                0.0
            }
        }
        Learnability::Inverse => 1.0 - s,
    }
}

/// Joins the base reward with the intrinsic components (none: the base reward).
pub fn combine(base: f64, components: &[f64], method: IntrinsicCombine) -> f64 {
    if components.is_empty() {
        return base;
    }
    let sum: f64 = components.iter().sum();
    let product: f64 = components.iter().product();
    match method {
        IntrinsicCombine::Sum => base + sum,
        IntrinsicCombine::Multiply => base * product,
        IntrinsicCombine::SumMultiply => base + product,
        IntrinsicCombine::MultiplySum => base * sum,
    }
}

/// The composite reward of a proposer rollout. `format_ok` is the layout check (pass `true`
/// when `format_reward` is off); `valid` says whether the proposal parsed and the sandbox
/// accepted it; `base` is its learnability reward.
pub fn propose_reward(
    format_ok: bool,
    valid: bool,
    base: f64,
    intrinsic: &[f64],
    method: IntrinsicCombine,
) -> f64 {
    if !(format_ok && valid) {
        FORMAT_PENALTY
    } else if base > 0.0 {
        combine(base, intrinsic, method)
    } else {
        WRONG_PENALTY
    }
}

/// The composite reward of a solver rollout with accuracy `accuracy` (see
/// [`super::check::answer_accuracy`]); `format_ok` includes, for induction, that a code block
/// was found.
pub fn solve_reward(format_ok: bool, accuracy: f64) -> f64 {
    if !format_ok {
        FORMAT_PENALTY
    } else if accuracy > 0.0 {
        accuracy
    } else {
        WRONG_PENALTY
    }
}

/// Whether a valid proposal with solve rate `s` joins its buffer.
pub fn joins_buffer(filter: ValidProgramFilter, s: f64) -> bool {
    match filter {
        ValidProgramFilter::All => true,
        ValidProgramFilter::NonOne => s < 1.0,
        ValidProgramFilter::NonExtremes => s > 0.0 && s < 1.0,
    }
}

/// The enabled intrinsic rewards of a valid deduction/abduction proposal, each
/// `min(coef · x, max)`, in the reference's order (complexity, edit distance, Halstead,
/// answer diversity). `answer` is the proposal's input (abduction) or output (deduction);
/// `counter` the matching type counter. Induction proposals get none: the reference's
/// separate `f_input`/`f_output` diversity switches are not offered.
pub fn intrinsic_rewards(
    config: &RewardConfig,
    task: TaskType,
    program: &str,
    references: &[&str],
    answer: &str,
    counter: &TypeCounter,
) -> Vec<f64> {
    if task == TaskType::Induction {
        return vec![];
    }
    let mut out = Vec::new();
    let c = &config.complexity;
    if c.enabled {
        out.push((c.coef * intrinsic::complexity_reward(program)).min(c.max));
    }
    let c = &config.mean_edit_distance;
    if c.enabled {
        out.push((c.coef * intrinsic::mean_edit_distance(program, references)).min(c.max));
    }
    let c = &config.halstead;
    if c.enabled {
        out.push((c.coef * intrinsic::halstead_reward(program)).min(c.max));
    }
    let c = &config.answer_diversity;
    if c.enabled {
        out.push((c.coef * counter.surprise(answer, c.hierarchical)).min(c.max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DiversityReward, IntrinsicReward};

    #[test]
    fn learnability_at_zero_one_and_a_quarter() {
        assert_eq!(learnability(0.0, Learnability::OneMinus), 0.0);
        assert_eq!(learnability(1.0, Learnability::OneMinus), 0.0);
        assert_eq!(learnability(0.25, Learnability::OneMinus), 0.75);
        assert_eq!(learnability(0.0, Learnability::Inverse), 1.0);
    }

    #[test]
    fn solve_rate_is_the_mean_over_judged_samples() {
        assert_eq!(
            solve_rate(&[Some(1.0), Some(0.0), Some(0.0), Some(0.0)]),
            0.25
        );
        // Two of eight samples without a verdict: mean over the other six.
        let mut s = vec![
            Some(1.0),
            Some(1.0),
            Some(1.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
        ];
        s.extend([None, None]);
        assert_eq!(solve_rate(&s), 0.5);
        assert_eq!(solve_rate(&[None]), 0.0);
        assert_eq!(solve_rate(&[]), 0.0);
    }

    #[test]
    fn composite_scheme_for_proposers() {
        let sum = IntrinsicCombine::Sum;
        // Bad layout, or invalid proposal: -1 whatever else.
        assert_eq!(propose_reward(false, true, 0.75, &[], sum), -1.0);
        assert_eq!(propose_reward(true, false, 0.0, &[], sum), -1.0);
        assert_eq!(propose_reward(false, false, 0.0, &[], sum), -1.0);
        // Valid, well formatted, solve rate 0 or 1: learnability 0 → -0.5.
        let r0 = learnability(0.0, Learnability::OneMinus);
        let r1 = learnability(1.0, Learnability::OneMinus);
        assert_eq!(propose_reward(true, true, r0, &[0.3], sum), -0.5);
        assert_eq!(propose_reward(true, true, r1, &[], sum), -0.5);
        // Valid, s = 0.25: 0.75, plus intrinsic components.
        assert_eq!(propose_reward(true, true, 0.75, &[], sum), 0.75);
        assert_eq!(propose_reward(true, true, 0.75, &[0.1, 0.15], sum), 1.0);
        assert_eq!(
            propose_reward(true, true, 0.5, &[0.5, 0.5], IntrinsicCombine::Multiply),
            0.125
        );
        assert_eq!(
            combine(0.5, &[0.5, 0.5], IntrinsicCombine::SumMultiply),
            0.75
        );
        assert_eq!(
            combine(0.5, &[0.5, 0.5], IntrinsicCombine::MultiplySum),
            0.5
        );
    }

    #[test]
    fn composite_scheme_for_solvers() {
        assert_eq!(solve_reward(false, 1.0), -1.0);
        assert_eq!(solve_reward(true, 1.0), 1.0);
        assert_eq!(solve_reward(true, 0.0), -0.5);
        // Induction with the `accuracy` reward: the fraction itself.
        assert_eq!(solve_reward(true, 0.4), 0.4);
    }

    #[test]
    fn valid_program_filters() {
        assert!(joins_buffer(ValidProgramFilter::All, 1.0));
        assert!(!joins_buffer(ValidProgramFilter::NonOne, 1.0));
        assert!(joins_buffer(ValidProgramFilter::NonOne, 0.0));
        assert!(!joins_buffer(ValidProgramFilter::NonExtremes, 0.0));
        assert!(joins_buffer(ValidProgramFilter::NonExtremes, 0.5));
    }

    #[test]
    fn intrinsic_rewards_are_off_by_default_and_capped_when_on() {
        let program = "def f(xs):\n    if xs:\n        return xs[0]\n    return None";
        let counter = TypeCounter::default();
        let off = RewardConfig::default();
        assert!(
            intrinsic_rewards(&off, TaskType::Deduction, program, &[], "1", &counter).is_empty()
        );
        let on = RewardConfig {
            complexity: IntrinsicReward {
                enabled: true,
                coef: 1.0,
                max: 0.05,
            },
            answer_diversity: DiversityReward {
                enabled: true,
                coef: 0.5,
                max: 1.0,
                hierarchical: false,
            },
            ..RewardConfig::default()
        };
        let r = intrinsic_rewards(&on, TaskType::Abduction, program, &[], "[1]", &counter);
        // Complexity 1/15 capped at 0.05; an unseen answer is fully surprising: 0.5 · 1.
        assert_eq!(r, [0.05, 0.5]);
        assert!(
            intrinsic_rewards(&on, TaskType::Induction, program, &[], "1", &counter).is_empty()
        );
    }
}
