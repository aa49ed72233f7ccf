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

/// The ε added to a task group's standard deviation before dividing (as GRPO
/// implementations do), so a near-tie does not blow up.
pub const TASK_GROUP_EPS: f64 = 1e-6;

/// Advantages that contrast answers *to the same task* (GRPO/RLOO style), where the
/// reference's TRR++ contrasts every rollout of a (task type × role) batch with every other.
///
/// `tasks[i]` names the task rollout `i` answered (any key; `None` for rollouts that answer
/// no shared task, such as proposals). Rollouts that share a group and a task key are
/// normalised together at the sequence level, `(r − mean) / (std + ε)` with the unbiased
/// standard deviation, and the value is every response token's advantage; a task answered
/// once, or with one reward throughout, gives zeros (nothing to contrast). Rollouts without
/// a key get TRR++ within their group, as [`advantages`] gives them.
///
/// Why: a small model answers most tasks wrong; in a TRR++ batch of different tasks the
/// only reward variance left is then format, while within one task's answers the variance
/// is right against wrong on the same question. The group statistics report the rollouts'
/// mean reward and, as `scale`, the root of the mean within-task variance (0 when no task's
/// answers differ).
pub fn task_group_advantages(
    rollouts: &[Rollout],
    tasks: &[Option<u64>],
    gamma: f64,
) -> Advantages {
    assert_eq!(rollouts.len(), tasks.len(), "one task key per rollout");
    let keyless: Vec<usize> = (0..rollouts.len())
        .filter(|&i| tasks[i].is_none())
        .collect();
    let trrpp = advantages(
        &keyless.iter().map(|&i| rollouts[i]).collect::<Vec<_>>(),
        gamma,
    );
    let mut per_rollout: Vec<Vec<f32>> =
        rollouts.iter().map(|r| vec![0.0; r.response_len]).collect();
    for (k, &i) in keyless.iter().enumerate() {
        per_rollout[i] = trrpp.per_rollout[k].clone();
    }
    let mut groups = trrpp.groups;
    let mut members: BTreeMap<(Group, u64), Vec<usize>> = BTreeMap::new();
    for (i, r) in rollouts.iter().enumerate() {
        if let Some(task) = tasks[i] {
            members.entry((r.group, task)).or_default().push(i);
        }
    }
    // Per group: rollouts, tokens, reward sum, within-task squared deviations and their count.
    let mut tally: BTreeMap<Group, (usize, usize, f64, f64, usize)> = BTreeMap::new();
    for ((group, _), idx) in members {
        let rewards: Vec<f64> = idx.iter().map(|&i| rollouts[i].reward).collect();
        let n = rewards.len();
        let mean = rewards.iter().sum::<f64>() / n as f64;
        let squares: f64 = rewards.iter().map(|r| (r - mean).powi(2)).sum();
        let t = tally.entry(group).or_default();
        t.0 += n;
        t.1 += idx.iter().map(|&i| rollouts[i].response_len).sum::<usize>();
        t.2 += rewards.iter().sum::<f64>();
        if n >= 2 {
            t.3 += squares;
            t.4 += n - 1;
            let std = (squares / (n - 1) as f64).sqrt();
            if std > 0.0 {
                for &i in &idx {
                    let a = (rollouts[i].reward - mean) / (std + TASK_GROUP_EPS);
                    per_rollout[i] = vec![a as f32; rollouts[i].response_len];
                }
            }
        }
    }
    for (group, (n, tokens, sum, squares, dof)) in tally {
        groups.insert(
            group,
            GroupStats {
                rollouts: n,
                tokens,
                mean: sum / n.max(1) as f64,
                scale: if dof == 0 {
                    0.0
                } else {
                    (squares / dof as f64).sqrt()
                },
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

    fn solve(reward: f64, len: usize) -> Rollout {
        Rollout {
            group: SOLVE_O,
            reward,
            response_len: len,
        }
    }

    #[test]
    fn answers_to_one_task_are_contrasted_with_each_other_not_with_other_tasks() {
        // Task 1: one right of three; task 2: all wrong; task 3: answered once.
        let rollouts = [
            solve(1.0, 2),
            solve(0.0, 1),
            solve(0.0, 3),
            solve(0.0, 2),
            solve(0.0, 2),
            solve(1.0, 1),
        ];
        let tasks = [Some(1), Some(1), Some(1), Some(2), Some(2), Some(3)];
        let adv = task_group_advantages(&rollouts, &tasks, 1.0);
        // mean 1/3, unbiased std sqrt(1/3).
        let std = (1.0f64 / 3.0).sqrt() + TASK_GROUP_EPS;
        close(&adv.per_rollout[0], &[(2.0 / 3.0) / std; 2]);
        close(&adv.per_rollout[1], &[(-1.0 / 3.0) / std]);
        close(&adv.per_rollout[2], &[(-1.0 / 3.0) / std; 3]);
        close(&adv.per_rollout[3], &[0.0, 0.0]);
        close(&adv.per_rollout[5], &[0.0]);
        let stats = adv.groups[&SOLVE_O];
        assert_eq!((stats.rollouts, stats.tokens), (6, 11));
        assert!((stats.mean - 2.0 / 6.0).abs() < 1e-12);
        // Within-task squares 2/3 over 2 + 1 degrees of freedom.
        assert!((stats.scale - (2.0f64 / 3.0 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn rollouts_without_a_task_keep_their_trrpp_advantages() {
        let proposals = [
            Rollout {
                group: PROPOSE_I,
                reward: 1.0,
                response_len: 2,
            },
            Rollout {
                group: PROPOSE_I,
                reward: 0.0,
                response_len: 1,
            },
        ];
        let mut all = proposals.to_vec();
        all.extend([solve(1.0, 1), solve(0.0, 1)]);
        let mixed = task_group_advantages(&all, &[None, None, Some(7), Some(7)], 1.0);
        let alone = advantages(&proposals, 1.0);
        assert_eq!(mixed.per_rollout[..2], alone.per_rollout[..]);
        assert_eq!(mixed.groups[&PROPOSE_I], alone.groups[&PROPOSE_I]);
        assert!(mixed.per_rollout[2][0] > 0.0 && mixed.per_rollout[3][0] < 0.0);
    }

    #[test]
    fn one_task_key_in_two_groups_is_two_task_groups() {
        let mut other = solve(0.0, 1);
        other.group = SOLVE_F;
        let rollouts = [solve(1.0, 1), other];
        let adv = task_group_advantages(&rollouts, &[Some(1), Some(1)], 1.0);
        assert_eq!(adv.per_rollout, vec![vec![0.0], vec![0.0]]);
    }
}
