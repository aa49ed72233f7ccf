//! A step's update: advantages per group (TRR++, or per task for solver answers), old
//! log-probs where the update needs them, PPO-clip steps over mini-batches.

use super::*;

impl<J: Judge> SelfPlay<J> {
    /// The f32 policy's log-probs of each rollout's response (teacher-forced, no gradient),
    /// `micro_batch` rollouts per pass.
    pub(super) fn f32_logprobs(&self, rollouts: &[&Rollout]) -> Result<Vec<Vec<f32>>> {
        let temperature = self.config.rollout.temperature;
        let mut out = Vec::with_capacity(rollouts.len());
        for chunk in rollouts.chunks(self.config.optim.micro_batch.max(1)) {
            let prompts: Vec<Vec<i64>> = chunk.iter().map(|r| r.prompt.clone()).collect();
            let responses: Vec<Vec<i64>> = chunk.iter().map(|r| r.response.clone()).collect();
            let (lp, _) =
                tch::no_grad(|| response_logprobs(&self.model, &prompts, &responses, temperature))?;
            let lp = lp.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float);
            for (row, r) in chunk.iter().enumerate() {
                let all = Vec::<f32>::try_from(lp.get(row as i64))?;
                out.push(all[..r.response.len()].to_vec());
            }
        }
        Ok(out)
    }

    /// TRR++ advantages, old log-probs from the current policy, then PPO-clip mini-batches.
    pub(super) fn update(&mut self, step: u64, rollouts: &[Rollout]) -> Result<Update> {
        let trainable: Vec<&Rollout> = rollouts.iter().filter(|r| !r.response.is_empty()).collect();
        let inputs: Vec<trrpp::Rollout> = trainable
            .iter()
            .map(|r| trrpp::Rollout {
                group: r.group,
                reward: r.reward,
                response_len: r.response.len(),
            })
            .collect();
        let gamma = self.config.optim.gamma;
        let adv = match self.config.optim.advantage {
            AdvantageEstimator::Trrpp => trrpp::advantages(&inputs, gamma),
            AdvantageEstimator::TaskGroup => {
                let tasks: Vec<Option<u64>> = trainable.iter().map(|r| r.task).collect();
                trrpp::task_group_advantages(&inputs, &tasks, gamma)
            }
        };
        if self.config.optim.lr == 0.0 {
            // A control run (lr 0): the update would leave every weight as it is (AdamW's
            // step and weight decay both scale with lr), so its forward and backward passes
            // are skipped; the advantages and group statistics are still logged.
            return Ok(Update {
                groups: adv.groups,
                stats: metrics::UpdateStats {
                    samples: trainable.len(),
                    ..Default::default()
                },
            });
        }
        let o = &self.config.optim;
        let (mini_batch, epochs, tis_cap) = (o.mini_batch.max(1), o.ppo_epochs, o.tis_cap);
        let mut rng = step_rng(self.config.seed, step, 3);
        let mut order: Vec<usize> = (0..trainable.len()).collect();
        order.shuffle(&mut rng);
        // The first mini-batch of a one-epoch update is taken with the weights that sampled
        // it (in f32): its old log-probs are the step's own, so they are not recomputed.
        // Every later mini-batch needs them from before the first optimiser step, and
        // truncated importance sampling needs them before any step, to weigh advantages.
        let mut on_policy = vec![false; trainable.len()];
        if epochs == 1 && tis_cap == 0.0 {
            for &i in order.iter().take(mini_batch) {
                on_policy[i] = true;
            }
        }
        // Old log-probs matter only where an advantage is non-zero: elsewhere the PPO term is
        // zero whatever they are, and the trainer skips those samples (see `Trainer::step`).
        let mut old: Vec<Option<Vec<f32>>> = trainable
            .iter()
            .zip(&on_policy)
            .map(|(r, &own)| (!own).then(|| vec![0.0; r.response.len()]))
            .collect();
        let learning: Vec<usize> = (0..trainable.len())
            .filter(|&i| has_gradient(&adv.per_rollout[i]))
            .collect();
        let recompute: Vec<usize> = learning
            .iter()
            .copied()
            .filter(|&i| !on_policy[i])
            .collect();
        let recomputed: Vec<&Rollout> = recompute.iter().map(|&i| trainable[i]).collect();
        for (&i, lps) in recompute.iter().zip(self.f32_logprobs(&recomputed)?) {
            old[i] = Some(lps);
        }
        // How far the sampling weights (the int8 rollout copy) are from the f32 policy the
        // update uses, on the tokens that learn (for on-policy samples, measured by their
        // mini-batch's forward pass below); and, when asked, truncated importance sampling:
        // each token's advantage weighted by min(p_f32 / p_sampled, cap), which (a weight
        // being positive) is the PPO term multiplied by that weight.
        let mut gap = LogprobGap::default();
        let mut advantages = adv.per_rollout.clone();
        for &i in &recompute {
            let (sampled, f32_lps) = (&trainable[i].sampled_logprobs, old[i].as_deref());
            gap.add(f32_lps.unwrap_or_default(), sampled);
            if tis_cap > 0.0 {
                for (t, (f32_lp, s_lp)) in
                    f32_lps.unwrap_or_default().iter().zip(sampled).enumerate()
                {
                    let w = f64::from(f32_lp - s_lp).exp().min(tis_cap);
                    advantages[i][t] = (f64::from(advantages[i][t]) * w) as f32;
                }
            }
        }
        let samples: Vec<Sample> = trainable
            .iter()
            .zip(&advantages)
            .zip(old)
            .map(|((r, a), old_logprobs)| Sample {
                prompt: r.prompt.clone(),
                response: r.response.clone(),
                old_logprobs,
                advantages: a.clone(),
            })
            .collect();
        let mut stats = metrics::UpdateStats {
            samples: samples.len(),
            ..Default::default()
        };
        if samples.is_empty() {
            return Ok(Update {
                groups: adv.groups,
                stats,
            });
        }
        let mut loss_tokens = 0.0;
        for epoch in 0..epochs {
            if epoch > 0 {
                order.shuffle(&mut rng);
            }
            for ids in order.chunks(mini_batch) {
                let batch: Vec<Sample> = ids.iter().map(|&i| samples[i].clone()).collect();
                if batch.iter().all(|s| s.response.is_empty()) {
                    continue;
                }
                let s = self.trainer.step(&self.model, &batch)?;
                for (lps, &i) in s.logprobs.iter().zip(ids) {
                    if let (Some(lps), true) = (lps, on_policy[i] && epoch == 0) {
                        gap.add(lps, &trainable[i].sampled_logprobs);
                    }
                }
                stats.optimizer_steps += 1;
                stats.tokens += s.tokens;
                loss_tokens += s.loss * s.tokens as f64;
                stats.grad_norm = stats.grad_norm.max(s.grad_norm);
            }
        }
        stats.rollout_logprob_gap = gap.mean();
        stats.loss = if stats.tokens > 0 {
            loss_tokens / stats.tokens as f64
        } else {
            0.0
        };
        if self.config.rollout.precision != Precision::F32 && stats.optimizer_steps > 0 {
            // The next step samples from the updated weights: their rollout copy is made now,
            // and its cost shows in the step's metrics.
            let t = Instant::now();
            self.model
                .refresh_rollout_copy(self.config.rollout.precision);
            stats.rollout_copy_s = t.elapsed().as_secs_f64();
        }
        Ok(Update {
            groups: adv.groups,
            stats,
        })
    }
}
