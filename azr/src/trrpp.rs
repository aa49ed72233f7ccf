//! Task-Relative REINFORCE++ (TRR++): token-level advantages without a critic.
//!
//! Reference: `_compute_batch` in `trainer/ppo/azr_ray_trainer.py` calls veRL's
//! `compute_advantage(adv_estimator=reinforce_plus_plus)` once per (task type × role) batch;
//! veRL's `compute_reinforce_plus_plus_outcome_advantage` and `masked_whiten` /
//! `masked_var` (`verl/utils/torch_functional.py`) do the arithmetic:
//!
//! 1. the rollout's scalar reward sits on its last response token, zeros elsewhere (a KL
//!    penalty would be added per token here; its coefficient is 0 in the reference runs, so
//!    none is applied);
//! 2. returns are discounted sums from each token to the end (`γ = 1`: every token's return
//!    is the sequence reward);
//! 3. the returns are whitened over **all response tokens of the group**: token-weighted
//!    mean, variance with Bessel's correction over the token count `N` (`unbiased=True`), and
//!    `(x − mean) / sqrt(var + 1e-8)` (the ε sits inside the square root).
//!
//! Edge cases: a group whose rollouts all got the same reward gets zero advantages (0 / √ε).
//! A group with a single response token has no defined variance (`N − 1 = 0`; veRL divides
//! by zero and yields NaN, older veRL raises); we give it zero advantages. An empty response
//! gets no advantages (the reference always has at least the EOS token).

use std::collections::BTreeMap;

use super::task::Group;

/// The ε of veRL's `masked_whiten`, inside the square root.
pub const WHITEN_EPS: f64 = 1e-8;

/// What TRR++ needs of one rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollout {
    pub group: Group,
    /// The composite reward of the rollout.
    pub reward: f64,
    /// Response tokens (the EOS token included when generation ended on it).
    pub response_len: usize,
}

/// Whitening statistics of one group, for metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupStats {
    pub rollouts: usize,
    pub tokens: usize,
    /// Token-weighted mean of the returns.
    pub mean: f64,
    /// `sqrt(unbiased variance + ε)`, the divisor (0 when the group has fewer than 2 tokens).
    pub scale: f64,
}

/// Advantages per response token of each rollout, in the rollouts' order (the layout of
/// the trainer's `Sample::advantages`), and the statistics of each group.
#[derive(Debug, Clone, PartialEq)]
pub struct Advantages {
    pub per_rollout: Vec<Vec<f32>>,
    pub groups: BTreeMap<Group, GroupStats>,
}

/// Discounted returns of one rollout whose reward sits on its last token.
pub fn returns(reward: f64, len: usize, gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; len];
    let mut running = 0.0;
    for t in (0..len).rev() {
        let r = if t + 1 == len { reward } else { 0.0 };
        running = r + gamma * running;
        out[t] = running;
    }
    out
}

/// TRR++ advantages for a step's rollouts (all groups together; each group is whitened on
/// its own).
pub fn advantages(rollouts: &[Rollout], gamma: f64) -> Advantages {
    let rets: Vec<Vec<f64>> = rollouts
        .iter()
        .map(|r| returns(r.reward, r.response_len, gamma))
        .collect();
    let mut groups = BTreeMap::new();
    let mut per_rollout: Vec<Vec<f32>> = rets.iter().map(|r| vec![0.0; r.len()]).collect();
    let mut members: BTreeMap<Group, Vec<usize>> = BTreeMap::new();
    for (i, r) in rollouts.iter().enumerate() {
        members.entry(r.group).or_default().push(i);
    }
    for (group, idx) in members {
        let values: Vec<f64> = idx.iter().flat_map(|&i| rets[i].iter().copied()).collect();
        let n = values.len();
        let mean = if n == 0 {
            0.0
        } else {
            values.iter().sum::<f64>() / n as f64
        };
        let scale = if n < 2 {
            0.0
        } else {
            let biased = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let unbiased = biased * n as f64 / (n - 1) as f64;
            (unbiased + WHITEN_EPS).sqrt()
        };
        if scale > 0.0 {
            for &i in &idx {
                per_rollout[i] = rets[i]
                    .iter()
                    .map(|v| ((v - mean) / scale) as f32)
                    .collect();
            }
        }
        groups.insert(
            group,
            GroupStats {
                rollouts: idx.len(),
                tokens: n,
                mean,
                scale,
            },
        );
    }
    Advantages {
        per_rollout,
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Role, TaskType};

    const PROPOSE_I: Group = Group::new(TaskType::Abduction, Role::Propose);
    const SOLVE_O: Group = Group::new(TaskType::Deduction, Role::Solve);
    const SOLVE_F: Group = Group::new(TaskType::Induction, Role::Solve);

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((*x as f64 - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn reward_on_the_last_token_gives_every_token_the_reward_at_gamma_one() {
        assert_eq!(returns(0.5, 3, 1.0), [0.5, 0.5, 0.5]);
        assert_eq!(returns(1.0, 3, 0.5), [0.25, 0.5, 1.0]);
        assert!(returns(1.0, 0, 1.0).is_empty());
    }

    #[test]
    fn whitening_is_per_group_with_token_weights_and_bessel_correction() {
        let rollouts = [
            Rollout {
                group: PROPOSE_I,
                reward: 1.0,
                response_len: 2,
            },
            Rollout {
                group: SOLVE_O,
                reward: 0.5,
                response_len: 1,
            },
            Rollout {
                group: PROPOSE_I,
                reward: -1.0,
                response_len: 2,
            },
            Rollout {
                group: SOLVE_O,
                reward: -0.5,
                response_len: 3,
            },
        ];
        let a = advantages(&rollouts, 1.0);
        // Group gen_code_i: tokens [1, 1, -1, -1]; mean 0; unbiased variance 4/3.
        let s = (4.0f64 / 3.0 + 1e-8).sqrt();
        close(&a.per_rollout[0], &[1.0 / s, 1.0 / s]);
        close(&a.per_rollout[2], &[-1.0 / s, -1.0 / s]);
        assert!((1.0 / s - 0.8660254).abs() < 1e-6);
        // Group pred_code_o: tokens [0.5, -0.5, -0.5, -0.5]; mean -0.25; squared deviations
        // sum to 0.75; unbiased variance 0.75 / 3 = 0.25; scale sqrt(0.25 + 1e-8).
        let s = (0.25f64 + 1e-8).sqrt();
        close(&a.per_rollout[1], &[0.75 / s]);
        close(&a.per_rollout[3], &[-0.25 / s, -0.25 / s, -0.25 / s]);
        assert!((0.75 / s - 1.5).abs() < 1e-6);
        let stats = a.groups[&SOLVE_O];
        assert_eq!((stats.rollouts, stats.tokens), (2, 4));
        assert!((stats.mean + 0.25).abs() < 1e-12);
        assert_eq!(a.groups.len(), 2);
    }

    #[test]
    fn a_group_of_one_rollout_gets_zero_advantages() {
        let rollouts = [
            Rollout {
                group: SOLVE_F,
                reward: 0.7,
                response_len: 3,
            },
            Rollout {
                group: PROPOSE_I,
                reward: -1.0,
                response_len: 1,
            },
        ];
        let a = advantages(&rollouts, 1.0);
        // Three tokens all at 0.7: no spread, (0.7 − mean) / sqrt(0 + ε) ≈ 0 (up to the
        // rounding of the mean, as in the reference).
        assert!(a.per_rollout[0].iter().all(|x| x.abs() < 1e-9));
        assert_eq!(a.per_rollout[0].len(), 3);
        assert!((a.groups[&SOLVE_F].scale - 1e-4).abs() < 1e-12);
        // One token: no variance at all (veRL: NaN); zero.
        assert_eq!(a.per_rollout[1], [0.0]);
        assert_eq!(a.groups[&PROPOSE_I].scale, 0.0);
    }

    #[test]
    fn groups_do_not_share_a_baseline() {
        // The same rewards in two groups whiten to the same advantages, whatever the other
        // group holds.
        let alone = advantages(
            &[
                Rollout {
                    group: SOLVE_O,
                    reward: 1.0,
                    response_len: 2,
                },
                Rollout {
                    group: SOLVE_O,
                    reward: -0.5,
                    response_len: 2,
                },
            ],
            1.0,
        );
        let mixed = advantages(
            &[
                Rollout {
                    group: PROPOSE_I,
                    reward: 5.0,
                    response_len: 4,
                },
                Rollout {
                    group: SOLVE_O,
                    reward: 1.0,
                    response_len: 2,
                },
                Rollout {
                    group: PROPOSE_I,
                    reward: 3.0,
                    response_len: 1,
                },
                Rollout {
                    group: SOLVE_O,
                    reward: -0.5,
                    response_len: 2,
                },
            ],
            1.0,
        );
        assert_eq!(alone.per_rollout[0], mixed.per_rollout[1]);
        assert_eq!(alone.per_rollout[1], mixed.per_rollout[3]);
    }

    #[test]
    fn empty_responses_get_no_advantages() {
        let a = advantages(
            &[
                Rollout {
                    group: SOLVE_O,
                    reward: 1.0,
                    response_len: 0,
                },
                Rollout {
                    group: SOLVE_O,
                    reward: 0.0,
                    response_len: 2,
                },
            ],
            1.0,
        );
        assert!(a.per_rollout[0].is_empty());
        assert_eq!(a.per_rollout[1], [0.0, 0.0]);
    }
}
