//! The proposer's prompts and rollouts: K reference programs per deduction/abduction prompt,
//! one buffered program per induction prompt; proposals parsed and validated in the sandbox.

use super::*;

impl<J: Judge> SelfPlay<J> {
    /// Builds the propose prompts of one task type: `(prompt ids, references, induction
    /// program)` per proposal. Prompts over `content_max_length` are redrawn with other
    /// references (up to 8 times), then with fewer.
    pub(super) fn propose_prompts(
        &self,
        buffers: &Buffers,
        task: TaskType,
        n: usize,
        rng: &mut rand::rngs::StdRng,
    ) -> Result<Vec<(Encoded, Vec<Triplet>)>> {
        let c = &self.config;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut k = c.tasks.references;
            let mut chosen = None;
            for attempt in 0..16 {
                if attempt >= 8 && k > 1 {
                    k -= 1;
                }
                let refs = buffers.references(task, k, rng);
                let prompt = match task {
                    TaskType::Induction => match refs.first() {
                        Some(r) => propose_induction_prompt(&r.program, c.tasks.induction_inputs),
                        None => break,
                    },
                    _ => propose_triplet_prompt_in(
                        c.rollout.prompt_style,
                        task,
                        &refs,
                        &c.validation.banned_words,
                        c.parse.reject_multiple_functions,
                    ),
                };
                // Induction proposals are always asked in the reference's words.
                let brief =
                    task != TaskType::Induction && c.rollout.prompt_style == PromptStyle::Brief;
                if let Some(enc) = self.encode_opening(&prompt, self.opening(brief))?
                    && enc.ids.len() <= c.rollout.content_max_length
                {
                    chosen = Some((enc, refs));
                    break;
                }
            }
            match chosen {
                Some(x) => out.push(x),
                None => tracing::warn!(%task, "no propose prompt fits content_max_length; skipped"),
            }
        }
        Ok(out)
    }

    /// Proposes `n` tasks of each type in `types`, validates them and returns, per proposal,
    /// what the rest of the step needs. `seeding` skips nothing but is logged differently.
    pub(super) fn propose(
        &mut self,
        buffers: &Buffers,
        types: &[TaskType],
        n: usize,
        step: u64,
        stream: u64,
        times: &mut Times,
    ) -> Result<Vec<Proposal>> {
        let mut rng = step_rng(self.config.seed, step, stream);
        let mut prompts = Vec::new();
        for &task in types {
            for (enc, refs) in self.propose_prompts(buffers, task, n, &mut rng)? {
                prompts.push((task, enc, refs));
            }
        }
        let ids: Vec<Vec<i64>> = prompts.iter().map(|(_, e, _)| e.ids.clone()).collect();
        let seed = rng.random::<u64>();
        let responses = self.generate(&ids, seed, times)?;
        let c = &self.config;
        let mut proposals = Vec::with_capacity(prompts.len());
        let mut items = Vec::new();
        for ((task, enc, refs), g) in prompts.into_iter().zip(responses) {
            let Generated {
                tokens: response,
                logprobs: sampled_logprobs,
                text,
            } = g;
            let mut p = Proposal {
                task,
                prompt: enc.ids,
                response,
                sampled_logprobs,
                references: refs,
                text: text.clone(),
                format_ok: false,
                checks: 0..0,
                solve: None,
                invalid: None,
            };
            match task {
                TaskType::Induction => {
                    let read = read_induction_proposal(
                        &text,
                        c.tasks.induction_inputs,
                        c.reward.format_reward,
                    );
                    p.format_ok = read.format_ok;
                    if let Err(e) = &read.parsed {
                        p.invalid = Some(format!("format: {e}"));
                    }
                    if let (Ok(parsed), Some(r)) = (read.parsed, p.references.first()) {
                        let start = items.len();
                        for input in &parsed.inputs {
                            items.push(ValidateTask {
                                program: r.program.clone(),
                                imports: r.imports.clone(),
                                input: input.clone(),
                                check_banned: false,
                            });
                        }
                        p.checks = start..items.len();
                        p.solve = Some(SolveTask::Induction(InductionTask {
                            program: r.program.clone(),
                            inputs: parsed.inputs,
                            outputs: vec![],
                            message: parsed.message,
                            imports: r.imports.clone(),
                        }));
                    }
                }
                _ => {
                    let read = read_triplet_proposal_in(
                        &text,
                        &c.parse,
                        c.reward.format_reward,
                        c.rollout.prompt_style,
                    );
                    p.format_ok = read.format_ok;
                    if let Err(e) = &read.parsed {
                        p.invalid = Some(format!("format: {e}"));
                    }
                    if let Ok(parsed) = read.parsed {
                        items.push(ValidateTask {
                            program: parsed.program.clone(),
                            imports: parsed.imports.clone(),
                            input: parsed.input.clone(),
                            check_banned: true,
                        });
                        p.checks = items.len() - 1..items.len();
                        let t = Triplet {
                            program: parsed.program,
                            input: parsed.input,
                            output: String::new(),
                            imports: parsed.imports,
                        };
                        p.solve = Some(match task {
                            TaskType::Abduction => SolveTask::Abduction(t),
                            _ => SolveTask::Deduction(t),
                        });
                    }
                }
            }
            proposals.push(p);
        }
        self.check_stop()?;
        let results = self.validate(&items, times);
        for p in &mut proposals {
            let Some(task) = p.solve.as_mut() else {
                continue;
            };
            let r = &results[p.checks.clone()];
            // Valid only if every execution succeeded (for induction: every input ran).
            if r.is_empty() || !r.iter().all(|v| v.ok) {
                p.solve = None;
                p.invalid = Some(
                    r.iter()
                        .find_map(|v| v.error.clone())
                        .unwrap_or_else(|| "not run".to_owned()),
                );
                continue;
            }
            let outputs: Vec<String> = r.iter().filter_map(|v| v.output.clone()).collect();
            match task {
                SolveTask::Induction(t) => t.outputs = outputs,
                SolveTask::Deduction(t) | SolveTask::Abduction(t) => {
                    t.output = outputs.into_iter().next().unwrap_or_default()
                }
            }
        }
        Ok(proposals)
    }

    /// Each valid proposal's solver answers (`n_samples` of them), checked: their
    /// accuracies by proposal index.
    pub(super) fn estimate(
        &mut self,
        proposals: &[Proposal],
        step: u64,
        times: &mut Times,
    ) -> Result<BTreeMap<usize, Vec<Option<f64>>>> {
        let c = self.config.clone();
        let mut est_prompts = Vec::new();
        let mut est_owner = Vec::new();
        for (i, p) in proposals.iter().enumerate() {
            if let Some(task) = &p.solve
                && let Some(enc) = self.encode_solver(task)?
            {
                for _ in 0..c.reward.n_samples {
                    est_prompts.push(enc.ids.clone());
                    est_owner.push(i);
                }
            }
        }
        let mut rng = step_rng(c.seed, step, 1);
        let est_responses = self.generate(&est_prompts, rng.random::<u64>(), times)?;
        let mut checks = Vec::new();
        let mut ranges = Vec::new();
        for (&i, Generated { text, .. }) in est_owner.iter().zip(&est_responses) {
            let (Some(task), start) = (&proposals[i].solve, checks.len()) else {
                continue;
            };
            if let Some(answer) = read_estimate_answer(text, task.task_type()) {
                checks.extend(TaskCheck::for_answer(task, &answer));
            }
            ranges.push((i, start..checks.len()));
        }
        self.check_stop()?;
        let results = self.check(&checks, times);
        let mut accuracies: BTreeMap<usize, Vec<Option<f64>>> = BTreeMap::new();
        for (i, range) in ranges {
            let task = proposals[i].task;
            let verdicts: Vec<Option<bool>> =
                results[range].iter().map(|r| Some(r.passed)).collect();
            let acc = answer_accuracy(task, &verdicts, c.reward.induction);
            accuracies.entry(i).or_default().push(Some(acc));
        }

        Ok(accuracies)
    }

    /// The proposers' rewards (format, validity, learnability from the estimated solve rate,
    /// intrinsic bonuses); valid proposals that pass the filter join `buffers`.
    pub(super) fn reward_proposals(
        &mut self,
        proposals: &[Proposal],
        accuracies: &BTreeMap<usize, Vec<Option<f64>>>,
        step: u64,
        buffers: &mut Buffers,
        tallies: &mut BTreeMap<Group, GroupTally>,
        rollouts: &mut Vec<Rollout>,
    ) -> Result<()> {
        let c = self.config.clone();
        for (i, p) in proposals.iter().enumerate() {
            let group = Group::new(p.task, Role::Propose);
            let tally = tallies.entry(group).or_default();
            let valid = p.solve.is_some();
            let s = accuracies.get(&i).map(|a| solve_rate(a));
            let base = s.map_or(0.0, |s| learnability(s, c.reward.learnability));
            let intrinsic = match &p.solve {
                Some(SolveTask::Deduction(t) | SolveTask::Abduction(t)) => {
                    let refs: Vec<&str> = p.references.iter().map(|r| r.program.as_str()).collect();
                    let (answer, counter) = if p.task == TaskType::Abduction {
                        (&t.input, &buffers.input_types)
                    } else {
                        (&t.output, &buffers.output_types)
                    };
                    intrinsic_rewards(&c.reward, p.task, &t.program, &refs, answer, counter)
                }
                _ => vec![],
            };
            let reward = propose_reward(
                p.format_ok,
                valid,
                base,
                &intrinsic,
                c.reward.intrinsic_combine,
            );
            tally.add(reward, !p.format_ok, Some(valid), s, p.response.len());
            self.rollout_log.event(&serde_json::json!({
                "step": step,
                "group": group.name(),
                "reward": reward,
                "format_ok": p.format_ok,
                "valid": valid,
                "invalid": p.invalid,
                "solve_rate": s,
                "learnability": base,
                "response": p.text,
                "task": p.solve,
            }))?;
            if let (Some(task), Some(s)) = (&p.solve, s)
                && joins_buffer(c.tasks.valid_program_filter, s)
            {
                let pushed = match task.clone() {
                    SolveTask::Induction(t) => {
                        buffers.push_induction(t, step, c.tasks.dedup, c.tasks.max_programs)
                    }
                    SolveTask::Deduction(t) | SolveTask::Abduction(t) => {
                        buffers.push_triplet(p.task, t, step, c.tasks.dedup, c.tasks.max_programs)
                    }
                };
                if pushed == Pushed::Added {
                    tally.joined += 1;
                }
            }
            if c.tasks.train_propose {
                rollouts.push(Rollout {
                    group,
                    prompt: p.prompt.clone(),
                    response: p.response.clone(),
                    sampled_logprobs: p.sampled_logprobs.clone(),
                    reward,
                    task: None,
                });
            }
        }

        Ok(())
    }
}
