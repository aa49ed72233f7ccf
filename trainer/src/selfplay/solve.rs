//! The solver's step: tasks drawn from the buffers, each answered `solve_group_size` times,
//! the answers checked in the sandbox and rewarded for accuracy.

use super::*;

impl<J: Judge> SelfPlay<J> {
    /// Solver rollouts for tasks drawn from `buffers`, each task answered
    /// `solve_group_size` times (the answers to one task share a key, so that they can be
    /// contrasted), checked and rewarded.
    pub(super) fn solve(
        &mut self,
        step: u64,
        buffers: &Buffers,
        tallies: &mut BTreeMap<Group, GroupTally>,
        rollouts: &mut Vec<Rollout>,
        times: &mut Times,
    ) -> Result<()> {
        let c = self.config.clone();
        let types = c.tasks.types.clone();
        let mut rng = step_rng(c.seed, step, 2);
        let group_size = c.tasks.solve_group_size.max(1);
        let mut solve_tasks = Vec::new();
        // The task each solver rollout answered, as a key unique within the step.
        let mut task_keys = Vec::new();
        // Whether each solver rollout's task was proposed during training (not seeded).
        let mut proposed_in_training = Vec::new();
        let mut next_key = 0u64;
        for &task in &types {
            if buffers.is_empty(task) {
                continue;
            }
            for drawn in buffers.solver_tasks(
                task,
                c.tasks.batch_size.div_ceil(group_size),
                step,
                c.tasks.recent_window,
                c.tasks.solver_mix,
                &mut rng,
            )? {
                let t = drawn.task;
                match self.encode_solver(&t)? {
                    Some(enc) => {
                        for _ in 0..group_size {
                            solve_tasks.push((t.clone(), enc.ids.clone()));
                            proposed_in_training.push(drawn.added_at > 0);
                            task_keys.push(next_key);
                        }
                        next_key += 1;
                    }
                    None => tracing::warn!(%task, "a solver prompt is too long; skipped"),
                }
            }
        }
        let ids: Vec<Vec<i64>> = solve_tasks.iter().map(|(_, ids)| ids.clone()).collect();
        let responses = self.generate(&ids, rng.random::<u64>(), times)?;
        let mut checks = Vec::new();
        let mut read = Vec::new();
        for ((task, _), Generated { text, .. }) in solve_tasks.iter().zip(&responses) {
            let answer = read_solver_answer_in(
                text,
                task.task_type(),
                c.reward.format_reward,
                c.rollout.prompt_style,
            );
            let start = checks.len();
            if let Some(a) = &answer.answer {
                checks.extend(TaskCheck::for_answer(task, a));
            }
            read.push((answer.format_ok, start..checks.len()));
        }
        self.check_stop()?;
        let results = self.check(&checks, times);
        for (((((task, prompt), generated), (format_ok, range)), key), proposed) in solve_tasks
            .into_iter()
            .zip(responses)
            .zip(read)
            .zip(task_keys)
            .zip(proposed_in_training)
        {
            let Generated {
                tokens: response,
                logprobs: sampled_logprobs,
                text,
            } = generated;
            let verdicts: Vec<Option<bool>> = results[range.clone()]
                .iter()
                .map(|r| Some(r.passed))
                .collect();
            let refused = results[range].iter().any(|r| r.refused_answer);
            let acc = if format_ok {
                answer_accuracy(task.task_type(), &verdicts, c.reward.induction)
            } else {
                0.0
            };
            let reward = solve_reward(format_ok, acc);
            let group = Group::new(task.task_type(), Role::Solve);
            self.rollout_log.event(&serde_json::json!({
                "step": step,
                "group": group.name(),
                "reward": reward,
                "accuracy": acc,
                "format_ok": format_ok,
                "refused_answer": refused,
                "response": text,
                "task_key": key,
                "task": &task,
                "proposed_in_training": proposed,
            }))?;
            let tally = tallies.entry(group).or_default();
            tally.add(reward, !format_ok, None, Some(acc), response.len());
            tally.refused_answers += usize::from(refused);
            tally.proposed_in_training += usize::from(proposed);
            rollouts.push(Rollout {
                group,
                prompt,
                response,
                sampled_logprobs,
                reward,
                task: Some(key),
            });
        }
        Ok(())
    }
}
